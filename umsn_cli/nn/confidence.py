"""The confidence network CN (docs/method.md, Confidence network), used only in training.

For each class i it looks at the masked output and the masked sharp target and says
how confident the reconstruction of that class is: C_i in (0, 1). The loss weights
each class's L1 term by C_i and adds −λ log C_i, so the generator is pushed hardest
where it is already close, and CN cannot cheat by answering 0. It needs the sharp
target, so it never runs at inference.
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn.blocks import DenseStage, conv
from umsn_cli.nn.snet import NUM_CLASSES


class ConfidenceNet(nn.Module):
    """A 3×3 conv, then three (down, small block) steps, pooling and a sigmoid score.

    Each block works after its down step (H/2, H/4, H/8): CN runs on four masked
    pairs per image, and at full resolution it would cost more than the generator.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        norm = "instance"
        self.stem = conv(6, width, 3)
        self.down = nn.Sequential(
            nn.AvgPool2d(2),
            DenseStage(width, width, width, norm),
            nn.AvgPool2d(2),
            DenseStage(width, width, 2 * width, norm),
            nn.AvgPool2d(2),
            DenseStage(2 * width, width, 2 * width, norm),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.score = conv(2 * width, 1, 1)

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """Confidences N×4 for ``output`` vs ``target`` (N×3×H×W) under ``masks`` (N×4×H×W)."""
        f = self.down(self.stem(masked_pairs(output, target, masks)))
        c = torch.sigmoid(self.score(torch.sigmoid(self.pool(f))))
        return c.view(NUM_CLASSES, output.shape[0]).transpose(0, 1)


def masked_pairs(output: torch.Tensor, target: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """CN's input: concat(m_i ⊙ x̂, m_i ⊙ x) for every class i, as a batch of 4·N (class-major)."""
    n = output.shape[0]
    m = masks.transpose(0, 1).reshape(NUM_CLASSES * n, 1, *masks.shape[-2:])
    pairs = torch.cat([output.repeat(NUM_CLASSES, 1, 1, 1), target.repeat(NUM_CLASSES, 1, 1, 1)], 1)
    return pairs * m
