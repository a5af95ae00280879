"""Aligning a face to the model's framing, and mapping results back into the photo.

Each model was trained on one framing, its input contract's
(:class:`umsn_cli.contract.InputContract`): where the 5 landmarks YuNet finds sit in
its crop. A face in a photo is mapped onto them by the similarity transform
(rotation, uniform scale, translation) that fits its landmarks best in the
least-squares sense (Umeyama 1991).

Crops are taken at the photo's own resolution (never smaller than the model input),
so a large face is not shrunk on the way in; the restorer resizes for the network and
returns only the change it made, upsampled (:mod:`umsn_cli.aligned`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from umsn_cli.contract import InputContract

#: The largest crop side: a bigger face is cropped at this size; the photo keeps its
#: detail anyway, because only the model's upsampled change is added back.
MAX_CROP = 1024


@dataclass(frozen=True)
class Alignment:
    """Where one face's crop lies in the photo: ``matrix`` maps photo → crop pixels."""

    matrix: np.ndarray  # 2×3 affine (a similarity), pixel centres at integers
    size: int  # the crop is size×size

    @property
    def scale(self) -> float:
        """Crop pixels per photo pixel (the similarity's scale)."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def inverse(self) -> np.ndarray:
        """The 2×3 matrix mapping crop pixels → photo pixels."""
        linear = np.linalg.inv(self.matrix[:, :2])
        return np.hstack([linear, -linear @ self.matrix[:, 2:]])

    def photo_box(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """The photo pixels the crop covers (left, top, right, bottom exclusive), clipped."""
        corners = np.array([[0, 0], [self.size, 0], [0, self.size], [self.size, self.size]])
        corners = corners - 0.5  # the crop's outer pixel edges
        photo = corners @ self.inverse()[:, :2].T + self.inverse()[:, 2]
        left, top = np.floor(photo.min(axis=0)).astype(int)
        right, bottom = np.ceil(photo.max(axis=0)).astype(int) + 1
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, width), min(bottom, height)
        if left >= right or top >= bottom:
            return None
        return int(left), int(top), int(right), int(bottom)


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 similarity best mapping ``source`` points onto ``target`` (least squares)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s / len(source))
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])  # a rotation, never a reflection
    rotation = u @ d @ vt
    scale = np.trace(np.diag(sigma) @ d) / s.var(axis=0).sum()
    linear = scale * rotation
    return np.hstack([linear, (mu_t - linear @ mu_s)[:, None]])


def align(landmarks: np.ndarray, contract: InputContract) -> Alignment:
    """The crop of a face: the contract's framing at the face's own resolution."""
    input_size = contract.size
    matrix = similarity(landmarks, contract.template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # crop px per photo px
    size = int(min(MAX_CROP, max(input_size, round(input_size / scale))))
    return Alignment(matrix * size / input_size, size)


def crop(photo: np.ndarray, alignment: Alignment) -> torch.Tensor:
    """The aligned face crop (3×S×S) from an H×W×3 photo.

    Past the photo's border the photo is mirrored (which looks like more of the scene
    to the network, where repeated edge pixels look like streaks);
    :func:`umsn_cli.photo.paste.real_pixels_mask` keeps that part out of the paste.
    Only the window the sampler reads (the crop's footprint, its mirror images and the
    bicubic taps) is converted, so a small face costs little in a huge photo.
    """
    height, width = photo.shape[:2]
    size = (alignment.size, alignment.size)
    x_in, y_in = sample_points(alignment.inverse(), size)
    left, right = _window(float(x_in.min()), float(x_in.max()), width)
    top, bottom = _window(float(y_in.min()), float(y_in.max()), height)
    window = torch.from_numpy(np.array(photo[top:bottom, left:right], dtype=np.float32))
    shifted = alignment.inverse() - np.array([[0, 0, left], [0, 0, top]])
    return warp(window.permute(2, 0, 1), shifted, size, "bicubic", "reflection")


def _window(low: float, high: float, length: int) -> tuple[int, int]:
    """The pixels [start, stop) that sampling coordinates in [low, high] read along an
    axis of ``length`` pixels: mirrored about the outer pixel edges, plus the two
    pixels of bicubic taps on each side."""
    if low < 0:  # mirrored about -0.5: x → -1 - x
        low, high = 0.0, max(high, -1 - low)
    if high > length - 1:  # mirrored about length - 0.5: x → 2·length - 1 - x
        low, high = min(low, 2 * length - 1 - high), float(length - 1)
    return max(0, int(np.floor(low)) - 2), min(length, int(np.ceil(high)) + 3)


def sample_points(
    out_to_in: np.ndarray, size: tuple[int, int], offset: tuple[int, int] = (0, 0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input pixel coordinates (x, y; float64, each of ``size``) of every output pixel.

    ``out_to_in`` maps output pixel coordinates (shifted by ``offset``: the output's
    top-left pixel in the 2×3 matrix's frame) to input pixel coordinates.
    """
    height, width = size
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64) + offset[1],
        torch.arange(width, dtype=torch.float64) + offset[0],
        indexing="ij",
    )
    m = torch.from_numpy(np.asarray(out_to_in, dtype=np.float64))
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def real_share(
    out_to_in: np.ndarray, size: tuple[int, int], height: int, width: int
) -> torch.Tensor:
    """How much of each output pixel's bilinear sample comes from a real photo pixel
    (1 inside, falling to 0 within a pixel past the outer pixel centres): what warping
    an all-ones height×width image with zero padding gives, without building it."""
    x_in, y_in = sample_points(out_to_in, size)
    share_x = torch.minimum(x_in + 1, width - x_in).clamp(0, 1)
    share_y = torch.minimum(y_in + 1, height - y_in).clamp(0, 1)
    return (share_x * share_y).float()


def warp(
    image: torch.Tensor,
    out_to_in: np.ndarray,
    size: tuple[int, int],
    mode: str = "bilinear",
    padding: str = "zeros",
    offset: tuple[int, int] = (0, 0),
) -> torch.Tensor:
    """Sample ``image`` (C×H×W) on an output grid of ``size`` (height, width) at the
    points :func:`sample_points` gives."""
    x_in, y_in = sample_points(out_to_in, size, offset)
    in_h, in_w = image.shape[-2:]
    grid = torch.stack([(2 * x_in + 1) / in_w - 1, (2 * y_in + 1) / in_h - 1], dim=-1)
    out = F.grid_sample(
        image[None].float(), grid[None].float(), mode=mode, padding_mode=padding,
        align_corners=False,
    )  # fmt: skip
    return out[0]
