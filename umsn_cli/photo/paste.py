"""Putting restored faces back into the photo without seams.

Only the *change* the model made is pasted, weighted by a feathered mask: the face
(skin, features, hair from S-Net) grown a little and blurred, and faded out towards
the crop's edges. Where the mask is 0 the photo's pixels are returned untouched, bit
for bit; inside it, the photo's own detail stays, because the change is added to the
original pixels rather than replacing them with a resampled crop. Overlapping faces
share a pixel in proportion to their masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from umsn_cli.photo.align import Alignment, warp

GROW = 0.04  # the face mask grows by this fraction of the crop side
FEATHER = 0.05  # then is blurred with σ of this fraction of the crop side
EDGE = 0.08  # and fades to 0 over this fraction of the crop side at its edges


def face_mask(probs: np.ndarray) -> torch.Tensor:
    """S×S soft mask of the face (everything but background) from 4×S×S class probabilities."""
    size = probs.shape[-1]
    face = torch.from_numpy((np.argmax(probs, axis=0) != 0).astype(np.float32))[None, None]
    grow = max(1, round(GROW * size))
    face = F.max_pool2d(face, 2 * grow + 1, stride=1, padding=grow)
    face = _gaussian(face, FEATHER * size)
    ramp = torch.clamp(
        torch.minimum(torch.arange(size), torch.arange(size).flip(0)) / (EDGE * size), 0, 1
    )
    return (face[0, 0] * ramp[None, :] * ramp[:, None]).clamp(0, 1)


def real_pixels_mask(alignment: Alignment, height: int, width: int) -> torch.Tensor:
    """S×S weight that is 0 wherever the crop had no real photo pixels, and fades in.

    A face cut by the photo's border gets a crop whose outside part is invented (the
    photo mirrored). The model's change there is never pasted, and near it the change
    fades out over the feather width, so nothing invented bleeds into the real pixels.
    """
    size = alignment.size
    inside = warp(torch.ones(1, height, width), alignment.inverse(), (size, size), "bilinear")
    inside = (inside >= 0.999).float()[None]  # 1×1×S×S: crop pixels wholly inside
    if bool(inside.all()):
        return torch.ones(size, size)
    grow = max(1, round(FEATHER * size))
    shrunk = -F.max_pool2d(-inside, 2 * grow + 1, stride=1, padding=grow)  # erode
    return (_gaussian(shrunk, FEATHER * size / 2)[0, 0] * inside[0, 0]).clamp(0, 1)


class Canvas:
    """Accumulates weighted changes from several faces, then applies them to the photo."""

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo  # H×W×3 float32 in [0, 1]
        height, width = photo.shape[:2]
        self.change = np.zeros((height, width, 3), dtype=np.float32)
        self.weight = np.zeros((height, width), dtype=np.float32)

    def add(self, alignment: Alignment, change: torch.Tensor, mask: torch.Tensor) -> None:
        """Add a face's change (3×S×S, crop coordinates) under its mask (S×S)."""
        height, width = self.photo.shape[:2]
        box = alignment.photo_box(width, height)
        if box is None:
            return
        left, top, right, bottom = box
        stacked = torch.cat([change * mask, mask[None]])
        region = warp(stacked, alignment.matrix, (bottom - top, right - left), offset=(left, top))
        region = region.permute(1, 2, 0).numpy()
        self.change[top:bottom, left:right] += region[..., :3]
        self.weight[top:bottom, left:right] += region[..., 3]

    def result(self) -> np.ndarray:
        """The photo with every face's change; untouched (bit-exact) where no mask reached."""
        out = self.photo.copy()
        touched = self.weight > 0
        norm = np.maximum(self.weight[touched], 1.0)[:, None]  # overlaps: a weighted mean
        out[touched] = np.clip(self.photo[touched] + self.change[touched] / norm, 0, 1)
        return out

    def mask(self) -> np.ndarray:
        """H×W weight of the restored faces in [0, 1] (for previews)."""
        return np.clip(self.weight, 0, 1)


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
