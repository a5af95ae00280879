"""Boracchi–Foi kernels and the border-safe blur (docs/method.md, Blur synthesis)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from umsn_cli.blur import (
    KERNEL_SIZES,
    SHEN_SIZES,
    add_noise,
    blur_batch,
    blur_image,
    kernel_from_trajectory,
    path_length,
    random_kernels,
    trajectories,
)
from umsn_cli.blur.convolve import stack_kernels

SIZES = [13, 17, 21, 29, 13, 25]


def test_kernel_sizes():
    assert KERNEL_SIZES == (13, 15, 17, 19, 21, 23, 25, 27, 29)
    assert SHEN_SIZES == (13, 15, 17, 19, 21, 23, 25, 27)


def test_kernels_are_normalised_psfs_of_the_requested_size():
    kernels = random_kernels(SIZES, seed=0)
    assert len(kernels) == len(SIZES)
    for kernel, size in zip(kernels, SIZES, strict=True):
        assert kernel.shape == (size, size) and kernel.dtype == np.float32
        assert kernel.min() >= 0
        assert abs(float(kernel.sum(dtype=np.float64)) - 1) < 1e-5
        assert np.count_nonzero(kernel) > 1  # a path, not a point


def test_barycentre_is_the_centre_pixel():
    for kernel in random_kernels(SIZES, seed=1):
        rows, cols = np.indices(kernel.shape)
        k = kernel.astype(np.float64) / kernel.sum(dtype=np.float64)
        centre = (kernel.shape[0] - 1) / 2
        assert abs((k * rows).sum() - centre) < 1e-4
        assert abs((k * cols).sum() - centre) < 1e-4


def test_same_seed_same_kernels_other_seed_other_kernels():
    a = random_kernels(SIZES, seed=7)
    b = random_kernels(SIZES, seed=np.random.default_rng(7))
    c = random_kernels(SIZES, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not any(np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_exposure_keeps_part_of_the_path():
    full = random_kernels([21], seed=3)[0]
    short = random_kernels([21], seed=3, exposure=0.3)[0]
    assert short.shape == full.shape and abs(float(short.sum()) - 1) < 1e-5
    assert np.count_nonzero(short) < np.count_nonzero(full)


@pytest.mark.parametrize("bad", [[12], [1], [0]])
def test_even_or_tiny_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="odd"):
        random_kernels(bad, seed=0)


def test_exposure_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="exposure"):
        random_kernels([13], seed=0, exposure=0)


def test_trajectory_length_is_exactly_L():
    sizes = np.array([13, 19, 29, 64])
    lengths = np.array([path_length(s) for s in sizes])
    paths = trajectories(lengths, np.random.default_rng(0))
    assert paths.shape == (4, 2000) and np.iscomplexobj(paths)
    travelled = np.abs(np.diff(paths, axis=1)).sum(axis=1)
    np.testing.assert_allclose(travelled, lengths, rtol=1e-6)
    assert np.all(paths[:, 0] == 0)


def test_the_path_mass_lies_inside_the_support():
    """Rasterised on a support 2 pixels larger, the same path leaves a zero border and
    the inside equals the kernel: nothing was cropped away before normalising."""
    rng = np.random.default_rng(5)
    checked = 0
    for path in trajectories(np.full(20, path_length(17)), rng):
        kernel = kernel_from_trajectory(path, 17)
        if kernel is None:
            continue
        wider = kernel_from_trajectory(path, 19)
        assert wider is not None
        border = wider.copy()
        border[1:-1, 1:-1] = 0
        assert not border.any()
        np.testing.assert_allclose(wider[1:-1, 1:-1], kernel, atol=1e-7)
        checked += 1
    assert checked >= 5


def test_a_path_too_long_for_the_support_is_rejected():
    line = np.linspace(0, 40, 2000).astype(np.complex128)  # 40 px, support 13
    assert kernel_from_trajectory(line, 13) is None
    fits = kernel_from_trajectory(line / 10, 13)
    assert fits is not None and abs(float(fits.sum()) - 1) < 1e-6


def test_blur_matches_scipy_convolve_with_nearest_borders():
    rng = np.random.default_rng(0)
    image = rng.random((40, 52, 3), dtype=np.float32)
    for kernel in random_kernels([13, 21], seed=2):
        blurred = blur_image(image, kernel)
        assert blurred.shape == image.shape
        for c in range(3):
            reference = ndimage.convolve(
                image[..., c].astype(np.float64), kernel.astype(np.float64), mode="nearest"
            )
            np.testing.assert_allclose(blurred[..., c], reference, atol=1e-5)


def test_blur_is_a_convolution_not_a_correlation():
    kernel = np.zeros((5, 5), np.float32)
    kernel[2, 4] = 1  # pure shift
    image = np.zeros((9, 9), np.float32)
    image[4, 4] = 1
    out = blur_image(image, kernel)
    assert out[4, 6] == pytest.approx(1)  # convolution moves the impulse to +2 columns


def test_a_flat_image_stays_flat_up_to_the_border():
    image = np.full((30, 45, 3), 0.7, np.float32)
    for kernel in random_kernels([29, 13], seed=4):
        np.testing.assert_allclose(blur_image(image, kernel), 0.7, atol=1e-6)


def test_blur_batch_gives_each_image_its_kernel():
    rng = np.random.default_rng(1)
    images = rng.random((3, 3, 32, 32), dtype=np.float32)
    kernels = random_kernels([13, 21, 17], seed=6)
    batch = blur_batch(torch.from_numpy(images), stack_kernels(kernels)).numpy()
    for i, kernel in enumerate(kernels):
        single = blur_image(images[i].transpose(1, 2, 0), kernel).transpose(2, 0, 1)
        np.testing.assert_allclose(batch[i], single, atol=1e-5)


def test_add_noise_has_the_requested_std_and_is_seeded():
    images = torch.full((2, 3, 64, 64), 0.5)
    noisy = add_noise(images, 0.05, torch.Generator().manual_seed(0))
    again = add_noise(images, 0.05, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    assert float((noisy - images).std()) == pytest.approx(0.05, rel=0.05)
    assert float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    per_sample = add_noise(images, torch.tensor([0.0, 0.1]), torch.Generator().manual_seed(1))
    assert torch.equal(per_sample[0], images[0])
    assert float((per_sample[1] - images[1]).std()) == pytest.approx(0.1, rel=0.05)


def test_an_enlarged_kernel_is_the_same_shake_twice_as_large():
    from umsn_cli.blur.kernels import enlarged, shen_bank

    _, size, kernel = shen_bank(0, per_size=1)[0]
    big = enlarged(kernel, 2)
    assert big.shape == (2 * size + 1, 2 * size + 1) and abs(big.sum() - 1) < 1e-5
    assert big.min() >= 0

    # the same path: its energy spreads over about twice the extent in each direction
    def spread(k):
        ys, xs = np.nonzero(k > k.max() * 0.05)
        return max(np.ptp(ys), np.ptp(xs))

    assert 1.6 * spread(kernel) <= spread(big) <= 2.4 * spread(kernel) + 2
