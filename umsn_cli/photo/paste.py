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

from umsn_cli.photo.align import Alignment, real_share, warp

GROW = 0.04  # the face mask grows by this fraction of the crop side
FEATHER = 0.05  # then is blurred with σ of this fraction of the crop side
EDGE = 0.08  # and fades to 0 over this fraction of the crop side at its edges


def face_mask(probs: np.ndarray) -> torch.Tensor:
    """S×S soft mask of the face (everything but background) from 4×S×S class probabilities."""
    size = probs.shape[-1]
    face = torch.from_numpy((np.argmax(probs, axis=0) != 0).astype(np.float32))[None, None]
    grow = max(1, round(GROW * size))
    face = _dilate(face, grow)
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
    share = real_share(alignment.inverse(), (size, size), height, width)
    inside = (share >= 0.999).float()[None, None]  # 1×1×S×S: crop pixels wholly inside
    if bool(inside.all()):
        return torch.ones(size, size)
    grow = max(1, round(FEATHER * size))
    shrunk = -_dilate(-inside, grow)  # erode
    return (_gaussian(shrunk, FEATHER * size / 2)[0, 0] * inside[0, 0]).clamp(0, 1)


class Canvas:
    """Accumulates weighted changes from several faces, then applies them to the photo.

    Each face's change is kept only over the photo box its crop covers, so a small face
    in an 80-megapixel photo adds kilobytes, not a photo-sized buffer.
    """

    def __init__(self, photo: np.ndarray) -> None:
        self.photo = photo  # H×W×3 float32 in [0, 1]
        #: (left, top, right, bottom) in the photo, change·mask (h×w×3), mask (h×w)
        self.pieces: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]] = []

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
        self.pieces.append((box, region[..., :3], region[..., 3]))

    def result(self, *, in_place: bool = False) -> np.ndarray:
        """The photo with every face's change; untouched (bit-exact) where no mask reached.

        ``in_place`` writes into the photo array itself instead of a copy, sparing a
        photo-sized buffer when the caller has no further use for the original.
        """
        updates = []  # every box is computed from the original before any is written
        for box, *_ in self.pieces:
            left, top, right, bottom = box
            change, weight = self._sum(box)
            touched = weight > 0
            norm = np.maximum(weight[touched], 1.0)[:, None]  # overlaps: a weighted mean
            source = self.photo[top:bottom, left:right][touched]
            updates.append((box, touched, np.clip(source + change[touched] / norm, 0, 1)))
        out = self.photo if in_place else self.photo.copy()
        for (left, top, right, bottom), touched, values in updates:
            out[top:bottom, left:right][touched] = values
        return out

    def mask(self) -> np.ndarray:
        """H×W weight of the restored faces in [0, 1] (for previews)."""
        weight = np.zeros(self.photo.shape[:2], np.float32)
        for (left, top, right, bottom), _, piece in self.pieces:
            weight[top:bottom, left:right] += piece
        return np.clip(weight, 0, 1)

    def _sum(self, box: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The summed change and weight of every face over ``box``, in the order added."""
        left, top, right, bottom = box
        change = np.zeros((bottom - top, right - left, 3), np.float32)
        weight = np.zeros((bottom - top, right - left), np.float32)
        for (l2, t2, r2, b2), piece_change, piece_weight in self.pieces:
            x0, y0, x1, y1 = max(left, l2), max(top, t2), min(right, r2), min(bottom, b2)
            if x0 >= x1 or y0 >= y1:
                continue
            change[y0 - top : y1 - top, x0 - left : x1 - left] += piece_change[
                y0 - t2 : y1 - t2, x0 - l2 : x1 - l2
            ]
            weight[y0 - top : y1 - top, x0 - left : x1 - left] += piece_weight[
                y0 - t2 : y1 - t2, x0 - l2 : x1 - l2
            ]
        return change, weight


def _dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The max over a (2·radius+1)² square of each pixel of N×1×H×W ``x``, taken as a row
    pass then a column pass: the same result, at 2·(2r+1) rather than (2r+1)² reads a
    pixel (seconds saved on a 1024² crop)."""
    k = 2 * radius + 1
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))


def _gaussian(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
