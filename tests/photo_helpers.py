"""Photos built for the photo-mode tests: faces pasted into a textured scene."""

from __future__ import annotations

import numpy as np
from cli_helpers import face
from PIL import Image


def scene(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A smooth random texture (no faces), float32 H×W×3 in [0, 1]."""
    rng = np.random.default_rng(seed)
    small = (rng.random((height // 16, width // 16, 3)) * 255).astype(np.uint8)
    big = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255


def paste_face(photo: np.ndarray, x: int, y: int, size: int, angle: float = 0) -> np.ndarray:
    """``photo`` with the astronaut's face (size×size, rotated by ``angle``°) at (x, y)."""
    out = photo.copy()
    tile = face(size).rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    pixels = np.asarray(tile, dtype=np.float32) / 255
    top, left = max(y, 0), max(x, 0)
    bottom, right = min(y + size, photo.shape[0]), min(x + size, photo.shape[1])
    out[top:bottom, left:right] = pixels[top - y : bottom - y, left - x : right - x]
    return out
