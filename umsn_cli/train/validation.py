"""Fixed validation sets and the scores a training run reports on them.

A validation set is generated once from a seed that never changes between runs:
each face at the canonical framing (no jitter, no flip), blurred with its own seeded
kernel (sizes cycling through the Shen et al. sizes), noise ``val_noise``. The same
faces and kernels every time is what makes curves of different runs comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from umsn_cli.blur import SHEN_SIZES, add_noise, blur_batch, random_kernels
from umsn_cli.blur.convolve import stack_kernels
from umsn_cli.faces import FaceSet
from umsn_cli.metrics import FScore, aligned, best_shift, masked_psnr, psnr, ssim

VAL_SEED = 20200107  # fixed forever: changing it changes every reported number


@dataclass
class ValidationSet:
    sharp: torch.Tensor  # N×3×128×128 in [0, 1]
    blurry: torch.Tensor
    masks: torch.Tensor | None  # soft class masks of the sharp faces
    sizes: list[int]  # kernel size of each blurry face

    def __len__(self) -> int:
        return self.sharp.shape[0]

    def to(self, device: torch.device) -> ValidationSet:
        masks = None if self.masks is None else self.masks.to(device)
        return ValidationSet(self.sharp.to(device), self.blurry.to(device), masks, self.sizes)


def make_validation_set(
    faces: FaceSet, noise: float, blur_class: int | None = None
) -> ValidationSet:
    """The fixed blurred copy of ``faces``; ``blur_class`` blurs only that class (F-Nets)."""
    sharp, masks = faces.canonical()
    sizes = [SHEN_SIZES[i % len(SHEN_SIZES)] for i in range(len(faces))]
    kernels = stack_kernels(random_kernels(sizes, VAL_SEED))
    generator = torch.Generator().manual_seed(VAL_SEED)
    blurry = add_noise(blur_batch(sharp, kernels), noise, generator)
    if blur_class is not None and masks is not None:
        m = masks[:, blur_class : blur_class + 1]
        blurry = m * blurry + (1 - m) * sharp
    return ValidationSet(sharp, blurry, masks, sizes)


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int = 25
) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(images[i : i + batch]) for i in range(0, len(images), batch)])


def restoration_scores(restored: torch.Tensor, val: ValidationSet) -> dict[str, float]:
    """Mean PSNR/SSIM of restored and blurry faces; per-class PSNR where masks exist."""
    out: dict[str, float] = {}
    r, s, b = (
        t.float().cpu().permute(0, 2, 3, 1).numpy() for t in (restored, val.sharp, val.blurry)
    )
    out["psnr"] = float(np.mean([psnr(x, y) for x, y in zip(r, s, strict=True)]))
    out["ssim"] = float(np.mean([ssim(x, y) for x, y in zip(r, s, strict=True)]))
    out["psnr_blurry"] = float(np.mean([psnr(x, y) for x, y in zip(b, s, strict=True)]))
    out["ssim_blurry"] = float(np.mean([ssim(x, y) for x, y in zip(b, s, strict=True)]))
    # The benchmark's headline score (`umsn benchmark --align 5`), tracked while training.
    for name, images in (("psnr_aligned", r), ("psnr_aligned_blurry", b)):
        out[name] = float(np.mean([_aligned_psnr(x, y) for x, y in zip(images, s, strict=True)]))
    if val.masks is not None:
        m = val.masks.cpu().numpy()
        for c in range(m.shape[1]):
            scores = [masked_psnr(r[i], s[i], m[i, c]) for i in range(len(r))]
            out[f"psnr_m{c + 1}"] = float(np.nanmean(scores))
    return out


def _aligned_psnr(image: np.ndarray, sharp: np.ndarray, max_shift: int = 5) -> float:
    shift = best_shift(image, sharp, max_shift)
    return psnr(*aligned(image, sharp, shift, max_shift))


def segmentation_scores(probs: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """F-score per class (argmax labels against the argmax of the soft targets)."""
    score = FScore(masks.shape[1])
    score.update(probs.argmax(1).cpu().numpy(), masks.argmax(1).cpu().numpy())
    return {f"f_m{c + 1}": v for c, v in enumerate(score.scores())}
