"""Training faces: loaded once into memory, augmented and blurred on the fly, per batch.

A face folder is read once and kept as uint8 arrays (the cache file under the cache
root makes later runs start in seconds). Each stored face covers a little more than
the canonical framing (the centre ``crop`` fraction of the source image, see spec
§1), so a batch can jitter scale and position around it. Augmentation and blur run
on whole batches in torch: one ``grid_sample`` for crop, scale and flip of images and
masks together, one grouped convolution for the per-sample blur kernels.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from umsn_cli.blur.degrade import MIXES, DegradationMix, degrade
from umsn_cli.errors import UsageError
from umsn_cli.files import temporary_file
from umsn_cli.inputs import IMAGE_SUFFIXES
from umsn_cli.labels import one_hot, read_celebamask_labels
from umsn_cli.paths import cache_root

SIZE = 128  # the network input
MARGIN = 1.25  # stored faces cover this much more than the canonical crop
_CACHE_VERSION = 1


@dataclass
class FaceSet:
    """Faces (N×S×S×3 uint8) and soft class masks (N×4×S×S uint8, or None) in memory."""

    stems: list[str]
    images: np.ndarray
    masks: np.ndarray | None
    window: float  # the canonical face is the centre ``window`` fraction of each stored face

    def __len__(self) -> int:
        return len(self.stems)

    def subset(self, index: list[int] | np.ndarray) -> FaceSet:
        masks = None if self.masks is None else self.masks[index]
        return FaceSet([self.stems[i] for i in index], self.images[index], masks, self.window)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder of face images; pass --data DIR")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"{folder}: no images (.jpg, .png, …) found; pass --data DIR")
    return files


def load_faces(folder: Path, masks: Path | None = None, crop: float = 0.75) -> FaceSet:
    """Read a folder of aligned faces (and CelebAMask-HQ label PNGs with the same stems).

    ``crop`` is the fraction of each image, around its centre, that is the canonical
    face framing (0.75 for CelebAMask-HQ's 512×512 frames; 1.0 for ready 128² crops).
    """
    files = list_images(folder)
    mask_files = None
    if masks is not None:
        mask_files = [masks / f"{p.stem}.png" for p in files]
        missing = [m.name for m in mask_files if not m.is_file()]
        if missing:
            raise UsageError(
                f"{masks}: no label mask for {len(missing)} image(s), e.g. {missing[0]}; "
                "every image needs a PNG with the same stem"
            )
    key = _cache_key(files, mask_files, crop)
    cache = cache_root() / "faces" / f"{key}.npz"
    outer = min(1.0, crop * MARGIN)
    stems = [p.stem for p in files]
    if cache.is_file():
        with np.load(cache) as data:
            stored_masks = data.get("masks")
            return FaceSet(stems, data["images"], stored_masks, crop / outer)
    side = round(SIZE * outer / crop)
    images = np.stack([_framed_image(p, outer, side) for p in files])
    stored = None
    if mask_files is not None:
        stored = np.stack([_framed_mask(m, outer, side) for m in mask_files])
    arrays = {"images": images} if stored is None else {"images": images, "masks": stored}
    with temporary_file(cache) as tmp:  # its name ends in .npz, so savez keeps it
        np.savez(tmp, **arrays)
    return FaceSet(stems, images, stored, crop / outer)


def load_prepared(folder: Path) -> FaceSet:
    """A folder ``umsn prepare`` wrote: images/, masks/ (if labelled), its recorded crop."""
    from umsn_cli.prepare import read_prepared_crop

    crop = read_prepared_crop(folder)
    if crop is None:
        raise UsageError(
            f"{folder}: no prepare.json; make training faces with `umsn prepare PHOTOS -o {folder}`"
        )
    masks = folder / "masks"
    return load_faces(folder / "images", masks if masks.is_dir() else None, crop)


def concat_faces(sets: list[FaceSet]) -> FaceSet:
    """One :class:`FaceSet` from several stored the same way (size, window, masks or not)."""
    first = sets[0]
    for other in sets[1:]:
        same_window = math.isclose(other.window, first.window, rel_tol=1e-6)
        if other.images.shape[1:] != first.images.shape[1:] or not same_window:
            raise UsageError(
                "training face folders differ in framing (stored size or crop); prepare them "
                "all with `umsn prepare`, or give --crop so they match"
            )
        if (other.masks is None) != (first.masks is None):
            raise UsageError("some training face folders have masks and some do not")
    masks = None if first.masks is None else np.concatenate([f.masks for f in sets])
    stems = [stem for f in sets for stem in f.stems]
    return FaceSet(stems, np.concatenate([f.images for f in sets]), masks, first.window)


def _cache_key(files: list[Path], masks: list[Path] | None, crop: float) -> str:
    facts = [_CACHE_VERSION, crop, SIZE, MARGIN]
    for p in files + (masks or []):
        st = p.stat()
        facts.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


def _centre_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    side = fraction * min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


def _framed_image(path: Path, fraction: float, side: int) -> np.ndarray:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        box = _centre_box(*rgb.size, fraction)
        return np.asarray(rgb.resize((side, side), Image.Resampling.LANCZOS, box=box))


def _framed_mask(path: Path, fraction: float, side: int) -> np.ndarray:
    """Soft masks: the one-hot labels box-averaged down, so edges keep partial membership."""
    labels = read_celebamask_labels(path)
    left, top, right, bottom = _centre_box(labels.shape[1], labels.shape[0], fraction)
    hot = torch.from_numpy(one_hot(labels[top:bottom, left:right]))[None]
    soft = F.interpolate(hot, size=(side, side), mode="area")[0]
    return (soft * 255).round().to(torch.uint8).numpy()


@dataclass
class Batch:
    """One training batch; images in [0, 1], N×C×128×128."""

    sharp: torch.Tensor
    blurry: torch.Tensor
    masks: torch.Tensor | None  # soft class masks of the sharp face (N×4×H×W)

    def to(self, device: torch.device) -> Batch:
        """On ``device``, channels-last: the layout the CPU's bf16 kernels run fastest in."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device).contiguous(memory_format=torch.channels_last)

        return Batch(move(self.sharp), move(self.blurry), move(self.masks))


class Sampler:
    """Draws augmented, blurred batches from a :class:`FaceSet` with its own RNG.

    Everything random comes from one ``torch.Generator``, whose state goes into the
    training checkpoint, so a resumed run continues the same sequence of batches.
    """

    def __init__(
        self,
        faces: FaceSet,
        kernels: torch.Tensor,
        seed: int,
        mix: DegradationMix | None = None,
        scale_jitter: float = 0.1,
        shift_jitter: float = 0.05,
    ) -> None:
        """``kernels``: the camera-shake bank (:func:`umsn_cli.blur.degrade.motion_bank`)."""
        self.faces = faces
        self.kernels = kernels
        self.mix = mix or MIXES["real"]
        self.scale_jitter = scale_jitter
        self.shift_jitter = shift_jitter
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def sample(self, batch_size: int, blur: str = "all", blur_class: int | None = None) -> Batch:
        """``blur``: "all" (blur whole faces), "none" (sharp input) or "class" (only mask i)."""
        g = self.generator
        index = torch.randint(len(self.faces), (batch_size,), generator=g).numpy()
        # The part of each stored face that becomes the 128² sample, in its [-1, 1] coords.
        scale = self.faces.window * self._uniform(
            batch_size, 1 - self.scale_jitter, 1 + self.scale_jitter
        )
        scale = scale.clamp(max=1.0)
        room = 1 - scale
        shift = torch.stack([self._uniform(batch_size, -1, 1) for _ in range(2)], 1)
        shift = shift * torch.minimum(room, torch.full_like(room, self.shift_jitter * 2))[:, None]
        flip = torch.where(torch.rand(batch_size, generator=g) < 0.5, -1.0, 1.0)
        theta = torch.zeros(batch_size, 2, 3)
        theta[:, 0, 0] = scale * flip
        theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, [batch_size, 1, SIZE, SIZE], align_corners=False)

        images = torch.from_numpy(self.faces.images[index]).permute(0, 3, 1, 2).float() / 255
        sharp = F.grid_sample(images, grid, mode="bilinear", align_corners=False).clamp(0, 1)
        masks = None
        if self.faces.masks is not None:
            stored_masks = torch.from_numpy(self.faces.masks[index]).float() / 255
            masks = F.grid_sample(stored_masks, grid, mode="bilinear", align_corners=False)
        if blur == "none":
            return Batch(sharp, sharp, masks)
        blurry = self.blur(sharp)
        if blur == "class":
            if masks is None or blur_class is None:
                raise UsageError("class-wise blur needs label masks (--masks DIR) and a class")
            m = masks[:, blur_class : blur_class + 1]
            blurry = m * blurry + (1 - m) * sharp
        return Batch(sharp, blurry, masks)

    def blur(self, sharp: torch.Tensor) -> torch.Tensor:
        """One draw of the degradation mix per sample: blur, noise, JPEG."""
        return degrade(sharp, self.mix, self.kernels, self.generator)
