"""Reading: every file, array or Pillow image into one float RGB array in [0, 1] and its
:class:`~umsn_cli.images.metadata.LoadedImage`; every failure an :class:`ImageError`
naming the file, never a decoder's traceback. pypng and tifffile read the 16-bit PNGs
and TIFFs of which Pillow keeps only 8 bits.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

from umsn_cli.errors import ImageError, UsageError, one_line
from umsn_cli.images.metadata import LoadedImage

_ORIENTATION = 0x0112  # EXIF tag: how the stored pixels must be turned to stand upright
#: EXIF orientation value -> the transform that makes stored pixels upright.
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
#: Pillow modes read as they are (after conversion to the mode named); others become RGB.
_PILLOW_TARGET = {
    "1": "L",
    "L": "L",
    "LA": "LA",
    "La": "LA",
    "P": "RGB",
    "PA": "RGBA",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
}


def read_image(path: Path) -> LoadedImage:
    """Decode one file upright; any problem with it is an :class:`ImageError` naming it."""
    path = Path(path)
    fmt = None
    try:
        _check_readable(path)
        # A bomb warning means the same as the error, only for a smaller image: refuse both.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                return _decode_file(path, img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"{path}: more pixels than the {Image.MAX_IMAGE_PIXELS:,}-pixel limit that guards "
            "against decompression bombs; downscale it first if it is a genuine photo"
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(
            f"{path}: not an image file (cannot identify format); skip it or convert it to PNG/JPEG"
        ) from exc
    except PermissionError as exc:
        raise ImageError(f"{path}: permission denied; make it readable or skip it") from exc
    except MemoryError as exc:
        raise ImageError(
            f"{path}: not enough memory to decode it; close other programs or downscale it"
        ) from exc
    except Exception as exc:  # decoders raise many types (OSError, SyntaxError, struct.error…)
        raise ImageError(
            f"{path}: cannot decode this {fmt or 'image'} file ({one_line(exc)}); "
            "it is truncated or corrupt, re-export or re-download it"
        ) from exc


def from_pil(image: Image.Image) -> LoadedImage:
    """Wrap a Pillow image from an API caller the same way :func:`read_image` reads files."""
    return _from_pillow(image, path=None)


def from_array(array: np.ndarray) -> LoadedImage:
    """Wrap an API caller's array; its dtype sets the scale: uint8 /255, uint16 /65535,
    floats taken as already in [0, 1]."""
    data = np.asarray(array)
    if (
        data.size == 0
        or data.ndim not in (2, 3)
        or (data.ndim == 3 and data.shape[2] not in (3, 4))
    ):
        raise UsageError(
            f"an array of shape {data.shape} is not an image; pass H×W, H×W×3 or H×W×4"
        )
    if np.issubdtype(data.dtype, np.floating):
        low, high = float(np.min(data)), float(np.max(data))
        if not (low >= 0.0 and high <= 1.0):  # also false for NaN
            raise UsageError(
                f"float image values must lie in [0, 1], found {low:g}..{high:g}; "
                "divide 8-bit data by 255 or pass a uint8 array"
            )
        planes, bit_depth = data.astype(np.float32), 16
    elif data.dtype in (np.uint8, np.uint16):
        planes, bit_depth = _scale(data)
    else:
        raise UsageError(
            f"array dtype {data.dtype} is not supported; pass uint8, uint16 or floats in [0, 1]"
        )
    mode = "L" if data.ndim == 2 else "RGB"
    loaded = _assemble(planes, bit_depth, path=None, mode=mode, fmt=None, icc=None, notes=[])
    loaded.array_dtype = data.dtype
    return loaded


def _check_readable(path: Path) -> None:
    """Catch the common non-decoder failures first, with messages that say what they are."""
    if not path.exists():
        raise ImageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image file; pass the images in it")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); skip it or export it again")


def _decode_file(path: Path, img: Image.Image) -> LoadedImage:
    """Route 16-bit colour files past Pillow, which would keep only 8 of their bits."""
    if img.format == "PNG" and _png_bit_depth(path) == 16:
        pixels, orientation, grey = _read_png16(path)
        return _assemble(
            *_scale(_upright(pixels, orientation)),
            path=path,
            mode="L" if grey else "RGB",
            fmt="PNG",
            icc=img.info.get("icc_profile") or None,
            notes=_frame_notes(img),
        )
    if img.format == "TIFF" and max(img.tag_v2.get(258, (8,))) > 8:
        pixels, reason = _read_tiff16(path)
        if pixels is None:  # Pillow still reads it, grey at 16 bits, colour at 8
            loaded = _from_pillow(img, path=path)
            if loaded.bit_depth == 8:
                loaded.warnings.append(f"16-bit TIFF read at 8 bits per channel: {reason}")
            return loaded
        notes = _frame_notes(img)
        return _assemble(
            *_scale(_upright(pixels, _orientation(img, notes))),
            path=path,
            mode="L" if pixels.shape[2] <= 2 else "RGB",
            fmt="TIFF",
            icc=img.info.get("icc_profile") or None,
            notes=notes,
        )
    return _from_pillow(img, path=path)


def _from_pillow(img: Image.Image, *, path: Path | None) -> LoadedImage:
    """Bring any Pillow mode to L/LA/RGB/RGBA (or 16-bit grey) planes, upright."""
    notes = _frame_notes(img)
    orientation = _orientation(img, notes)
    img.load()
    source = img.mode
    if source in ("I", "F"):
        raise ImageError(
            f"{path or 'image'}: 32-bit samples (Pillow mode {source}) are not supported; "
            "convert it to 8- or 16-bit first"
        )
    if source.startswith("I;16"):
        pixels, mode = np.asarray(img).astype(np.uint16), "L"
    else:
        target = _PILLOW_TARGET.get(source, "RGB")
        if "transparency" in img.info and target in ("L", "RGB") and source != "1":
            target += "A"  # a tRNS colour or palette entry: make it a real alpha channel
        pixels = np.asarray(img if source == target else img.convert(target))
        mode = "CMYK" if source == "CMYK" else target.rstrip("A")
    return _assemble(
        *_scale(_upright(pixels, orientation)),
        path=path,
        mode=mode,
        fmt=img.format,
        icc=img.info.get("icc_profile") or None,
        notes=notes,
        metadata=_metadata(img, notes),
    )


def _metadata(img: Image.Image, notes: list[str]) -> dict[str, object]:
    """EXIF (orientation reset to 1), DPI, and for JPEGs their quantisation and subsampling."""
    kept: dict[str, object] = {}
    try:
        exif = img.getexif()
        if len(exif):
            exif[_ORIENTATION] = 1
            kept["exif"] = exif.tobytes()
    except Exception as exc:  # broken EXIF must not sink the file
        notes.append(f"EXIF data unreadable ({one_line(exc)}); not kept in the output")
    if "dpi" in img.info:
        kept["dpi"] = tuple(float(v) for v in img.info["dpi"])
    if img.format == "JPEG":
        from PIL import JpegImagePlugin

        qtables = getattr(img, "quantization", None)
        if qtables:
            kept["jpeg_qtables"] = {k: list(v) for k, v in qtables.items()}
            kept["jpeg_subsampling"] = JpegImagePlugin.get_sampling(img)
    return kept


def _assemble(
    planes: np.ndarray,
    bit_depth: int,
    *,
    path: Path | None,
    mode: str,
    fmt: str | None,
    icc: bytes | None,
    notes: list[str],
    metadata: dict[str, object] | None = None,
) -> LoadedImage:
    """Split L/LA/RGB/RGBA planes, already scaled to [0, 1], into RGB and alpha."""
    if planes.ndim == 2:
        planes = planes[..., None]
    colour = planes[..., :1] if planes.shape[2] <= 2 else planes[..., :3]
    alpha = planes[..., -1] if planes.shape[2] in (2, 4) else None
    return LoadedImage(
        path=path,
        rgb=np.ascontiguousarray(colour if colour.shape[2] == 3 else np.repeat(colour, 3, axis=2)),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        mode=mode,
        bit_depth=bit_depth,
        format=fmt,
        icc_profile=icc,
        warnings=notes,
        metadata=dict(metadata or {}),
    )


def _scale(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer samples to float32 in [0, 1] (v/255 or v/65535), with their bit depth."""
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    planes = pixels.astype(np.float32)
    planes /= np.float32((1 << bit_depth) - 1)  # in place: no second float copy of a photo
    return planes, bit_depth


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation so the image stands as the camera meant it."""
    turn = _UPRIGHT.get(orientation)
    return pixels if turn is None else np.ascontiguousarray(turn(pixels))


def _orientation(img: Image.Image, notes: list[str]) -> int:
    """The EXIF orientation; broken EXIF is common in phone photos and must not sink the file."""
    try:
        return int(img.getexif().get(_ORIENTATION, 1))
    except Exception as exc:  # Pillow's EXIF parser raises assorted types on bad data
        notes.append(f"EXIF data unreadable ({one_line(exc)}); orientation left as stored")
        return 1


def _frame_notes(img: Image.Image) -> list[str]:
    """Say so when frames or pages beyond the first are ignored."""
    frames = getattr(img, "n_frames", 1)
    if frames <= 1:
        return []
    if img.format == "TIFF":
        return [f"multi-page TIFF: only the first of its {frames} pages is restored"]
    return [f"animated {img.format}: only the first of its {frames} frames is restored"]


def _png_bit_depth(path: Path) -> int:
    """Bit depth from the IHDR chunk (byte 24), which Pillow does not report."""
    with path.open("rb") as fh:
        header = fh.read(26)
    return header[24] if len(header) == 26 else 8


def _read_png16(path: Path) -> tuple[np.ndarray, int, bool]:
    """Decode a 16-bit PNG with pypng: pixels (H×W×planes), EXIF orientation, greyscale."""
    data = path.read_bytes()
    width, height, rows, info = png.Reader(bytes=data).read()
    pixels = np.array(list(rows), dtype=np.uint16).reshape(height, width, info["planes"])
    key = info.get("transparent")
    if key is not None:  # tRNS: pixels of exactly this colour are fully transparent
        opaque = np.any(pixels != np.asarray(key, dtype=np.uint16), axis=2)
        pixels = np.dstack([pixels, np.where(opaque, 65535, 0).astype(np.uint16)])
    orientation = 1
    for kind, chunk in png.Reader(bytes=data).chunks():
        if kind == b"eXIf":
            exif = Image.Exif()
            exif.load(chunk)
            orientation = int(exif.get(_ORIENTATION, 1))
    return pixels, orientation, info["greyscale"]


def _read_tiff16(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode a 16-bit grey or RGB TIFF with tifffile as H×W×planes; None and the reason
    when tifffile cannot (a codec that needs the optional imagecodecs, another layout)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        if page.compression not in tifffile.TIFF.DECOMPRESSORS:
            return None, f"its {page.compression.name} compression needs the imagecodecs package"
        extras = tuple(page.extrasamples)
        if extras and extras[0] == tifffile.EXTRASAMPLE.ASSOCALPHA:
            return None, "premultiplied alpha is not read at 16 bits"
        planes = {tifffile.PHOTOMETRIC.MINISBLACK: 1, tifffile.PHOTOMETRIC.RGB: 3}.get(
            page.photometric
        )
        if planes is None or page.dtype != np.uint16 or page.axes not in ("YX", "YXS", "SYX"):
            return None, f"{page.photometric.name} {page.dtype} samples are not read at 16 bits"
        data = page.asarray()
    if data.ndim == 3 and page.axes == "SYX":
        data = np.moveaxis(data, 0, -1)
    data = data.reshape(data.shape[0], data.shape[1], -1)
    if extras and extras[0] == tifffile.EXTRASAMPLE.UNASSALPHA:
        planes += 1
    return np.ascontiguousarray(data[..., :planes]), ""
