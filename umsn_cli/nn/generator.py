"""The generator, guided or plain, assembled from one family's F-Nets and B-Net.

Both families (the paper's blocks in ``bnet``/``fnet``, the CPU-throughput blocks in
``fast``) compose their parts the same way, so the composition lives here once; the
attribute names (``fnets``, ``bnet``) are the checkpoint keys of every shipped model.
"""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """The four class streams (F-Nets) and B-Net: blurry image + masks → restored image."""

    def __init__(self, fnets: list[nn.Module], bnet: nn.Module) -> None:
        super().__init__()
        self.fnets = nn.ModuleList(fnets)
        self.bnet = bnet

    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` in [-1, 1], ``masks`` soft in [0, 1] → (restored, half-scale restored)."""
        features = [fnet(x, masks[:, i : i + 1]) for i, fnet in enumerate(self.fnets)]
        return self.bnet(x, masks, features)


class PlainBNet(nn.Module):
    """The ablation baseline: B-Net alone, no masks, no F-Nets (paper Tables I, VI)."""

    def __init__(self, bnet: nn.Module) -> None:
        super().__init__()
        self.bnet = bnet

    def forward(
        self, x: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Same call as :class:`Generator`; ``masks`` are ignored."""
        return self.bnet(x, x[:, :0], [])
