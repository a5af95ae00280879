"""Writing: the restored pixels back in the source's format, depth, mode and metadata,
through a temporary file renamed into place, so that an interrupted run never leaves
half an image behind.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import Image

from umsn_cli.errors import ImageError, UmsnError, UsageError, one_line
from umsn_cli.files import write_bytes
from umsn_cli.images.metadata import ALPHA_FORMATS, SIXTEEN_BIT_FORMATS, SUFFIX_FORMATS, LoadedImage

_CMYK_FORMATS = frozenset({"JPEG", "TIFF"})
#: JPEG at 4:4:4 and high quality, so the detail the network restored is not thrown away.
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95, "subsampling": 0},
    "WEBP": {"quality": 95},
    "TIFF": {"compression": "tiff_deflate"},
}
_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF"})


_DPI_FORMATS = frozenset({"JPEG", "PNG", "TIFF"})
#: Colour space an ICC profile must declare (header bytes 16-20) to be valid for a mode.
_ICC_SPACE = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB ", "CMYK": b"CMYK"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's "L"


def to_array(rgb: np.ndarray, like: LoadedImage) -> np.ndarray:
    """Give a result back in the source's dtype and channels (grey → H×W, alpha re-attached).

    CMYK sources come back as RGB: a 4-channel array would read as RGBA.
    """
    planes = _planes(rgb, like, keep_alpha=True)
    if like.array_dtype is not None and np.issubdtype(like.array_dtype, np.floating):
        return np.clip(planes, 0.0, 1.0).astype(like.array_dtype)
    return quantise(planes, like.bit_depth)


def write_image(path: Path, rgb: np.ndarray, like: LoadedImage, *, overwrite: bool = False) -> None:
    """Encode ``rgb`` in the format ``path``'s suffix names, keeping of the source's bit depth,
    grey, alpha, CMYK and ICC profile whatever that format can hold."""
    path = Path(path)
    fmt = _format_for(path)
    bit_depth = 16 if like.bit_depth == 16 and fmt in SIXTEEN_BIT_FORMATS else 8
    cmyk = like.mode == "CMYK" and fmt in _CMYK_FORMATS
    keep_alpha = fmt in ALPHA_FORMATS and not cmyk
    pixels = quantise(_planes(rgb, like, keep_alpha=keep_alpha), bit_depth)
    mode = "CMYK" if cmyk else _mode_of(pixels)
    icc = like.icc_profile
    if icc is None or icc[16:20] != _ICC_SPACE[mode]:  # a profile for another space is invalid
        icc = None
    if bit_depth == 16 and fmt == "PNG":
        atomic_write(path, lambda fh: _write_png16(fh, pixels, icc), overwrite=overwrite)
    elif bit_depth == 16:
        atomic_write(path, lambda fh: _write_tiff16(fh, pixels, icc), overwrite=overwrite)
    else:
        image = Image.fromarray(pixels)
        if cmyk:
            image = image.convert("CMYK")
        atomic_write(
            path,
            lambda fh: _save_pillow(fh, image, fmt, icc, like.metadata),
            overwrite=overwrite,
        )


def save_label_png(path: Path, labels: np.ndarray, *, overwrite: bool = False) -> None:
    """Write a label map as 8-bit grey PNG: lossless, because its values are class ids."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.dtype != np.uint8 or labels.ndim != 2:
        raise UsageError(
            f"{path}: labels must be a uint8 H×W array, got {labels.dtype} {labels.shape}"
        )
    if path.suffix.lower() != ".png":
        raise UsageError(f"{path}: label maps are written as PNG; give the file a .png suffix")
    image = Image.fromarray(labels)
    atomic_write(path, lambda fh: _save_pillow(fh, image, "PNG", None), overwrite=overwrite)


def save_rgb8(path: Path, pixels: np.ndarray, *, overwrite: bool = False) -> None:
    """Write an overlay or comparison picture (uint8 H×W×3) in the format its suffix names."""
    path = Path(path)
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise UsageError(f"{path}: expected a uint8 H×W×3 array, got {pixels.dtype} {pixels.shape}")
    fmt = _format_for(path)
    image = Image.fromarray(pixels)
    atomic_write(path, lambda fh: _save_pillow(fh, image, fmt, None), overwrite=overwrite)


def _format_for(path: Path) -> str:
    """The Pillow format an output suffix names; anything else is a usage mistake."""
    fmt = SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"{path}: cannot write '{path.suffix}' files; use .png, .jpg, .tif, .webp or .bmp"
        )
    return fmt


def _planes(rgb: np.ndarray, like: LoadedImage, *, keep_alpha: bool) -> np.ndarray:
    """Float result in the source's layout: grey as H×W, alpha as the last channel."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UsageError(f"expected an H×W×3 RGB result, got an array of shape {rgb.shape}")
    colour = rgb @ _LUMA if like.mode == "L" else rgb
    if not keep_alpha or like.alpha is None:
        return colour
    if like.alpha.shape != rgb.shape[:2]:
        raise UsageError(
            f"the result is {rgb.shape[1]}×{rgb.shape[0]} but the source's alpha is "
            f"{like.alpha.shape[1]}×{like.alpha.shape[0]}; restore at the source's size"
        )
    return np.dstack([colour, like.alpha])


#: Floats converted at a time by :func:`quantise` (4 MB of float32).
_QUANTISE_BAND = 1 << 20


def quantise(values: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Floats in [0, 1] to the nearest integer sample (not truncated), clipping outside.

    Converted a band of rows at a time, so that an 80-megapixel photo needs no float
    temporaries of its own size on top of the result.
    """
    top = (1 << bit_depth) - 1
    values = np.asarray(values)
    out = np.empty(values.shape, np.uint16 if bit_depth == 16 else np.uint8)
    if values.ndim == 0:
        return np.rint(np.clip(values, 0.0, 1.0) * top).astype(out.dtype)
    rows = max(1, _QUANTISE_BAND // max(1, values[0].size))
    for start in range(0, len(values), rows):
        part = np.clip(values[start : start + rows], 0.0, 1.0)
        part *= top
        out[start : start + rows] = np.rint(part, out=part)
    return out


def _mode_of(pixels: np.ndarray) -> str:
    """Pillow's name for an L/LA/RGB/RGBA array."""
    return "L" if pixels.ndim == 2 else ("", "L", "LA", "RGB", "RGBA")[pixels.shape[2]]


def _save_pillow(
    fh: BinaryIO,
    image: Image.Image,
    fmt: str,
    icc: bytes | None,
    metadata: dict[str, object] | None = None,
) -> None:
    options = dict(_SAVE_OPTIONS.get(fmt, {}))
    if icc is not None and fmt != "BMP":
        options["icc_profile"] = icc
    metadata = metadata or {}
    if fmt in _EXIF_FORMATS and "exif" in metadata:
        options["exif"] = metadata["exif"]
    if fmt in _DPI_FORMATS and "dpi" in metadata:
        options["dpi"] = metadata["dpi"]
    if fmt == "JPEG" and "jpeg_qtables" in metadata and image.mode in ("RGB", "L"):
        # The source's own tables: what Pillow's quality="keep" does for an open JPEG.
        tables = metadata["jpeg_qtables"]
        options.pop("quality", None)
        options["qtables"] = [tables[k] for k in sorted(tables)]  # type: ignore[index]
        subsampling = metadata.get("jpeg_subsampling", -1)
        if image.mode == "RGB" and isinstance(subsampling, int) and subsampling >= 0:
            options["subsampling"] = subsampling
    image.save(fh, format=fmt, **options)


def _write_png16(fh: BinaryIO, pixels: np.ndarray, icc: bytes | None) -> None:
    """pypng writes 16-bit colour PNG but not ICC profiles, so an iCCP chunk is added here."""
    height, width = pixels.shape[:2]
    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    writer = png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16)
    buffer = io.BytesIO()
    writer.write(buffer, pixels.reshape(height, width * planes))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    if icc is not None:  # iCCP must come before IDAT; right after IHDR is always valid
        chunks.insert(1, (b"iCCP", b"ICC profile\0\0" + zlib.compress(icc)))
    png.write_chunks(fh, chunks)


def _write_tiff16(fh: BinaryIO, pixels: np.ndarray, icc: bytes | None) -> None:
    """tifffile wants a named file or a seekable buffer, not a descriptor from mkstemp."""
    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric="minisblack" if planes <= 2 else "rgb",
        planarconfig="contig" if planes > 1 else None,
        extrasamples=["unassalpha"] if planes in (2, 4) else None,
        compression="zlib",
        iccprofile=icc,
        metadata=None,
    )
    fh.write(buffer.getvalue())


def atomic_write(path: Path, encode: Callable[[BinaryIO], None], *, overwrite: bool) -> None:
    """Encode in memory, then write through :func:`umsn_cli.files.temporary_file`: a crash,
    a full disk or an encoder error never leaves a half-written (or clobbered) image.

    In memory first because Pillow's JPEG encoder can lose a short write to a file (a
    full disk) without raising; :func:`umsn_cli.files.write_bytes` checks the length.
    """
    if path.is_dir():
        raise ImageError(f"{path}: is a directory; choose another output name")
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it")
    try:
        buffer = io.BytesIO()
        encode(buffer)
        write_bytes(path, buffer.getvalue(), overwrite=overwrite)
    except FileExistsError as exc:
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it") from exc
    except UmsnError:  # already one line (and ours subclass OSError and ValueError)
        raise
    except (OSError, ValueError, png.Error) as exc:
        raise ImageError(
            f"{path}: cannot write it ({one_line(exc)}); check free space and permissions, "
            "or choose another output type"
        ) from exc
