"""Image-quality and segmentation scores, with their conventions written down.

- PSNR: RGB, both images rounded to 8 bits, peak 255, the mean squared error over all
  pixels and channels of one image; a set's PSNR is the mean of per-image PSNRs (the
  convention of the Shen et al. protocol tables).
- SSIM: Wang et al. (2004) as implemented by scikit-image with ``gaussian_weights=True``
  (σ = 1.5, 11×11 window), population covariance, data range 255, computed per RGB
  channel and averaged; the mean over images for a set.
- Masked PSNR (the paper's per-class Table I): the MSE only over pixels of one class,
  weighted by the soft mask.
- Masked SSIM: the same SSIM map (channel-averaged, without the 5-pixel border that
  the 11×11 window cannot cover, exactly the pixels :func:`ssim` averages) averaged
  with the soft mask as weights.
- F-score per class: pixels labelled with the most likely class (argmax) against the
  argmax of the target masks, pooled over the whole set, F1 = 2PR/(P+R).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def to_8bit(image: np.ndarray) -> np.ndarray:
    """H×W×3 float in [0, 1] → float64 values 0…255, rounded like an 8-bit file."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.float64)


def psnr(restored: np.ndarray, sharp: np.ndarray) -> float:
    a, b = to_8bit(restored), to_8bit(sharp)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def masked_psnr(restored: np.ndarray, sharp: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over the pixels of one class; ``mask`` is H×W in [0, 1]. NaN for an empty mask."""
    weight = float(mask.sum())
    if weight < 1:
        return float("nan")
    err = ((to_8bit(restored) - to_8bit(sharp)) ** 2).mean(axis=2)
    mse = float((err * mask).sum() / weight)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


_SSIM_BORDER = 5  # (11 − 1) / 2: skimage averages the map without this border


def ssim(restored: np.ndarray, sharp: np.ndarray) -> float:
    return map_mean(ssim_map(restored, sharp))


def ssim_map(restored: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (H×W, channel-averaged) with the conventions of :func:`ssim`."""
    _, full = structural_similarity(
        to_8bit(restored),
        to_8bit(sharp),
        channel_axis=2,
        data_range=255.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        full=True,
    )
    return full.mean(axis=2)


def map_mean(values: np.ndarray) -> float:
    """The mean of an :func:`ssim_map` over the pixels :func:`ssim` averages."""
    b = _SSIM_BORDER
    return float(values[b:-b, b:-b].mean())


def masked_ssim(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of an :func:`ssim_map` weighted by ``mask`` (H×W); NaN for an empty mask."""
    b = _SSIM_BORDER
    weights = mask[b:-b, b:-b]
    total = float(weights.sum())
    if total < 1:
        return float("nan")
    return float((values[b:-b, b:-b] * weights).sum() / total)


class FScore:
    """Accumulates per-class true/false positives over a set of label maps."""

    def __init__(self, classes: int = 4) -> None:
        self.tp = np.zeros(classes)
        self.fp = np.zeros(classes)
        self.fn = np.zeros(classes)

    def update(self, predicted: np.ndarray, target: np.ndarray) -> None:
        """``predicted`` and ``target``: integer label maps of the same shape."""
        for c in range(len(self.tp)):
            p, t = predicted == c, target == c
            self.tp[c] += np.sum(p & t)
            self.fp[c] += np.sum(p & ~t)
            self.fn[c] += np.sum(~p & t)

    def scores(self) -> list[float]:
        precision = self.tp / np.maximum(self.tp + self.fp, 1)
        recall = self.tp / np.maximum(self.tp + self.fn, 1)
        f = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return [float(v) for v in f]
