"""The score conventions, checked against values computed here independently.

PSNR: RGB, both images rounded to 8 bits, peak 255. SSIM: an 11×11 Gaussian window
of σ = 1.5, population statistics, C1 = (0.01·255)², C2 = (0.03·255)², the 5-pixel
border the window cannot cover left out, averaged over the RGB channels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from umsn_cli.metrics import map_mean, masked_psnr, masked_ssim, psnr, ssim, ssim_map


def reference_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM per pixel and channel, written out from Wang et al. (2004)."""
    a = np.round(np.clip(a, 0, 1) * 255)
    b = np.round(np.clip(b, 0, 1) * 255)
    blur = lambda x: gaussian_filter(x, sigma=1.5, truncate=3.5)  # noqa: E731 - 11×11 window
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for ch in range(3):
        x, y = a[..., ch], b[..., ch]
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        out.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return np.stack(out, axis=2)


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    sharp = gaussian_filter(rng.random((48, 40, 3)), sigma=(2, 2, 0))
    return np.clip(sharp + rng.normal(0, 0.05, sharp.shape), 0, 1), sharp


def test_psnr_is_rgb_8bit_with_peak_255():
    sharp = np.full((8, 8, 3), 100 / 255)
    restored = sharp.copy()
    restored[..., 0] += 10 / 255  # one channel 10 levels off: MSE = 100 / 3
    assert psnr(restored, sharp) == pytest.approx(10 * math.log10(255**2 / (100 / 3)))
    # Below half a level, both round to the same 8-bit value: identical files.
    assert psnr(sharp + 0.4 / 255, sharp) == math.inf


def test_ssim_matches_the_formula_with_a_gaussian_window(pair):
    restored, sharp = pair
    expected = reference_ssim_map(restored, sharp)[5:-5, 5:-5].mean()
    assert ssim(restored, sharp) == pytest.approx(expected, abs=1e-6)
    assert map_mean(ssim_map(restored, sharp)) == pytest.approx(expected, abs=1e-6)
    assert ssim(sharp, sharp) == pytest.approx(1.0)


def test_masked_scores_use_only_the_class_pixels(pair):
    restored, sharp = pair
    restored = restored.copy()
    restored[:, 20:] = sharp[:, 20:]  # the right half is perfect
    left = np.zeros(sharp.shape[:2])
    left[:, :20] = 1
    errors = (np.round(restored * 255) - np.round(sharp * 255))[:, :20] ** 2
    assert masked_psnr(restored, sharp, left) == pytest.approx(
        10 * math.log10(255**2 / errors.mean())
    )
    assert masked_psnr(restored, sharp, 1 - left) == math.inf
    assert math.isnan(masked_psnr(restored, sharp, np.zeros_like(left)))
    values = ssim_map(restored, sharp)
    reference = reference_ssim_map(restored, sharp).mean(axis=2)
    assert masked_ssim(values, left) == pytest.approx(reference[5:-5, 5:20].mean(), abs=1e-6)
    assert masked_ssim(values, np.ones_like(left)) == pytest.approx(ssim(restored, sharp))
    assert math.isnan(masked_ssim(values, np.zeros_like(left)))


def test_best_shift_finds_the_offset_and_prefers_no_shift_on_ties():
    from umsn_cli.metrics import aligned, best_shift

    rng = np.random.default_rng(0)
    sharp = rng.random((40, 40, 3))
    moved = np.roll(sharp, (-3, 2), axis=(0, 1))
    assert best_shift(moved, sharp, 4) == (-3, 2)
    a, b = aligned(moved, sharp, (-3, 2), 4)
    assert a.shape == b.shape == (32, 32, 3)
    assert psnr(a, b) == float("inf")
    flat = np.full((20, 20, 3), 0.5)
    assert best_shift(flat, flat, 3) == (0, 0)
    assert best_shift(moved, sharp, 0) == (0, 0)
    with pytest.raises(ValueError, match="align"):
        best_shift(flat, flat, 10)


def reference_best_shift(restored, sharp, m):
    """The definition, pixel by pixel: every shift's squared error, smallest shift first."""
    a = np.round(np.clip(restored, 0, 1) * 255)
    b = np.round(np.clip(sharp, 0, 1) * 255)
    h, w = b.shape[:2]
    target = b[m : h - m, m : w - m]
    shifts = sorted(
        ((dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)),
        key=lambda s: (abs(s[0]) + abs(s[1]), s[0], s[1]),
    )
    errors = [
        ((a[m + dy : h - m + dy, m + dx : w - m + dx] - target) ** 2).sum() for dy, dx in shifts
    ]
    return shifts[int(np.argmin(errors))]


@pytest.mark.parametrize("seed", range(6))
def test_best_shift_agrees_with_the_pixel_loop_ties_included(seed):
    from umsn_cli.metrics import best_shift

    rng = np.random.default_rng(seed)
    h, w = rng.integers(24, 70, size=2)
    sharp = rng.random((h, w, 3))
    restored = np.clip(sharp + rng.normal(0, 0.2, sharp.shape), 0, 1)
    restored = np.roll(restored, rng.integers(-3, 4, size=2), axis=(0, 1))
    assert best_shift(restored, sharp, 4) == reference_best_shift(restored, sharp, 4)
    # A pattern with period 2 ties every other shift: the smallest one must win.
    stripes = np.indices((h, w)).sum(axis=0) % 2
    tied = np.repeat(stripes[..., None], 3, axis=2).astype(float)
    moved = np.roll(tied, 1, axis=1)
    assert best_shift(moved, tied, 3) == reference_best_shift(moved, tied, 3)
    assert best_shift(moved, tied, 3) in {(0, 1), (0, -1), (1, 0), (-1, 0)}
