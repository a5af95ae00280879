"""The Python API: restore face crops or whole photos, or segment crops, given as arrays
or PIL images, as the CLI does.

>>> from umsn_cli import deblur, restore, segment
>>> restored = deblur(pil_image)            # a crop or a whole photo, like `umsn deblur`
>>> restore(photo).faces                    # what was found: boxes, the mode chosen
>>> probs = segment(numpy_image)            # 4×H×W class probabilities

:class:`Restorer` is the reusable object behind both (and behind the CLI): weights
resolved and loaded once, one inference backend, batches in, results out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from umsn_cli.aligned import probs_at_source_size, restored_at_source_size, to_model_input
from umsn_cli.backends import Backend, BackendInfo
from umsn_cli.backends.registry import choose_backend
from umsn_cli.choices import Mode, values
from umsn_cli.images import LoadedImage, from_array, from_pil, to_array
from umsn_cli.nn import UMSN
from umsn_cli.paths import graph_cache_dir
from umsn_cli.weights import load_model
from umsn_cli.weights.download import TransferProgress
from umsn_cli.weights.manifest import DEFAULT_MODEL

ImageLike = np.ndarray | Image.Image


@dataclass
class Restored:
    """One result: the restored image and the class probabilities, both at source size."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1]
    probs: np.ndarray  # float32 4×H×W in [0, 1]


class Restorer:
    """A loaded model on one backend. Thread-compatible, not thread-safe."""

    def __init__(
        self, model: UMSN, backend: Backend, model_ref: str, flip_ensemble: bool = False
    ) -> None:
        self.model = model
        self.backend = backend
        self.model_ref = model_ref
        # Also restore the mirrored face and average the two: faces are nearly symmetric
        # left to right, so the two restorations err differently and their mean is closer
        # (+0.1 dB measured on held-out faces), at twice the inference time.
        self.flip_ensemble = flip_ensemble
        self.contract = model.config.input  # what the weights expect of an image
        self.input_size = self.contract.size

    @classmethod
    def load(
        cls,
        model: str = DEFAULT_MODEL,
        *,
        backend: str = "auto",
        device: str | None = None,
        precision: str = "auto",
        offline: bool | None = None,
        progress: TransferProgress | None = None,
        flip_ensemble: bool = False,
    ) -> Restorer:
        """Resolve ``model`` (id, config name, imported id or file), load it, pick a backend.

        The backend, device and precision are checked first, so that a typo in one of
        them is reported at once, not after the weights were downloaded and loaded.
        """
        runner_class = choose_backend(backend, device, precision)  # before any download
        network, sha256 = load_model(model, offline=offline, progress=progress)
        runner = runner_class(
            network,
            weights_key=sha256,
            device=device,
            precision=precision,
            cache_dir=graph_cache_dir(),
        )
        return cls(network, runner, model, flip_ensemble)

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def needs_resize(self, image: LoadedImage) -> bool:
        return image.rgb.shape[:2] != (self.input_size, self.input_size)

    def deblur_batch(self, images: Sequence[LoadedImage]) -> list[Restored]:
        inputs = torch.stack([to_model_input(im.rgb, self.input_size) for im in images])
        restored, probs = self.backend.deblur(inputs)
        if self.flip_ensemble:
            mirrored, mirrored_probs = self.backend.deblur(inputs.flip(-1))
            restored = (restored + mirrored.flip(-1)) / 2
            probs = (probs + mirrored_probs.flip(-1)) / 2
        return [
            Restored(
                rgb=restored_at_source_size(restored[i], inputs[i], im.rgb),
                probs=probs_at_source_size(probs[i], *im.rgb.shape[:2]),
            )
            for i, im in enumerate(images)
        ]

    def segment_batch(self, images: Sequence[LoadedImage]) -> list[np.ndarray]:
        inputs = torch.stack([to_model_input(im.rgb, self.input_size) for im in images])
        probs = self.backend.segment(inputs)
        return [probs_at_source_size(probs[i], *im.rgb.shape[:2]) for i, im in enumerate(images)]


@functools.lru_cache(maxsize=4)
def load_restorer(
    model: str = DEFAULT_MODEL,
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
    flip_ensemble: bool = False,
) -> Restorer:
    """A cached :class:`Restorer`, so repeated API calls do not reload the weights."""
    return Restorer.load(
        model, backend=backend, device=device, precision=precision, flip_ensemble=flip_ensemble
    )


@dataclass
class Restoration:
    """What :func:`restore` did to one image."""

    image: ImageLike  # the result, in the caller's type, size, channels and dtype
    mode: str  # "aligned" (the image was a face crop) or "photo"
    faces: list[tuple[float, float, float, float]]  # photo mode: boxes (left, top, w, h)
    notes: list[str]  # what the CLI prints with --verbose (faces too small, none found)


MODES = values(Mode)


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
) -> Restoration:
    """Restore an aligned face crop or every face of a photo, as ``umsn deblur`` does.

    ``mode="auto"`` decides like the CLI: a small, roughly square image filled by one
    face is a crop, anything else a photo, whose faces are found, aligned, restored and
    pasted back; the face options are the CLI's ``--min-face`` and friends;
    ``flip_ensemble`` also restores each mirrored face and averages (``--flip-ensemble``).
    """
    from umsn_cli.errors import UsageError
    from umsn_cli.photo.pipeline import PhotoOptions, choose_mode, restore_photo

    if mode not in MODES:
        raise UsageError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    loaded = _load(image)
    restorer = load_restorer(model, backend, flip_ensemble=flip_ensemble)
    chosen = choose_mode(loaded.rgb, mode, restorer.input_size)
    if chosen == "aligned":
        rgb, faces, notes = restorer.deblur_batch([loaded])[0].rgb, [], []
    else:
        options = PhotoOptions(min_face, max_faces, only_center_face)
        result = restore_photo(loaded.rgb, restorer, options)
        rgb, notes = result.rgb, result.notes
        faces = [tuple(float(v) for v in f.face.box) for f in result.faces]
    if isinstance(image, Image.Image):
        out: ImageLike = _to_pil(rgb, loaded, image.mode)
    else:
        out = to_array(rgb, loaded)
    return Restoration(out, chosen, faces, notes)  # type: ignore[arg-type]


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
