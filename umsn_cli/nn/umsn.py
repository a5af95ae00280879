"""The whole inference model: S-Net, then the generator guided by S-Net's masks.

Public tensors are N×C×H×W float in [0, 1]; inside, images live in [-1, 1] as in the
authors' code. H and W must be multiples of 4 (two 2× steps in S-Net), of 8 in the ``fast`` family.
"""

from __future__ import annotations

import torch
from torch import nn

from umsn_cli.nn import fast
from umsn_cli.nn.bnet import BNet
from umsn_cli.nn.confidence import ConfidenceNet
from umsn_cli.nn.config import ModelConfig
from umsn_cli.nn.fnet import FNet
from umsn_cli.nn.generator import Generator, PlainBNet
from umsn_cli.nn.snet import NUM_CLASSES, SNet


def make_snet(config: ModelConfig) -> nn.Module:
    """The config's S-Net: ``forward(x) -> (logits, half-resolution logits)``."""
    return fast.FastSNet(config.snet) if config.family == "fast" else SNet(config.snet)


def make_fnet(config: ModelConfig) -> nn.Module:
    """One class stream, with the image head its pre-training stage needs."""
    return fast.FastFNet(config.fnet) if config.family == "fast" else FNet(config.fnet)


def make_generator(config: ModelConfig) -> nn.Module:
    """``forward(x, masks) -> (restored, half-scale restored)``, guided or plain."""
    bnet_class = fast.FastBNet if config.family == "fast" else BNet
    if not config.guided:
        return PlainBNet(bnet_class(config.bnet, class_feature_width=0, mask_channels=0))
    fnets = [make_fnet(config) for _ in range(NUM_CLASSES)]
    return Generator(fnets, bnet_class(config.bnet, config.fnet.width))


def make_confidence(config: ModelConfig) -> nn.Module:
    """The confidence network CN of the class loss (training only)."""
    if config.family == "fast":
        return fast.FastConfidenceNet(config.confidence_width)
    return ConfidenceNet(config.confidence_width)


class UMSN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.snet = make_snet(config)
        self.generator = make_generator(config)

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities N×4×H×W (independent sigmoids) for images in [0, 1]."""
        _check_size(images, self.config.size_multiple)
        logits, _ = self.snet(images * 2 - 1)
        return torch.sigmoid(logits)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Deblur: (restored N×3×H×W in [0, 1], class probabilities N×4×H×W)."""
        _check_size(images, self.config.size_multiple)
        x = images * 2 - 1
        logits, _ = self.snet(x)
        masks = torch.sigmoid(logits)
        restored, _ = self.generator(x, masks)
        return ((restored + 1) / 2).clamp(0, 1), masks


def _check_size(images: torch.Tensor, multiple: int) -> None:
    height, width = images.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"image height and width must be a multiple of {multiple}, got {height}×{width}"
        )


def build_model(config: ModelConfig | str) -> UMSN:
    """A UMSN model with fresh (random) weights for a config or a config name."""
    from umsn_cli.nn.config import get_config

    return UMSN(get_config(config) if isinstance(config, str) else config)


def inference_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters that deblurring uses: everything but the F-Net pre-training heads."""
    return [p for name, p in module.named_parameters() if ".image_head." not in f".{name}"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in inference_parameters(module))
