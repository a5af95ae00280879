"""Face folders: aligned faces and their class masks, read once into memory.

Training, its validation and the benchmark all read folders of aligned faces (and
CelebAMask-HQ label PNGs with the same stems): this module is below all three. A
folder is read once through :func:`umsn_cli.images.read_image` (so EXIF orientation
and 16-bit files are honoured as in ``deblur``) and kept as uint8 arrays; a cache file
under the cache root makes later runs start in seconds. Each stored face covers
:data:`MARGIN` times the canonical framing (the centre ``crop`` fraction of the source
image, see docs/method.md, Conventions), so a sampler can jitter scale and position around it;
:meth:`FaceSet.canonical` gives the framing itself.
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

from umsn_cli.errors import UsageError
from umsn_cli.files import temporary_file
from umsn_cli.images import quantise, read_image
from umsn_cli.inputs import IMAGE_SUFFIXES
from umsn_cli.labels import one_hot, read_celebamask_labels
from umsn_cli.paths import cache_root

MARGIN = 1.25  # stored faces cover this much more than the canonical crop
_CACHE_VERSION = 1


@dataclass
class FaceSet:
    """Faces (N×S×S×3 uint8) and soft class masks (N×4×S×S uint8, or None) in memory."""

    stems: list[str]
    images: np.ndarray
    masks: np.ndarray | None
    window: float  # the canonical face is the centre ``window`` fraction of each stored face
    size: int = 128  # the canonical framing's side in pixels: the model input it is for

    def __len__(self) -> int:
        return len(self.stems)

    def subset(self, index: list[int] | np.ndarray) -> FaceSet:
        masks = None if self.masks is None else self.masks[index]
        return FaceSet(
            [self.stems[i] for i in index], self.images[index], masks, self.window, self.size
        )

    def canonical(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every face (N×3×S×S in [0, 1]) and its soft masks (N×4×S×S) at exactly the
        canonical framing: no jitter, no flip."""
        n = len(self)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = self.window
        grid = F.affine_grid(theta, [n, 1, self.size, self.size], align_corners=False)
        images = torch.from_numpy(self.images).permute(0, 3, 1, 2).float() / 255
        sharp = F.grid_sample(images, grid, mode="bilinear", align_corners=False).clamp(0, 1)
        masks = None
        if self.masks is not None:
            stored = torch.from_numpy(self.masks).float() / 255
            masks = F.grid_sample(stored, grid, mode="bilinear", align_corners=False)
        return sharp, masks


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder; give the folder that holds the face images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(
            f"{folder}: no images (.jpg, .png, …) in it; give the folder that holds the faces"
        )
    return files


def load_faces(
    folder: Path, masks: Path | None = None, crop: float = 0.75, size: int = 128
) -> FaceSet:
    """Read a folder of aligned faces (and CelebAMask-HQ label PNGs with the same stems).

    ``crop`` is the fraction of each image, around its centre, that is the canonical
    face framing (0.75 for CelebAMask-HQ's 512×512 frames, the input contract's
    ``crop``; 1.0 for ready crops); ``size`` is the canonical framing's side in pixels
    (the contract's input size).
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
    key = _cache_key(files, mask_files, crop, size)
    cache = cache_root() / "faces" / f"{key}.npz"
    outer = min(1.0, crop * MARGIN)
    stems = [p.stem for p in files]
    if cache.is_file():
        with np.load(cache) as data:
            stored_masks = data.get("masks")
            return FaceSet(stems, data["images"], stored_masks, crop / outer, size)
    side = round(size * outer / crop)
    images = np.stack([_framed_image(p, outer, side) for p in files])
    stored = None
    if mask_files is not None:
        stored = np.stack([_framed_mask(m, outer, side) for m in mask_files])
    arrays = {"images": images} if stored is None else {"images": images, "masks": stored}
    with temporary_file(cache) as tmp:  # its name ends in .npz, so savez keeps it
        np.savez(tmp, **arrays)
    return FaceSet(stems, images, stored, crop / outer, size)


def load_prepared(folder: Path, size: int = 128) -> FaceSet:
    """A folder ``umsn prepare`` wrote: images/, masks/ (if labelled), its recorded crop."""
    crop = read_prepared_crop(folder)
    if crop is None:
        raise UsageError(
            f"{folder}: no prepare.json; make training faces with `umsn prepare PHOTOS -o {folder}`"
        )
    masks = folder / "masks"
    return load_faces(folder / "images", masks if masks.is_dir() else None, crop, size)


def read_prepared_crop(folder: Path) -> float | None:
    """The ``crop`` of a folder ``umsn prepare`` wrote (its images/ or itself), else None."""
    for candidate in (folder / "prepare.json", folder.parent / "prepare.json"):
        if candidate.is_file():
            try:
                return float(json.loads(candidate.read_text())["crop"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"{candidate}: not a umsn prepare record ({exc})") from exc
    return None


def concat_faces(sets: list[FaceSet]) -> FaceSet:
    """One :class:`FaceSet` from several stored the same way (size, window, masks or not)."""
    first = sets[0]
    for other in sets[1:]:
        same_window = math.isclose(other.window, first.window, rel_tol=1e-6)
        framing = (other.images.shape[1:], other.size) != (first.images.shape[1:], first.size)
        if framing or not same_window:
            raise UsageError(
                "training face folders differ in framing (stored size or crop); prepare them "
                "all with `umsn prepare`, or give --crop so they match"
            )
        if (other.masks is None) != (first.masks is None):
            raise UsageError("some training face folders have masks and some do not")
    masks = None if first.masks is None else np.concatenate([f.masks for f in sets])
    stems = [stem for f in sets for stem in f.stems]
    images = np.concatenate([f.images for f in sets])
    return FaceSet(stems, images, masks, first.window, first.size)


def split_holdout(faces: FaceSet, holdout: int, seed: int) -> tuple[FaceSet, FaceSet | None]:
    """A seeded split: ``holdout`` faces (with masks) never trained on, for validation."""
    if holdout <= 0 or faces.masks is None:
        return faces, None
    if holdout >= len(faces):
        raise UsageError(f"--holdout {holdout} leaves no training faces (there are {len(faces)})")
    order = np.random.default_rng(seed).permutation(len(faces))
    return faces.subset(np.sort(order[holdout:])), faces.subset(np.sort(order[:holdout]))


def _cache_key(files: list[Path], masks: list[Path] | None, crop: float, size: int) -> str:
    facts = [_CACHE_VERSION, crop, size, MARGIN]
    for p in files + (masks or []):
        st = p.stat()
        facts.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:20]


def _centre_box(width: int, height: int, fraction: float) -> tuple[int, int, int, int]:
    side = fraction * min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


def _framed_image(path: Path, fraction: float, side: int) -> np.ndarray:
    """The centre ``fraction`` of an image, upright, as side² uint8 RGB (Lanczos)."""
    rgb = Image.fromarray(quantise(read_image(path).rgb))
    box = _centre_box(*rgb.size, fraction)
    return np.asarray(rgb.resize((side, side), Image.Resampling.LANCZOS, box=box))


def _framed_mask(path: Path, fraction: float, side: int) -> np.ndarray:
    """Soft masks: the one-hot labels box-averaged down, so edges keep partial membership."""
    labels = read_celebamask_labels(path)
    left, top, right, bottom = _centre_box(labels.shape[1], labels.shape[0], fraction)
    hot = torch.from_numpy(one_hot(labels[top:bottom, left:right]))[None]
    soft = F.interpolate(hot, size=(side, side), mode="area")[0]
    return (soft * 255).round().to(torch.uint8).numpy()
