"""The whole inference model: S-Net, then the generator guided by S-Net's masks.

Public tensors are N×C×H×W float in [0, 1]; inside, images live in [-1, 1] as in the
authors' code. H and W must be multiples of 4 (two 2× steps in S-Net).
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn.bnet import Generator
from umsn_cli.nn.config import ModelConfig
from umsn_cli.nn.snet import SNet


class UMSN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.snet = SNet(config.snet)
        self.generator = Generator(config.fnet, config.bnet)

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities N×4×H×W (independent sigmoids) for images in [0, 1]."""
        _check_size(images)
        logits, _ = self.snet(images * 2 - 1)
        return torch.sigmoid(logits)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deblur: (restored N×3×H×W in [0, 1], class probabilities N×4×H×W)."""
        _check_size(images)
        x = images * 2 - 1
        logits, _ = self.snet(x)
        masks = torch.sigmoid(logits)
        restored, _ = self.generator(x, masks)
        return ((restored + 1) / 2).clamp(0, 1), masks


def _check_size(images: torch.Tensor) -> None:
    height, width = images.shape[-2:]
    if height % 4 or width % 4:
        raise ValueError(f"image height and width must be a multiple of 4, got {height}×{width}")


def build_model(config: ModelConfig | str) -> UMSN:
    """A UMSN model with fresh (random) weights for a config or a config name."""
    from umsn_cli.nn.config import get_config

    return UMSN(get_config(config) if isinstance(config, str) else config)


def inference_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters that deblurring uses: everything but the F-Net pre-training heads."""
    return [p for name, p in module.named_parameters() if ".image_head." not in f".{name}"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in inference_parameters(module))
