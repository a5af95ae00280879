"""Aligned-face mode: getting a face crop into the model and the result back out.

The networks were trained on 128×128 crops with a fixed framing, so any other crop
size is resized to the model's input. Coming back, we never replace the crop by an
upsampled 128² image (that would throw away the resolution the user had): only the
change the model made is upsampled and added to the original,
``original + up(restored − down(original))``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_model_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    """H×W×3 float in [0, 1] → 3×size×size tensor (area-resampled when the size differs)."""
    x = torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1)[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x[0].clamp(0, 1)


def restored_at_source_size(
    restored: torch.Tensor, model_input: torch.Tensor, rgb: np.ndarray
) -> np.ndarray:
    """The restored crop at the source's size: the model's change added to the original."""
    height, width = rgb.shape[:2]
    if restored.shape[-2:] == (height, width):
        return restored.permute(1, 2, 0).numpy()
    delta = F.interpolate(
        (restored - model_input)[None], size=(height, width), mode="bicubic", align_corners=False
    )[0]
    # A copy: the source array may be a read-only view (grey replicated to 3 channels),
    # which torch.from_numpy warns about, and it must never be changed here.
    out = torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1) + delta
    return out.clamp(0, 1).permute(1, 2, 0).numpy()


def probs_at_source_size(probs: torch.Tensor, height: int, width: int) -> np.ndarray:
    """4×h×w class probabilities resized to the source (bilinear), float32 4×H×W."""
    if probs.shape[-2:] != (height, width):
        probs = F.interpolate(
            probs[None], size=(height, width), mode="bilinear", align_corners=False
        )[0]
    return probs.clamp(0, 1).numpy().astype(np.float32)
