"""Synthetic motion blur: Boracchi–Foi camera-shake kernels and a border-safe convolution."""

from umsn_cli.blur.convolve import add_noise, blur_batch, blur_image
from umsn_cli.blur.kernels import (
    KERNEL_SIZES,
    SHEN_SIZES,
    kernel_from_trajectory,
    path_length,
    random_kernels,
    trajectories,
)

__all__ = [
    "KERNEL_SIZES",
    "SHEN_SIZES",
    "add_noise",
    "blur_batch",
    "blur_image",
    "kernel_from_trajectory",
    "path_length",
    "random_kernels",
    "trajectories",
]
