"""The loaded model behind the API, the CLI and photo mode: :class:`Restorer`.

Weights are resolved and loaded once and one inference backend is chosen.
:meth:`Restorer.restore` is the way in for one image, crop or photo, as ``umsn deblur``
and the Python API restore it; :meth:`Restorer.deblur_batch` takes aligned crops by the
batch, with results at each crop's source size. The photo pipeline, the batch runner
and the benchmarks take a Restorer, so they never load weights themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from umsn_cli.aligned import probs_at_source_size, restored_at_source_size, to_model_input
from umsn_cli.backends import Backend, BackendInfo
from umsn_cli.backends.measure import choose_by_measurement
from umsn_cli.backends.registry import auto_candidates, choose_backend
from umsn_cli.contract import WORKING_SIZES, check_working_size
from umsn_cli.errors import WeightsError
from umsn_cli.images import LoadedImage
from umsn_cli.nn import UMSN
from umsn_cli.paths import choices_file
from umsn_cli.photo.detect import Face
from umsn_cli.photo.pipeline import (
    PhotoOptions,
    PhotoResult,
    RestoredFace,
    check_mode,
    choose_mode,
    restore_photo,
)
from umsn_cli.strength import SHARP_RATIO, auto_strength, blend, is_sharp, judge
from umsn_cli.weights import load_model
from umsn_cli.weights.download import TransferProgress
from umsn_cli.weights.manifest import DEFAULT_MODEL


def _at(images: torch.Tensor, size: int) -> torch.Tensor:
    """N×C×H×W images area-resampled to size×size (as they are, when they are that)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images.float(), size=(size, size), mode="area")


@dataclass
class Restored:
    """One result: the restored image and the class probabilities, both at source size,
    and how much of the correction it got (:mod:`umsn_cli.strength`)."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1]
    probs: np.ndarray  # float32 4×H×W in [0, 1]
    detail_ratio: float = 1.0  # mid-frequency detail in over out: about 1 for a sharp face
    strength: float = 1.0  # the share of the network's correction applied
    blur_px: float = 1.0  # the blur's estimated extent, in px of the image as given

    @property
    def sharp(self) -> bool:
        """Whether the face was judged sharp already."""
        return is_sharp(self.detail_ratio)


@dataclass
class RestoredImage:
    """What :meth:`Restorer.restore` did to one image: the result at the image's size,
    the mode it was restored in, and what that mode reports."""

    rgb: np.ndarray  # float32 H×W×3 in [0, 1]
    mode: str  # "aligned" (a face crop) or "photo"
    crop: Restored | None = None  # aligned: the probabilities and the strength it got
    photo: PhotoResult | None = None  # photo: each face restored, the notes, the blend

    @property
    def faces(self) -> list[RestoredFace]:
        return self.photo.faces if self.photo else []

    @property
    def notes(self) -> list[str]:
        return self.photo.notes if self.photo else []


class Restorer:
    """A loaded model on one backend. Thread-compatible, not thread-safe."""

    def __init__(
        self,
        model: UMSN,
        backend: Backend,
        model_ref: str,
        flip_ensemble: bool = False,
        strength: float | None = None,
        skip_sharp: bool = False,
        max_face_size: int = 128,
    ) -> None:
        self.model = model
        self.backend = backend
        self.model_ref = model_ref
        # Also restore the mirrored face and average the two: faces are nearly symmetric
        # left to right, so the two restorations err differently and their mean is closer
        # (+0.1 dB measured on held-out faces), at twice the inference time.
        self.flip_ensemble = flip_ensemble
        # How much of its correction each face gets: None (auto) judges each face by
        # what the network did to it, so sharp faces are not softened; skip_sharp leaves
        # the faces judged sharp exactly as they were (umsn_cli.strength).
        self.strength = strength
        self.skip_sharp = skip_sharp
        self.contract = model.config.input  # what the weights expect of an image
        self.input_size = self.contract.size
        self.backend_reason = f"{backend.name}, as asked (--backend)"  # why (``-v``)
        # The largest working size (WORKING_SIZES): 128, the size of training, unless
        # asked; 256 costs 4× the time and memory per face, 512 16×.
        check_working_size(max_face_size)
        self.max_face_size = max_face_size

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
        strength: float | None = None,
        skip_sharp: bool = False,
        faces: int = 1,
        batch_size: int = 8,
        remeasure: bool = False,
        max_face_size: int = 128,
    ) -> Restorer:
        """Resolve ``model`` (id, config name, imported id or file), load it, pick a backend.

        The backend, device and precision are checked first, so that a typo in one of
        them is reported at once, not after the weights were downloaded and loaded.
        ``backend="auto"`` takes the fastest backend for this machine, model and
        ``batch_size``, timed once for a job of many ``faces`` (or on ``remeasure``) and
        cached (:mod:`umsn_cli.backends.measure`); :attr:`backend_reason` says why.
        """
        runner_class = choose_backend(backend, device, precision)  # before any download
        network, sha256 = load_model(model, offline=offline, progress=progress)
        runner, reason = None, None
        if backend == "auto":
            choice = choose_by_measurement(
                auto_candidates(device, precision), network, weights_key=sha256, device=device,
                precision=precision, batch=batch_size, faces=faces, remeasure=remeasure,
                cache_file=choices_file(),
            )  # fmt: skip
            runner, runner_class, device = choice.built, choice.backend, choice.device
            reason = choice.reason
        if runner is None:
            runner = runner_class(network, weights_key=sha256, device=device, precision=precision)
        restorer = cls(network, runner, model, flip_ensemble, strength, skip_sharp, max_face_size)
        restorer.backend_reason = reason or restorer.backend_reason
        restorer.self_check()
        return restorer

    def self_check(self) -> None:
        """Refuse weights that cannot restore a face: one probe image, before any input.

        Damaged weights (NaN, say) load without complaint and write black crops; a
        forward pass on a fixed, textured probe that comes back non-finite or flat
        tells them apart at once, for the price of one face.
        """
        size = self.input_size
        ramp = torch.linspace(0, 1, size)
        probe = torch.stack(
            [
                ramp[None, :].expand(size, size),
                ramp[:, None].expand(size, size),
                ((ramp[None, :] * 7).sin() * (ramp[:, None] * 5).cos() + 1) / 2,
            ]
        )
        restored, _ = self.backend.deblur(probe[None])
        self._check_output(restored)
        if float(restored.std()) < 1e-4:
            raise WeightsError(
                f"{self.model_ref}: the weights turn a test face into a flat image; they are "
                "damaged: check them with `umsn weights verify` or choose other --model weights"
            )

    def _check_output(self, restored: torch.Tensor) -> None:
        if not bool(torch.isfinite(restored).all()):
            raise WeightsError(
                f"{self.model_ref}: the weights give non-finite pixels (NaN or infinity); they "
                "are damaged: check them with `umsn weights verify` or choose other --model "
                "weights"
            )

    @property
    def info(self) -> BackendInfo:
        return self.backend.info

    def needs_resize(self, image: LoadedImage) -> bool:
        return image.rgb.shape[:2] != (self.input_size, self.input_size)

    def restore(
        self,
        image: LoadedImage,
        mode: str = "auto",
        photo: PhotoOptions | None = None,
        *,
        found: list[Face] | None = None,
        in_place: bool = False,
    ) -> RestoredImage:
        """Restore one image as ``umsn deblur`` does: ``aligned``, a face crop; ``photo``,
        every face found, aligned, restored and pasted back (``photo`` says which faces);
        ``auto``, whichever :func:`~umsn_cli.photo.pipeline.looks_aligned` says.

        Faces are detected once: those found in deciding ``auto`` are the photo's, and
        ``found`` hands in detections made already (the batch runner decides each mode
        as it reads the image, to name the outputs). ``in_place`` writes a photo's result
        into ``image.rgb``, sparing a photo-sized copy.
        """
        check_mode(mode)
        if mode == "auto":
            mode, found = choose_mode(image.rgb, mode, self.input_size)
        if mode == "aligned":
            crop = self.deblur_batch([image])[0]
            return RestoredImage(crop.rgb, mode, crop=crop)
        result = restore_photo(image.rgb, self, photo, in_place=in_place, found=found)
        return RestoredImage(result.rgb, mode, photo=result)

    def working_size(self, image: LoadedImage) -> int:
        """The size a crop is restored at: the largest of :data:`WORKING_SIZES` within
        both its shorter side and :attr:`max_face_size`, never below the model's input
        (a smaller crop is upscaled to it, as it always was)."""
        side = min(image.rgb.shape[:2])
        fitting = [
            s for s in WORKING_SIZES if self.input_size <= s <= min(side, self.max_face_size)
        ]
        return max(fitting, default=self.input_size)

    def deblur_batch(self, images: Sequence[LoadedImage]) -> list[Restored]:
        """Restore aligned crops, each at its :meth:`working_size` (one forward pass per
        size), in the order given."""
        sizes = [self.working_size(im) for im in images]
        results: list[Restored | None] = [None] * len(images)
        for size in dict.fromkeys(sizes):
            chosen = [i for i, s in enumerate(sizes) if s == size]
            done = self._deblur_at(size, [images[i] for i in chosen])
            for i, result in zip(chosen, done, strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    def _deblur_at(self, size: int, images: Sequence[LoadedImage]) -> list[Restored]:
        inputs = torch.stack([to_model_input(im.rgb, size) for im in images])
        restored, probs = self.backend.deblur(inputs)
        if self.flip_ensemble:
            mirrored, mirrored_probs = self.backend.deblur(inputs.flip(-1))
            restored = (restored + mirrored.flip(-1)) / 2
            probs = (probs + mirrored_probs.flip(-1)) / 2
        self._check_output(restored)  # never written as black pixels
        # Judged at the size the judgement was calibrated at (umsn_cli.strength).
        ratio, extent = judge(*(_at(x, self.input_size) for x in (inputs, restored)))
        if self.strength is None:
            strength = auto_strength(ratio)
        else:
            strength = torch.full_like(ratio, self.strength)
        if self.skip_sharp:
            strength = torch.where(ratio >= SHARP_RATIO, 0.0, strength)
        restored = blend(inputs, restored.float(), strength)
        return [
            Restored(
                rgb=restored_at_source_size(restored[i], inputs[i], im.rgb),
                probs=probs_at_source_size(probs[i], *im.rgb.shape[:2]),
                detail_ratio=float(ratio[i]),
                strength=float(strength[i]),
                blur_px=float(extent[i]) * im.rgb.shape[1] / self.input_size,  # crop px
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
    strength: float | None = None,
    max_face_size: int = 128,
) -> Restorer:
    """A cached :class:`Restorer`, so repeated API calls do not reload the weights."""
    return Restorer.load(
        model, backend=backend, device=device, precision=precision, flip_ensemble=flip_ensemble,
        strength=strength, max_face_size=max_face_size,
    )  # fmt: skip
