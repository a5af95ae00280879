"""Building blocks shared by S-Net, F-Net, B-Net and the confidence network.

See docs/method.md, Building blocks.

All convolutions are pre-activation (norm → ReLU → conv). The dense bottleneck block
returns ``concat(input, new)`` so features accumulate; a transition squeezes the
channels back and optionally changes the resolution.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["instance", "batch"]
Resample = Literal["down", "up"] | None


def make_norm(kind: Norm, channels: int) -> nn.Module:
    """InstanceNorm without affine parameters (deblurring nets) or BatchNorm (S-Net)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.BatchNorm2d(channels)


def conv(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Conv2d:
    """A 'same'-padded convolution with bias."""
    kind = DilatedConv2d if dilation > 1 else nn.Conv2d
    return kind(cin, cout, k, padding=dilation * (k // 2), dilation=dilation)


class DilatedConv2d(nn.Conv2d):
    """A dilated convolution that can be trained in bf16 on the CPU.

    In torch 2.13 the CPU backward of a bf16 dilated convolution whose input is
    channels-last crashes the process or returns NaN weight gradients (found when the
    first end-to-end UMSN run diverged at step 1; reproduced with a lone conv2d; NCHW
    inputs and fp32 are fine). While autograd records, input and weight are therefore
    passed in the contiguous NCHW layout; inference keeps the faster channels-last path.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bf16 = x.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu")
        if torch.is_grad_enabled() and x.device.type == "cpu" and bf16:
            return self._conv_forward(x.contiguous(), self.weight.contiguous(), self.bias)
        return super().forward(x)


class SmoothedDilation(nn.Module):
    """One learnable 3×3 kernel shared by all channels, applied depthwise.

    Placed before a dilated convolution it mixes the neighbours that dilation would
    skip, which removes gridding artefacts (Wang and Ji, KDD 2018). It starts as a
    centre delta, so a freshly built network behaves exactly as without it.
    """

    def __init__(self, channels: int) -> None:
        """``channels`` is fixed when built, not read from the input, so that exported
        graphs (ONNX) see a depthwise kernel of known shape."""
        super().__init__()
        weight = torch.zeros(1, 1, 3, 3)
        weight[0, 0, 1, 1] = 1.0
        self.weight = nn.Parameter(weight)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.weight.expand(self.channels, 1, 3, 3)
        return F.conv2d(x, kernel, padding=1, groups=self.channels)


def preact(cin: int, cout: int, k: int, norm: Norm, dilation: int = 1, smooth: bool = False):
    layers: list[nn.Module] = [make_norm(norm, cin), nn.ReLU(inplace=True)]
    if smooth:
        layers.append(SmoothedDilation(cin))
    layers.append(conv(cin, cout, k, dilation))
    return nn.Sequential(*layers)


class DenseBottleneck(nn.Module):
    """1×1 (in→3g), three 3×3 (3g→3g→3g→g), plus a 1×1 projection of the input.

    Returns ``concat(x, f(x) + proj(x))``: ``cin + growth`` channels. ``dilated``
    says how many of the last two 3×3 convs use dilation 2 (0, 1 or 2); when any
    does, the last one is preceded by a :class:`SmoothedDilation`.
    """

    def __init__(self, cin: int, growth: int, norm: Norm, dilated: int = 0) -> None:
        super().__init__()
        if dilated not in (0, 1, 2):
            raise ValueError("dilated must be 0, 1 or 2")
        mid = 3 * growth
        self.out_channels = cin + growth
        self.reduce = preact(cin, mid, 1, norm)
        self.conv1 = preact(mid, mid, 3, norm)
        self.conv2 = preact(mid, mid, 3, norm, dilation=2 if dilated == 2 else 1)
        self.conv3 = preact(mid, growth, 3, norm, dilation=2 if dilated else 1, smooth=dilated > 0)
        self.project = nn.Conv2d(cin, growth, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(self.reduce(x))))
        return torch.cat([x, y + self.project(x)], dim=1)


class Transition(nn.Sequential):
    """norm → ReLU → 1×1 conv, then 2×2 average pooling (down) or nearest 2× (up)."""

    def __init__(self, cin: int, cout: int, norm: Norm, resample: Resample = None) -> None:
        layers: list[nn.Module] = [make_norm(norm, cin), nn.ReLU(inplace=True), conv(cin, cout, 1)]
        if resample == "down":
            layers.append(nn.AvgPool2d(2))
        elif resample == "up":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        super().__init__(*layers)


class DenseStage(nn.Sequential):
    """A dense block followed by its transition: the unit every network is built from."""

    def __init__(
        self,
        cin: int,
        growth: int,
        cout: int,
        norm: Norm,
        dilated: int = 0,
        resample: Resample = None,
    ) -> None:
        block = DenseBottleneck(cin, growth, norm, dilated)
        super().__init__(block, Transition(block.out_channels, cout, norm, resample))
        self.out_channels = cout


class SideOutputs(nn.Module):
    """1-channel 3×3 convs on intermediate features, upsampled to full resolution.

    Deep supervision without extra losses: the head sees a summary of every stage.
    Each feature's scale (1, 2 or 4: how much smaller than the image it is) is fixed
    at construction, so a traced graph does not bake in one image size.
    """

    def __init__(self, channels_and_scales: list[tuple[int, int]]) -> None:
        super().__init__()
        self.scales = [scale for _, scale in channels_and_scales]
        self.convs = nn.ModuleList(conv(c, 1, 3) for c, _ in channels_and_scales)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        maps = []
        for layer, scale, feature in zip(self.convs, self.scales, features, strict=True):
            side = layer(feature)
            if scale != 1:
                side = upsample(side, scale)
            maps.append(side)
        return torch.cat(maps, dim=1)


def upsample(x: torch.Tensor, scale: int = 2) -> torch.Tensor:
    """Bilinear upsampling by a whole factor."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def half(x: torch.Tensor) -> torch.Tensor:
    """The half-resolution copy of an image that several networks take as a second input."""
    return F.avg_pool2d(x, 2)
