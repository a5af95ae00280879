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
- Shift-aligned scores (``--align PX``, the convention of blind-deblurring benchmarks
  with real kernels, Levin et al. 2009, Köhler et al. 2012): a blind deblurrer cannot
  know where the sharp image sits, so each image is compared after the integer shift
  within ±PX that gives it the highest PSNR; both images lose a PX-pixel border so
  every shift compares the same number of real pixels. The SSIM and the per-class
  scores of that image use the same shift.
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


def best_shift(restored: np.ndarray, sharp: np.ndarray, max_shift: int) -> tuple[int, int]:
    """The integer (dy, dx) within ±max_shift that moves ``restored`` closest to ``sharp``.

    Compared on the interior (a ``max_shift`` border left out), by squared error of the
    8-bit images; ties go to the smallest shift (|dy| + |dx|, then dy, then dx).

    All (2·max_shift + 1)² errors come at once, ``Σ moved² − 2 Σ moved·target + Σ
    target²``: the first term from an integral image, the second from one FFT
    cross-correlation. The 8-bit values make every sum an integer, so rounding the FFT's
    result gives the exact errors a loop over the shifts would, ties included, in a third
    of its time at 128² (this runs twice per benchmark image).
    """
    if max_shift <= 0:
        return 0, 0
    a, b = to_8bit(restored), to_8bit(sharp)
    m = max_shift
    height, width = b.shape[:2]
    if height <= 2 * m or width <= 2 * m:
        raise ValueError(f"--align {m} leaves nothing of a {height}×{width} image")
    target = b[m : height - m, m : width - m]
    th, tw = target.shape[:2]
    # Σ over each shifted window of a²: four corners of the integral image.
    integral = np.pad((a**2).sum(axis=2).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    energy = integral[th:, tw:] - integral[:-th, tw:] - integral[th:, :-tw] + integral[:-th, :-tw]
    # Σ a[y + i, x + j] · target[y, x] for i, j in 0…2m: no index wraps, so the circular
    # correlation of the FFT is the plain one there.
    axes = (0, 1)
    spectrum = np.fft.rfft2(a, axes=axes) * np.conj(np.fft.rfft2(target, (height, width), axes))
    cross = np.fft.irfft2(spectrum, (height, width), axes).sum(axis=2)[: 2 * m + 1, : 2 * m + 1]
    err = energy - 2 * np.rint(cross)  # Σ target² is the same for every shift
    dy, dx = np.nonzero(err == err.min())
    dy, dx = dy - m, dx - m
    first = np.lexsort((dx, dy, np.abs(dy) + np.abs(dx)))[0]
    return int(dy[first]), int(dx[first])


def aligned(
    restored: np.ndarray, sharp: np.ndarray, shift: tuple[int, int], max_shift: int
) -> tuple[np.ndarray, np.ndarray]:
    """The interiors of ``restored`` moved by ``shift`` and of ``sharp``, ready to score."""
    m = max_shift
    if m <= 0:
        return restored, sharp
    dy, dx = shift
    height, width = sharp.shape[:2]
    return (
        restored[m + dy : height - m + dy, m + dx : width - m + dx],
        sharp[m : height - m, m : width - m],
    )


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
