"""Blurring images with kernels, without dark borders, on numpy arrays or torch batches.

``scipy.ndimage.convolve`` with zero padding darkens every border by the kernel's
mass outside the image; here the image is padded by replicating its edge, so a flat
image stays flat up to the border. The operation is a true convolution (the kernel is
flipped), matching ``scipy.ndimage.convolve(image, kernel, mode="nearest")``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def blur_batch(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve each image of ``images`` (N×C×H×W) with its own kernel (N×k×k, k odd).

    Kernels of different sizes are zero-padded to a common odd size by the caller
    (:func:`stack_kernels`); zero padding a centred kernel does not move it.
    """
    n, c, h, w = images.shape
    k = kernels.shape[-1]
    if kernels.shape != (n, k, k) or k % 2 == 0:
        raise ValueError(f"expected {n} odd square kernels, got shape {tuple(kernels.shape)}")
    pad = k // 2
    x = F.pad(images.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="replicate")
    weight = kernels.flip(-1, -2).to(images.dtype).repeat_interleave(c, dim=0)[:, None]
    return F.conv2d(x, weight, groups=n * c).reshape(n, c, h, w)


def stack_kernels(kernels: list[np.ndarray], size: int | None = None) -> torch.Tensor:
    """Zero-pad centred odd kernels to one size (default: the largest) and stack them."""
    size = size or max(k.shape[0] for k in kernels)
    out = torch.zeros(len(kernels), size, size)
    for i, k in enumerate(kernels):
        o = (size - k.shape[0]) // 2
        out[i, o : o + k.shape[0], o : o + k.shape[1]] = torch.from_numpy(np.asarray(k))
    return out


def blur_image(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur one float image (H×W or H×W×C) with one kernel; returns the same shape."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    chw = x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]
    k = torch.from_numpy(np.asarray(kernel, dtype=np.float32))[None]
    out = blur_batch(chw, k)[0]
    return (out[0] if x.ndim == 2 else out.permute(1, 2, 0)).numpy()


def add_noise(
    images: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Add gaussian noise of standard deviation ``sigma`` (on the [0, 1] scale), clip."""
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.view(-1, *([1] * (images.ndim - 1)))
    return (images + sigma * noise).clamp(0, 1)
