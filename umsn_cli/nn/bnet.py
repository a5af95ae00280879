"""B-Net and the UMSN generator: the second stage (docs/method.md, B-Net and the generator).

B-Net takes the blurry image, its half-resolution copy, the four soft masks and the
four class features, and predicts a residual that is subtracted from the blurry
image. Nested residual learning: the fused class features enter both the H/2 body
and the half-scale residual head, and the full-resolution residual is then taken
from the input. Masks are only ever input channels; nothing multiplies the image
by a mask, so a wrong mask degrades gracefully instead of cutting holes.
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn.blocks import DenseStage, SideOutputs, conv, half, upsample
from umsn_cli.nn.config import BNetConfig
from umsn_cli.nn.fnet import Refine
from umsn_cli.nn.snet import NUM_CLASSES


class BNet(nn.Module):
    def __init__(
        self, cfg: BNetConfig, class_feature_width: int, mask_channels: int = NUM_CLASSES
    ) -> None:
        """``class_feature_width=0, mask_channels=0`` is the paper's plain B-Net baseline:
        the same network without semantic guidance (the ablation of Tables I and VI)."""
        super().__init__()
        w, norm = cfg.width, "instance"
        guide = 3 + mask_channels  # image and masks, fed again at every full-resolution step
        fused = cfg.fuse_width if class_feature_width else 0
        self.fuse = (
            DenseStage(NUM_CLASSES * class_feature_width, cfg.fuse_width, cfg.fuse_width, norm)
            if class_feature_width
            else None
        )
        self.full_in = DenseStage(guide, cfg.full_growth, w // 2, norm, resample="down")
        self.half_in = DenseStage(w // 2 + 3 + fused, w, w, norm, dilated=2)
        self.body = nn.ModuleList(
            DenseStage(w, w, w, norm, dilated=2) for _ in range(cfg.dilated_blocks)
        )
        self.half_out = DenseStage(2 * w + fused, w, w, norm)
        self.half_residual = conv(w, 3, 3)
        self.full_out = DenseStage(w + guide, cfg.full_growth, cfg.head_width, norm)
        sides = [(w // 2, 2), (w, 2), *([(w, 2)] * cfg.dilated_blocks), (w, 2), (cfg.head_width, 1)]
        self.sides = SideOutputs(sides)
        self.from_image = conv(guide, cfg.head_width, 3)
        self.from_features = conv(cfg.head_width + len(sides), cfg.head_width, 3)
        self.residual = conv(cfg.head_width, 3, 3)
        self.refine = Refine(cfg.refine_width)

    def forward(
        self, x: torch.Tensor, masks: torch.Tensor, class_features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored image, half-scale restored image), both in [-1, 1]."""
        x_half = half(x)
        guide = torch.cat([x, masks], dim=1)
        # Without class features (the plain baseline) the fused part has no channels.
        fused = self.fuse(torch.cat(class_features, 1)) if self.fuse else x_half[:, :0]
        h0 = self.full_in(guide)
        h1 = self.half_in(torch.cat([h0, x_half, fused], dim=1))
        h = h1
        body = []
        for stage in self.body:
            h = stage(h)
            body.append(h)
        h = self.half_out(torch.cat([h, h1, fused], dim=1))
        half_image = x_half - torch.tanh(self.half_residual(h))
        f = self.full_out(torch.cat([upsample(h), guide], dim=1))
        sides = self.sides([h0, h1, *body, h, f])
        features = self.from_features(torch.cat([f, sides], dim=1))
        r = torch.tanh(self.residual(self.from_image(guide) - features))
        return self.refine(x - r), half_image
