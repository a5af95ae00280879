"""The Python API: restore face crops or whole photos, or segment crops, given as arrays
or PIL images, as the CLI does.

>>> from umsn_cli import deblur, restore, segment
>>> restored = deblur(pil_image)            # a crop or a whole photo, like `umsn deblur`
>>> restore(photo).faces                    # what was found: boxes, the mode chosen
>>> probs = segment(numpy_image)            # 4×H×W class probabilities

:class:`~umsn_cli.restorer.Restorer` (re-exported here) is the reusable object behind
both and behind the CLI: weights resolved and loaded once, one inference backend,
batches in, results out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from umsn_cli.images import LoadedImage, from_array, from_pil, to_array
from umsn_cli.photo.pipeline import PhotoOptions, check_mode
from umsn_cli.restorer import Restored, Restorer, load_restorer
from umsn_cli.strength import parse_strength
from umsn_cli.weights.manifest import DEFAULT_MODEL

__all__ = ["Restoration", "Restored", "Restorer", "deblur", "load_restorer", "restore", "segment"]

ImageLike = np.ndarray | Image.Image


@dataclass
class Restoration:
    """What :func:`restore` did to one image."""

    image: ImageLike  # the result, in the caller's type, size, channels and dtype
    mode: str  # "aligned" (the image was a face crop) or "photo"
    faces: list[tuple[float, float, float, float]]  # photo mode: boxes (left, top, w, h)
    notes: list[str]  # what the CLI prints with --verbose (faces too small, none found)


def restore(
    image: ImageLike,
    *,
    model: str = DEFAULT_MODEL,
    backend: str = "auto",
    mode: str = "auto",
    min_face: int = 24,
    max_faces: int | None = None,
    only_center_face: bool = False,
    flip_ensemble: bool = False,
    strength: float | str = "auto",
    max_face_size: int = 128,
) -> Restoration:
    """Restore an aligned face crop or every face of a photo, as ``umsn deblur`` does.

    ``mode="auto"`` decides like the CLI: a small, roughly square image filled by one
    face is a crop, anything else a photo, whose faces are found, aligned, restored and
    pasted back; the face options are the CLI's ``--min-face`` and friends;
    ``flip_ensemble`` also restores each mirrored face and averages (``--flip-ensemble``);
    ``strength`` is how much of the correction each face gets, ``"auto"`` or 0 to 1
    (``--strength``); ``max_face_size`` the largest size a face is restored at
    (``--max-face-size``).
    """
    check_mode(mode)
    loaded = _load(image)
    level = parse_strength(str(strength))
    restorer = load_restorer(
        model, backend, flip_ensemble=flip_ensemble, strength=level, max_face_size=max_face_size
    )
    done = restorer.restore(loaded, mode, PhotoOptions(min_face, max_faces, only_center_face))
    rgb = done.rgb
    faces = [tuple(float(v) for v in f.face.box) for f in done.faces]
    if isinstance(image, Image.Image):
        out: ImageLike = _to_pil(rgb, loaded, image.mode)
    else:
        out = to_array(rgb, loaded)
    return Restoration(out, done.mode, faces, done.notes)  # type: ignore[arg-type]


def deblur(image: ImageLike, **options: Any) -> ImageLike:
    """Restore a face crop or a photo; the same type, size, channels and dtype back.

    Takes :func:`restore`'s keyword arguments (``model``, ``backend``, ``mode``, the
    face options) and returns only its image.
    """
    return restore(image, **options).image


def segment(image: ImageLike, *, model: str = DEFAULT_MODEL, backend: str = "auto") -> np.ndarray:
    """Class probabilities (background, skin, features, hair) as float32 4×H×W."""
    return load_restorer(model, backend).segment_batch([_load(image)])[0]


def _load(image: ImageLike) -> LoadedImage:
    return from_pil(image) if isinstance(image, Image.Image) else from_array(np.asarray(image))


def _to_pil(rgb: np.ndarray, like: LoadedImage, mode: str) -> Image.Image:
    array = to_array(rgb, like)
    out = Image.fromarray(array)
    return out.convert("CMYK") if mode == "CMYK" else out
