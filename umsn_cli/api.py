"""The Python API: restore or segment aligned face crops given as arrays or PIL images.

>>> from umsn_cli import deblur, segment
>>> restored = deblur(pil_image)            # same type, size and channels as the input
>>> probs = segment(numpy_image)            # 4×H×W class probabilities

:class:`Restorer` is the reusable object behind both (and behind the CLI): weights
resolved and loaded once, one inference backend, batches in, results out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from umsn_cli.aligned import probs_at_source_size, restored_at_source_size, to_model_input
from umsn_cli.backends import Backend, BackendInfo
from umsn_cli.backends.registry import choose_backend
from umsn_cli.images import LoadedImage, from_array, from_pil, to_array
from umsn_cli.nn import UMSN
from umsn_cli.weights import load_checkpoint, resolve_model_ref

ImageLike = np.ndarray | Image.Image


@dataclass
class Restored:
    """One result: the restored image and the class probabilities, both at source size."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1]
    probs: np.ndarray  # float32 4×H×W in [0, 1]


class Restorer:
    """A loaded model on one backend. Thread-compatible, not thread-safe."""

    def __init__(self, model: UMSN, backend: Backend, model_ref: str) -> None:
        self.model = model
        self.backend = backend
        self.model_ref = model_ref
        self.input_size = model.config.input_size

    @classmethod
    def load(
        cls,
        model: str = "umsn-lite",
        *,
        backend: str = "auto",
        device: str | None = None,
        precision: str = "auto",
        offline: bool | None = None,
        progress: bool = False,
    ) -> Restorer:
        """Resolve ``model`` (id, config name, imported id or file), load it, pick a backend.

        The backend, device and precision are checked first, so that a typo in one of
        them is reported at once, not after the weights were downloaded and loaded.
        """
        runner_class = choose_backend(backend, device, precision)  # before any download
        path, sha256 = resolve_model_ref(model, offline=offline, progress=progress)
        network, _meta = load_checkpoint(path)
        runner = runner_class(network, weights_key=sha256, device=device, precision=precision)
        return cls(network, runner, model)

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def needs_resize(self, image: LoadedImage) -> bool:
        return image.rgb.shape[:2] != (self.input_size, self.input_size)

    def deblur_batch(self, images: Sequence[LoadedImage]) -> list[Restored]:
        inputs = torch.stack([to_model_input(im.rgb, self.input_size) for im in images])
        restored, probs = self.backend.deblur(inputs)
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
    model: str = "umsn-lite",
    backend: str = "auto",
    device: str | None = None,
    precision: str = "auto",
) -> Restorer:
    """A cached :class:`Restorer`, so repeated API calls do not reload the weights."""
    return Restorer.load(model, backend=backend, device=device, precision=precision)


def deblur(image: ImageLike, *, model: str = "umsn-lite", backend: str = "auto") -> ImageLike:
    """Restore one aligned face crop; returns the same type, size, channels and dtype."""
    loaded = _load(image)
    result = load_restorer(model, backend).deblur_batch([loaded])[0]
    if isinstance(image, Image.Image):
        return _to_pil(result.rgb, loaded, image.mode)
    return to_array(result.rgb, loaded)


def segment(image: ImageLike, *, model: str = "umsn-lite", backend: str = "auto") -> np.ndarray:
    """Class probabilities (background, skin, features, hair) as float32 4×H×W."""
    return load_restorer(model, backend).segment_batch([_load(image)])[0]


def _load(image: ImageLike) -> LoadedImage:
    return from_pil(image) if isinstance(image, Image.Image) else from_array(np.asarray(image))


def _to_pil(rgb: np.ndarray, like: LoadedImage, mode: str) -> Image.Image:
    array = to_array(rgb, like)
    out = Image.fromarray(array)
    return out.convert("CMYK") if mode == "CMYK" else out
