"""A built-in example: a face that anyone may use, blurred the way UMSN expects.

The face is the astronaut portrait shipped with scikit-image (Eileen Collins, a NASA
photograph in the public domain), cropped to the canonical framing (the face fills
about 70% of the width) and resized to 128×128. The blur is a fixed linear motion of
11 pixels, so the example is the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from umsn_cli.blur import blur_image

#: (top, bottom, left, right) of the face crop in the 512×512 astronaut image.
_CROP = (10, 220, 122, 332)


def example_face(size: int = 128) -> np.ndarray:
    """The sharp example face, float32 size×size×3 in [0, 1]."""
    top, bottom, left, right = _CROP
    crop = Image.fromarray(data.astronaut()[top:bottom, left:right])
    crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.float32) / 255.0


def motion_kernel(length: int = 11, angle_degrees: float = 30.0) -> np.ndarray:
    """A straight motion-blur kernel: a line of ``length`` pixels, summing to 1."""
    size = length if length % 2 else length + 1
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = size // 2
    angle = np.deg2rad(angle_degrees)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        x, y = centre + t * np.cos(angle), centre - t * np.sin(angle)
        kernel[round(y), round(x)] += 1.0
    return kernel / kernel.sum()


def example_blurry(size: int = 128) -> np.ndarray:
    """The example face with the fixed motion blur: the input of ``--example``."""
    return blur_image(example_face(size), motion_kernel()).clip(0, 1)


def write_example(path: Path) -> Path:
    """Save the blurry example as an 8-bit PNG (the input the CLI then reads back)."""
    Image.fromarray(np.rint(example_blurry() * 255).astype(np.uint8)).save(path)
    return path
