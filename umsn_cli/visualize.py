"""Pictures people would rather look at than numbers: label maps, overlays, comparisons."""

from __future__ import annotations

import numpy as np

from umsn_cli.images import quantise

#: The four UMSN classes, in output-channel order, with the colour each gets in overlays.
CLASS_NAMES = ("background", "skin", "features", "hair")
CLASS_COLOURS = (
    np.array([(0, 0, 0), (255, 170, 60), (230, 30, 90), (50, 120, 255)], dtype=np.float32) / 255.0
)


def labels_from_probs(probs: np.ndarray) -> np.ndarray:
    """4×H×W independent-sigmoid probabilities → H×W uint8 labels 0–3 (most likely class)."""
    return np.argmax(probs, axis=0).astype(np.uint8)


def overlay(rgb: np.ndarray, labels: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """The image with each non-background class tinted in its colour (uint8 H×W×3)."""
    colours = CLASS_COLOURS[labels]
    weight = np.where(labels[..., None] > 0, opacity, 0.0).astype(np.float32)
    return quantise(rgb * (1 - weight) + colours * weight)


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Images of equal height next to each other, separated by a white gap (uint8)."""
    height = images[0].shape[0]
    spacer = np.ones((height, gap, 3), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        if i:
            parts.append(spacer)
        parts.append(image)
    return quantise(np.concatenate(parts, axis=1))
