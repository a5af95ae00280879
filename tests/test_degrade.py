"""The training degradation mix: camera shake with turns and dwell, defocus, noise, JPEG."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from umsn_cli.blur.degrade import (
    KINDS,
    MIXES,
    degrade,
    disc_kernels,
    draw_kernels,
    gaussian_kernels,
    jpeg,
    motion_bank,
    shake_kernels,
)
from umsn_cli.blur.kernels import random_kernels


def centre_of_mass(k: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(k.shape)
    return float((k * ys).sum() / k.sum()), float((k * xs).sum() / k.sum())


def test_shake_kernels_are_centred_normalised_and_reproducible():
    sizes = [5, 13, 31, 31]
    a = shake_kernels(sizes, np.random.default_rng(1), turns=2.0, dwell=1.0)
    b = shake_kernels(sizes, np.random.default_rng(1), turns=2.0, dwell=1.0)
    for k, again, size in zip(a, b, sizes, strict=True):
        assert k.shape == (size, size)
        assert k.sum() == pytest.approx(1.0, abs=1e-5) and (k >= 0).all()
        cy, cx = centre_of_mass(k)
        assert cy == pytest.approx(size // 2, abs=1e-3) and cx == pytest.approx(size // 2, abs=1e-3)
        np.testing.assert_array_equal(k, again)


def test_dwell_makes_the_path_unevenly_bright():
    """With uneven speed the brightest pixel holds more of the mass than with even speed."""
    rng = np.random.default_rng(0)
    even = shake_kernels([31] * 40, rng, turns=0.0, dwell=0.0)
    rng = np.random.default_rng(0)
    uneven = shake_kernels([31] * 40, rng, turns=0.0, dwell=1.5)
    peak = lambda ks: np.median([k.max() for k in ks])  # noqa: E731
    assert peak(uneven) > 1.2 * peak(even)


def test_the_motion_mix_is_the_papers_bank():
    """``motion`` keeps the kernels umsn-lite was trained with, bit for bit."""
    bank = motion_bank(MIXES["motion"], 30, seed=0)
    rng = np.random.default_rng([0, 1])
    sizes = rng.choice(MIXES["motion"].motion_sizes, 30)
    expected = random_kernels(sizes, rng)
    assert bank.shape == (30, 29, 29)
    for k, e in zip(bank, expected, strict=True):
        o = (29 - e.shape[0]) // 2
        np.testing.assert_array_equal(k[o : o + e.shape[0], o : o + e.shape[0]].numpy(), e)


def test_real_mix_covers_every_kind_in_its_shares():
    mix = MIXES["real"]
    assert sum(mix.shares) == pytest.approx(1.0)
    assert max(mix.motion_sizes) == 31 and mix.support == 31
    bank = motion_bank(mix, 50, seed=0)
    g = torch.Generator().manual_seed(0)
    kernels, kinds = draw_kernels(mix, bank, 4000, g)
    counts = {k: kinds.count(k) / len(kinds) for k in KINDS}
    for kind, share in zip(KINDS, mix.shares, strict=True):
        assert counts[kind] == pytest.approx(share, abs=0.03)
    assert torch.allclose(kernels.sum((1, 2)), torch.ones(4000), atol=1e-5)
    sharp = [i for i, k in enumerate(kinds) if k == "sharp"]
    assert kernels[sharp[0], 15, 15] == 1


def test_wide_mix_reaches_near_identity_and_severe_shake_in_its_bands():
    mix = MIXES["wide"]
    assert sum(mix.shares) == pytest.approx(1.0)
    assert min(mix.motion_sizes) == 3 and max(mix.motion_sizes) == 45 and mix.support == 45
    sizes = mix.draw_sizes(20000, np.random.default_rng(0))
    for low, high, share in ((3, 11, 0.25), (13, 27, 0.5), (29, 45, 0.25)):
        assert ((sizes >= low) & (sizes <= high)).mean() == pytest.approx(share, abs=0.02)
    bank = motion_bank(mix, 40, seed=0)
    assert bank.shape == (40, 45, 45)
    assert torch.allclose(bank.sum((1, 2)), torch.ones(40), atol=1e-5)


def test_gentle_mix_adds_mild_blur_and_keeps_the_protocol_sizes_share():
    """Of all samples: 30 % shake of 3–11 px where real has 20 % at 5–11, the same
    40 % at 13–27 px, and more unblurred faces."""
    gentle, real = MIXES["gentle"], MIXES["real"]
    assert sum(gentle.shares) == pytest.approx(1.0) and gentle.support == 31
    rng = np.random.default_rng(0)

    def share(mix, low, high):
        sizes = mix.draw_sizes(20000, rng)
        return mix.motion * ((sizes >= low) & (sizes <= high)).mean()

    assert share(gentle, 3, 11) == pytest.approx(0.30, abs=0.02)
    assert share(real, 3, 11) == pytest.approx(0.20, abs=0.02)
    assert share(gentle, 13, 27) == pytest.approx(share(real, 13, 27), abs=0.02)
    assert gentle.sharp > real.sharp


def test_the_real_mix_bank_is_unchanged_by_size_weights():
    """Weights are drawn only where a mix has them: the real mix's bank stays the same."""
    mix = MIXES["real"]
    rng = np.random.default_rng([0, 1])
    sizes = rng.choice(mix.motion_sizes, 30)
    expected = shake_kernels(sizes, rng, mix.shake_turns, mix.dwell)
    bank = motion_bank(mix, 30, seed=0)
    for k, e in zip(bank, expected, strict=True):
        o = (31 - e.shape[0]) // 2
        np.testing.assert_array_equal(k[o : o + e.shape[0], o : o + e.shape[0]].numpy(), e)


def test_disc_and_gaussian_kernels():
    disc = disc_kernels(torch.tensor([3.0]), 15)[0]
    assert disc[7, 7] == disc.max() and disc[7, 7 + 5] == 0 and disc[7, 7 + 3] > 0
    gauss = gaussian_kernels(torch.tensor([1.0, 2.0]), 15)
    assert gauss[0, 7, 7] > gauss[1, 7, 7]  # wider blur, lower peak
    for k in (disc, *gauss):
        assert k.sum() == pytest.approx(1.0, abs=1e-5)


def test_degrade_is_seeded_and_stays_in_range():
    mix = MIXES["real"]
    bank = motion_bank(mix, 20, seed=0)
    sharp = torch.rand(8, 3, 32, 32)
    a = degrade(sharp, mix, bank, torch.Generator().manual_seed(3))
    b = degrade(sharp, mix, bank, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    assert a.shape == sharp.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, sharp)


def test_jpeg_round_trip_loses_detail_by_quality():
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    low, high = jpeg(image, 30), jpeg(image, 95)
    assert low.shape == image.shape
    assert (high - image).abs().mean() < (low - image).abs().mean()


def test_preview_has_a_row_per_kind_in_the_mix():
    from umsn_cli.blur.degrade import preview

    mix = MIXES["real"]
    sharp = torch.rand(2, 3, 32, 32)
    picture = preview(sharp, mix, motion_bank(mix, 10, seed=0), columns=3)
    assert picture.dtype == np.uint8 and picture.shape == (4 * 32, 12 + 3 * 32, 3)
    only_motion = preview(sharp, MIXES["motion"], motion_bank(MIXES["motion"], 10, 0), columns=3)
    assert only_motion.shape[0] == 32
