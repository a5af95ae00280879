"""Read and write images without losing what the restoration should keep.

Photos arrive in every shape: rotated by an EXIF tag, greyscale, with alpha, at 16 bits,
in CMYK, as palettes or animations, truncated, or not images at all. Reading turns each
into one float RGB array in [0, 1] plus what is needed to write the result back the way
the source was (:class:`LoadedImage`); every failure becomes an :class:`ImageError`
naming the file, never a traceback from a decoder.

Pillow does most of the work. It keeps only 8 bits of 16-bit colour PNGs and TIFFs, so
pypng and tifffile decode and encode those. Writes go through a temporary file and
``os.replace`` so that an interrupted run never leaves half an image behind.
"""

from __future__ import annotations

import io
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

from umsn_cli.errors import ImageError, UmsnError, UsageError, one_line
from umsn_cli.files import write_bytes

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

_SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}
_SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
_ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})
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


@dataclass
class LoadedImage:
    """A decoded image as the network wants it, plus what writing it back needs."""

    path: Path | None
    rgb: np.ndarray  # float32, H×W×3 in [0, 1]; grey sources replicated to 3 channels
    alpha: np.ndarray | None  # float32, H×W in [0, 1]
    mode: str  # source colour model: "L", "RGB" or "CMYK"
    bit_depth: int  # 8 or 16
    format: str | None  # Pillow's format name of the source ("PNG", "JPEG", ...)
    icc_profile: bytes | None
    warnings: list[str] = field(default_factory=list)
    #: dtype of the array given to :func:`from_array` (None otherwise), so that
    #: :func:`to_array` can hand float input back as float.
    array_dtype: np.dtype | None = None
    #: What a photographer expects to keep (:func:`_metadata`): EXIF with the orientation
    #: reset (pixels are written upright), DPI, and a JPEG's quantisation tables and
    #: chroma subsampling, so that re-encoding loses as little as possible.
    metadata: dict[str, object] = field(default_factory=dict)


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


def to_array(rgb: np.ndarray, like: LoadedImage) -> np.ndarray:
    """Give a result back in the source's dtype and channels (grey → H×W, alpha re-attached).

    CMYK sources come back as RGB: a 4-channel array would read as RGBA.
    """
    planes = _planes(rgb, like, keep_alpha=True)
    if like.array_dtype is not None and np.issubdtype(like.array_dtype, np.floating):
        return np.clip(planes, 0.0, 1.0).astype(like.array_dtype)
    return quantise(planes, like.bit_depth)


def output_suffix(like: LoadedImage, ext: str | None) -> str:
    """The output extension: ``ext`` normalised, else the source's own if its format can hold
    the result (spelled as the input spelled it), else ".png", which holds everything."""
    if ext is not None:
        return normalise_ext(ext)
    fmt = like.format
    if (
        fmt not in _FORMAT_SUFFIX
        or (like.bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS)
        or (like.alpha is not None and fmt not in _ALPHA_FORMATS)
    ):
        return ".png"
    if like.path is not None and _SUFFIX_FORMATS.get(like.path.suffix.lower()) == fmt:
        return like.path.suffix
    return _FORMAT_SUFFIX[fmt]


def lost_in(like: LoadedImage, suffix: str) -> list[str]:
    """What writing ``like`` as ``suffix`` (an ``--ext`` choice) cannot keep, said plainly."""
    fmt = _SUFFIX_FORMATS.get(suffix.lower())
    lost = []
    if like.alpha is not None and fmt not in _ALPHA_FORMATS:
        lost.append(f"{suffix} has no alpha channel: transparency is dropped (use --ext png)")
    if like.bit_depth == 16 and fmt not in _SIXTEEN_BIT_FORMATS:
        lost.append(f"{suffix} holds 8 bits per channel: the 16-bit source is reduced to 8")
    return lost


def normalise_ext(ext: str) -> str:
    """``--ext`` as a suffix (".png"), or a :class:`UsageError` for a type we cannot write."""
    suffix = "." + ext.strip().lower().lstrip(".")
    if suffix == ".gif":
        raise UsageError(
            "--ext gif: GIF holds only 256 colours and would throw the restored detail "
            "away; use --ext png"
        )
    if suffix not in _SUFFIX_FORMATS:
        raise UsageError(
            f"--ext {ext}: unknown image type; use one of png, jpg, jpeg, tif, tiff, webp, bmp"
        )
    return suffix


def write_image(path: Path, rgb: np.ndarray, like: LoadedImage, *, overwrite: bool = False) -> None:
    """Encode ``rgb`` in the format ``path``'s suffix names, keeping of the source's bit depth,
    grey, alpha, CMYK and ICC profile whatever that format can hold."""
    path = Path(path)
    fmt = _format_for(path)
    bit_depth = 16 if like.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS else 8
    cmyk = like.mode == "CMYK" and fmt in _CMYK_FORMATS
    keep_alpha = fmt in _ALPHA_FORMATS and not cmyk
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


# --- reading -------------------------------------------------------------------------------


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


# --- writing -------------------------------------------------------------------------------


def _format_for(path: Path) -> str:
    """The Pillow format an output suffix names; anything else is a usage mistake."""
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
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
