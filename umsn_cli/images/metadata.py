"""What an image is besides its pixels, from the read to the write (:class:`LoadedImage`:
format, mode, bit depth, alpha, EXIF, ICC profile, DPI), and which output types keep
what: the restored image goes back the way the source was, or the user is told what
the chosen type loses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umsn_cli.errors import UsageError

SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp"}


SIXTEEN_BIT_FORMATS = frozenset({"PNG", "TIFF"})
ALPHA_FORMATS = frozenset({"PNG", "TIFF", "WEBP"})


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
    #: dtype of the array given to :func:`.reading.from_array` (None otherwise), so that
    #: :func:`.writing.to_array` can hand float input back as float.
    array_dtype: np.dtype | None = None
    #: What a photographer expects to keep (read by :mod:`.reading`): EXIF with the orientation
    #: reset (pixels are written upright), DPI, and a JPEG's quantisation tables and
    #: chroma subsampling, so that re-encoding loses as little as possible.
    metadata: dict[str, object] = field(default_factory=dict)


def output_suffix(like: LoadedImage, ext: str | None) -> str:
    """The output extension: ``ext`` normalised, else the source's own if its format can hold
    the result (spelled as the input spelled it), else ".png", which holds everything."""
    if ext is not None:
        return normalise_ext(ext)
    fmt = like.format
    if (
        fmt not in _FORMAT_SUFFIX
        or (like.bit_depth == 16 and fmt not in SIXTEEN_BIT_FORMATS)
        or (like.alpha is not None and fmt not in ALPHA_FORMATS)
    ):
        return ".png"
    if like.path is not None and SUFFIX_FORMATS.get(like.path.suffix.lower()) == fmt:
        return like.path.suffix
    return _FORMAT_SUFFIX[fmt]


def lost_in(like: LoadedImage, suffix: str) -> list[str]:
    """What writing ``like`` as ``suffix`` (an ``--ext`` choice) cannot keep, said plainly."""
    fmt = SUFFIX_FORMATS.get(suffix.lower())
    lost = []
    if like.alpha is not None and fmt not in ALPHA_FORMATS:
        lost.append(f"{suffix} has no alpha channel: transparency is dropped (use --ext png)")
    if like.bit_depth == 16 and fmt not in SIXTEEN_BIT_FORMATS:
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
    if suffix not in SUFFIX_FORMATS:
        raise UsageError(
            f"--ext {ext}: unknown image type; use one of png, jpg, jpeg, tif, tiff, webp, bmp"
        )
    return suffix
