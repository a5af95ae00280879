"""F-Net-i: the first stage, one network per semantic class (docs/method.md, F-Nets).

Each F-Net sees the blurry image with one class's soft mask and learns features for
that class alone (face skin, hair, ... blur differently and need different priors).
Its output is a feature map at H/2, consumed by B-Net. The image head exists only to
pre-train an F-Net on its own (stage 1); it is never run when deblurring.
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn.blocks import DenseBottleneck, DenseStage, Transition, conv, upsample
from umsn_cli.nn.config import FNetConfig


class FNet(nn.Module):
    def __init__(self, cfg: FNetConfig) -> None:
        super().__init__()
        w, norm = cfg.width, "instance"
        self.stem = DenseBottleneck(4, cfg.stem_growth, norm)
        self.down = Transition(self.stem.out_channels, w, norm, "down")
        # The last dilated block also sees the first H/2 feature (a local skip).
        widths_in = [w] * (cfg.dilated_blocks - 1) + [2 * w]
        self.blocks = nn.ModuleList(DenseStage(c, w, w, norm, dilated=2) for c in widths_in)
        self.image_head = FNetImageHead(cfg)
        self.out_channels = w

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class feature f_i (N×w×H/2×W/2) from the image in [-1, 1] and one mask."""
        e0 = self.down(self.stem(torch.cat([x, mask], dim=1)))
        e = e0
        for i, stage in enumerate(self.blocks):
            if i == len(self.blocks) - 1:
                e = torch.cat([e, e0], dim=1)
            e = stage(e)
        return e

    def restore(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Stage-1 pre-training only: an image restored from this class's feature alone."""
        return self.image_head(x, self(x, mask))


class FNetImageHead(nn.Module):
    """Block, bilinear up, difference head, tanh residual, refine (pre-training only)."""

    def __init__(self, cfg: FNetConfig) -> None:
        super().__init__()
        w, norm = cfg.width, "instance"
        self.block = DenseStage(w, w, w, norm)
        self.from_image = conv(3, w, 3)
        self.from_features = conv(w, w, 3)
        self.residual = conv(w, 3, 3)
        self.refine = Refine(8)

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        f = upsample(self.block(feature))
        r = torch.tanh(self.residual(self.from_image(x) - self.from_features(f)))
        return self.refine(x - r)


class Refine(nn.Sequential):
    """7×7 conv 3→w, LeakyReLU, 3×3 conv w→3, tanh: the last step of every image head."""

    def __init__(self, width: int) -> None:
        super().__init__(
            conv(3, width, 7), nn.LeakyReLU(0.2, inplace=True), conv(width, 3, 3), nn.Tanh()
        )
