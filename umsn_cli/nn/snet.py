"""S-Net: segments a *blurry* face into the four UMSN classes (docs/method.md, S-Net).

Three scales (H, H/2, H/4). The half-resolution copy of the image joins after the
first down step; dilated blocks widen the receptive field at H/4; skips bring the
H/4 and H/2 features back on the way up. Outputs are logits for four independent
sigmoids (multi-label: a pixel may be hair and background at a soft boundary), at
full and at half resolution (the latter only for the auxiliary loss).
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn.blocks import DenseBottleneck, DenseStage, SideOutputs, Transition, conv, half
from umsn_cli.nn.config import SNetConfig

NUM_CLASSES = 4


class SNet(nn.Module):
    def __init__(self, cfg: SNetConfig) -> None:
        super().__init__()
        w, g, norm = cfg.width, cfg.growth, "batch"
        self.stem = DenseBottleneck(3, cfg.stem_growth, norm, dilated=1)
        self.down1 = Transition(self.stem.out_channels, w, norm, "down")
        self.down2 = DenseStage(w + 3, g, w, norm, resample="down")
        self.quarter = nn.ModuleList(
            DenseStage(w, g, w, norm, dilated=2) for _ in range(cfg.quarter_blocks)
        )
        self.up1 = Transition(2 * w, w, norm, "up")
        self.half_out = DenseStage(2 * w, g, w, norm)
        self.half_head = conv(w, NUM_CLASSES, 3)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.full = DenseStage(w + self.stem.out_channels, cfg.full_growth, w, norm)
        sides = [
            (self.stem.out_channels, 1),
            (w, 2),
            (w, 4),
            *([(w, 4)] * cfg.quarter_blocks),
            (w, 2),
            (w, 2),
            (w, 1),
        ]
        self.sides = SideOutputs(sides)
        self.head = conv(w + len(sides), NUM_CLASSES, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` in [-1, 1], N×3×H×W → (logits N×4×H×W, half-resolution logits)."""
        s = self.stem(x)
        h0 = self.down1(s)
        q0 = self.down2(torch.cat([h0, half(x)], dim=1))
        q = q0
        quarter_features = []
        for stage in self.quarter:
            q = stage(q)
            quarter_features.append(q)
        u = self.up1(torch.cat([q, q0], dim=1))
        h1 = self.half_out(torch.cat([u, h0], dim=1))
        half_logits = self.half_head(h1)
        f = self.full(torch.cat([self.up2(h1), s], dim=1))
        sides = self.sides([s, h0, q0, *quarter_features, u, h1, f])
        return self.head(torch.cat([f, sides], dim=1)), half_logits
