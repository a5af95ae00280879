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


def textures(count: int, width: int = 640, height: int = 480, seed: int = 0) -> list[np.ndarray]:
    """``count`` photos without a face, float32 H×W×3 in [0, 1], cycling through kinds a
    face detector can be fooled by: random colour fields (smooth and noisy), foliage
    (overlapping leaves), fabric (crossed gratings), text, and stone, grass and a cat
    from scikit-image, tiled and enlarged."""
    from PIL import ImageDraw
    from skimage import data

    rng = np.random.default_rng(seed)
    samples = [data.brick(), data.grass(), data.gravel(), data.chelsea(), data.coffee()]
    out = []
    for i in range(count):
        kind = i % 6
        if kind == 0:
            image = scene(width, height, seed=seed * 1000 + i)
        elif kind == 1:
            cell = int(rng.integers(2, 12))
            small = rng.random((height // cell + 1, width // cell + 1, 3))
            image = np.kron(small, np.ones((cell, cell, 1)))[:height, :width]
        elif kind == 2:  # foliage
            picture = Image.new(
                "RGB", (width, height), tuple(int(v) for v in rng.integers(0, 80, 3))
            )
            draw = ImageDraw.Draw(picture)
            for _ in range(300):
                x, y = rng.integers(0, width), rng.integers(0, height)
                w, h = rng.integers(6, 40, 2)
                green = (
                    int(rng.integers(20, 90)),
                    int(rng.integers(80, 220)),
                    int(rng.integers(10, 90)),
                )
                draw.ellipse((x, y, x + w, y + h), fill=green)
            image = np.asarray(picture) / 255
        elif kind == 3:  # fabric
            y, x = np.mgrid[:height, :width] / 8
            a, b = rng.uniform(0.5, 3, 2)
            weave = (np.sin(a * x + b * y) * np.sin(b * x - a * y) + 1) / 2
            tint = rng.uniform(0.3, 1, 3)
            image = weave[..., None] * tint
        elif kind == 4:  # text
            picture = Image.new("RGB", (width, height), "white")
            draw = ImageDraw.Draw(picture)
            for row in range(0, height, 14):
                words = "".join(chr(int(c)) for c in rng.integers(97, 123, 90))
                draw.text((4, row), words, fill="black")
            image = np.asarray(picture) / 255
        else:  # a sample of scikit-image's, enlarged 1–3×
            sample = samples[i // 6 % len(samples)]
            sample = sample if sample.ndim == 3 else np.repeat(sample[..., None], 3, 2)
            big = Image.fromarray(np.ascontiguousarray(sample[..., :3]))
            scale = 1 + i // 6 % 3
            big = big.resize((big.width * scale, big.height * scale), Image.Resampling.BICUBIC)
            image = np.asarray(big)[:height, :width] / 255
        out.append(np.ascontiguousarray(image, dtype=np.float32))
    return out
