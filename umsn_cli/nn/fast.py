"""UMSN built for CPU throughput: the same method from dense 3×3 residual U-Net blocks.

Spec §12 measured where the paper's building block spends a CPU's time: narrow,
full-resolution layers, InstanceNorm and concatenations move memory instead of
computing. This family keeps every part of the method (S-Net masks of the blurry
face; one stream per class whose features are fused into B-Net; nested residual
learning; the confidence network of the class loss) and changes how each network is
built:

- a 2× pixel-unshuffle stem: no convolution runs at full resolution; the image is
  folded into channels and the body works at H/2, H/4 and H/8;
- residual blocks of two dense 3×3 convolutions with ReLU, no norms, the second
  convolution initialised to zero so every block starts as the identity (this is
  what lets the net train at lr 1e-3 without normalisation);
- stride-2 convolutions down, 1×1 convolution + pixel shuffle up, skips added, not
  concatenated;
- the class streams (F-Nets) work at H/4 on their class's masked view and join the
  B-Net encoder there.

Every network keeps the call signature of its dense counterpart, so the training
stages, the export and the backends use either family unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from umsn_cli.nn.confidence import masked_pairs
from umsn_cli.nn.config import FastBNetConfig, FastFNetConfig, FastSNetConfig
from umsn_cli.nn.snet import NUM_CLASSES


def conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(ReLU(conv(x))), starting as the identity (second conv zero)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv3(channels, channels)
        self.conv2 = conv3(channels, channels)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (NAFNet's norm; no batch statistics)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SimpleGate(nn.Module):
    """Half the channels times the other half: NAFNet's activation, no nonlinearity else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """A NAFNet block (Chen et al., ECCV 2022), starting as the identity.

    Spatial half: LayerNorm → 1×1 to 2c → 3×3 depthwise → SimpleGate → simplified
    channel attention (global mean → 1×1, a per-channel scale) → 1×1, added back with
    a learnt per-channel scale ``beta``. Channel half: LayerNorm → 1×1 to 2c →
    SimpleGate → 1×1, added with ``gamma``. Both scales start at zero, so a network
    grown with these blocks (``umsn train --init``) computes what it computed before.
    About 6c² multiply-adds a pixel against the residual block's 18c².
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.norm1 = LayerNorm2d(c)
        self.expand = nn.Conv2d(c, 2 * c, 1)
        self.depthwise = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.gate = SimpleGate()
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.project = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.ffn_expand = nn.Conv2d(c, 2 * c, 1)
        self.ffn_project = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.depthwise(self.expand(self.norm1(x))))
        x = x + self.beta * self.project(y * self.attention(y))
        return x + self.gamma * self.ffn_project(self.gate(self.ffn_expand(self.norm2(x))))


def blocks(channels: int, count: int, naf: int = 0) -> nn.Sequential:
    """``count`` residual blocks, then ``naf`` NAFNet blocks: every one starts as identity."""
    return nn.Sequential(
        *(ResBlock(channels) for _ in range(count)), *(NAFBlock(channels) for _ in range(naf))
    )


class Down(nn.Sequential):
    """A stride-2 3×3 convolution and ReLU: half the resolution, ``cout`` channels."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(conv3(cin, cout, stride=2), nn.ReLU(inplace=True))


class Up(nn.Sequential):
    """1×1 convolution to 4·cout channels, then a 2× pixel shuffle."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))


class DeepLevel(nn.Sequential):
    """A level below the body: down to half its resolution, ``count`` residual blocks,
    and a way back up that starts at zero, so that it adds nothing until trained (and a
    network grown with it computes what it computed before)."""

    def __init__(self, channels: int, count: int) -> None:
        back = Up(channels, channels)
        nn.init.zeros_(back[0].weight)
        nn.init.zeros_(back[0].bias)
        super().__init__(Down(channels, channels), blocks(channels, count), back)


class ToImage(nn.Sequential):
    """A 3×3 convolution to ``scale``²·channels, shuffled up to ``scale``× the resolution.

    Starts at zero, so a fresh network returns its input (the residual is empty).
    """

    def __init__(self, cin: int, channels: int, scale: int) -> None:
        out = conv3(cin, channels * scale * scale)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        super().__init__(out, nn.PixelShuffle(scale))


class ResidualUNet(nn.Module):
    """The body S-Net and B-Net of the family share: a stem to H/2, encoders at H/2 and
    H/4, the body at H/8, and decoders back to H/2 with the skips added. Each level holds
    ``depths`` residual blocks, then ``naf`` NAFNet blocks; ``deep`` blocks at H/16 add
    to the body what they see.

    The stem (and B-Net's fusion of the class features at H/4) are given, so that the
    modules register in one fixed order: their names and order are the checkpoints'
    state-dict keys and the optimiser state's parameter order.
    """

    def __init__(
        self,
        stem: nn.Module,
        widths: tuple[int, int, int],
        depths: tuple[int, int, int],
        fuse: nn.Module | None = None,
        naf: tuple[int, int, int] = (0, 0, 0),
        deep: int = 0,
    ) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = stem
        self.enc1 = blocks(w1, depths[0], naf[0])
        self.down1 = Down(w1, w2)
        self.fuse = fuse
        self.enc2 = blocks(w2, depths[1], naf[1])
        self.down2 = Down(w2, w3)
        self.body = blocks(w3, depths[2], naf[2])
        self.up2 = Up(w3, w2)
        self.dec2 = blocks(w2, depths[1], naf[1])
        self.up1 = Up(w2, w1)
        self.dec1 = blocks(w1, depths[0], naf[0])
        # A level below the body (H/16): its view spans the 25–45 px shakes a 128² face
        # can carry.
        self.deep = DeepLevel(w3, deep) if deep else None

    def features(
        self, x: torch.Tensor, class_features: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The H/2 decoder features of the stem's input ``x`` (fused with the class
        features at H/4 where there is a fusion)."""
        e1 = self.enc1(self.stem(x))
        e2 = self.down1(e1)
        if self.fuse is not None:
            e2 = self.fuse(torch.cat([e2, *(class_features or [])], dim=1))
        e2 = self.enc2(e2)
        e3 = self.body(self.down2(e2))
        if self.deep is not None:
            e3 = e3 + self.deep(e3)
        d2 = self.dec2(self.up2(e3) + e2)
        return self.dec1(self.up1(d2) + e1)


def _stem(channels: int, width: int) -> nn.Sequential:
    """2× pixel unshuffle, then a 3×3 convolution: the full resolution is never convolved."""
    return nn.Sequential(nn.PixelUnshuffle(2), conv3(4 * channels, width), nn.ReLU(inplace=True))


class FastSNet(ResidualUNet):
    """S-Net as a residual U-Net: H/2 → H/4 → H/8 and back, logits at H and H/2."""

    def __init__(self, cfg: FastSNetConfig) -> None:
        super().__init__(_stem(3, cfg.widths[0]), cfg.widths, cfg.blocks)
        w1 = cfg.widths[0]
        self.half_head = conv3(w1, NUM_CLASSES)
        self.head = nn.Sequential(conv3(w1, 4 * NUM_CLASSES), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` in [-1, 1], N×3×H×W → (logits N×4×H×W, half-resolution logits)."""
        d1 = self.features(x)
        return self.head(d1), self.half_head(d1)


class FastFNet(nn.Module):
    """F-Net-i: the blurry image and one class mask → that class's feature at H/4."""

    def __init__(self, cfg: FastFNetConfig) -> None:
        super().__init__()
        w = cfg.width
        # 4 input channels folded 4× into 64 at H/4: the stream never touches H or H/2.
        self.stem = nn.Sequential(nn.PixelUnshuffle(4), conv3(64, w), nn.ReLU(inplace=True))
        self.body = blocks(w, cfg.blocks)
        self.image_head = FastFNetImageHead(w)
        self.out_channels = w

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class feature f_i (N×w×H/4×W/4) from the image in [-1, 1] and one mask."""
        return self.body(self.stem(torch.cat([x, mask], dim=1)))

    def restore(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pre-training only: an image restored from this class's feature alone."""
        return self.image_head(x, self(x, mask))


class FastFNetImageHead(nn.Module):
    """A block and a 4× shuffled residual: x + r (pre-training only, never at inference)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = ResBlock(width)
        self.residual = ToImage(width, 3, 4)

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return x + self.residual(self.block(feature))


class FastBNet(ResidualUNet):
    """B-Net as a residual U-Net with the class features fused at H/4.

    Nested residual learning: the half-scale image is the half-size input plus a
    residual from the H/2 decoder (which carries the fused class features up from
    H/4); the full-scale image is the input plus that half-scale residual upsampled
    plus a finer residual of its own. ``class_feature_width=0, mask_channels=0`` is the
    plain B-Net baseline of the ablation: the same network without semantic guidance.
    """

    def __init__(
        self, cfg: FastBNetConfig, class_feature_width: int, mask_channels: int = NUM_CLASSES
    ) -> None:
        w1, w2, _ = cfg.widths
        fuse = None
        if class_feature_width:
            fuse = nn.Conv2d(w2 + NUM_CLASSES * class_feature_width, w2, 1)
        super().__init__(
            _stem(3 + mask_channels, w1), cfg.widths, cfg.blocks, fuse, cfg.naf, cfg.deep
        )
        self.half_residual = ToImage(w1, 3, 1)
        self.full_residual = ToImage(w1, 3, 2)

    def forward(
        self, x: torch.Tensor, masks: torch.Tensor, class_features: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored image, half-scale restored image), both in the input's [-1, 1] scale."""
        d1 = self.features(torch.cat([x, masks], dim=1), class_features)
        half_r = self.half_residual(d1)
        half_image = F.avg_pool2d(x, 2) + half_r
        up = F.interpolate(half_r, scale_factor=2, mode="bilinear", align_corners=False)
        return x + up + self.full_residual(d1), half_image


class FastConfidenceNet(nn.Module):
    """CN on the masked pairs at half size, folded 2×: one confidence per class.

    A confidence is one number per class and image, so CN needs no full-resolution
    detail; it runs on four masked pairs per image, so the half-size input keeps it
    from costing as much as the generator (docs/method.md, Confidence network).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.AvgPool2d(2),
            nn.PixelUnshuffle(2),
            conv3(6 * 4, width),
            nn.ReLU(inplace=True),
            Down(width, 2 * width),
            Down(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
        )
        self.score = nn.Conv2d(2 * width, 1, 1)

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, masks: torch.Tensor
    ) -> torch.Tensor:
        """Confidences N×4 for ``output`` vs ``target`` (N×3×H×W) under ``masks`` (N×4×H×W)."""
        c = torch.sigmoid(self.score(torch.sigmoid(self.body(masked_pairs(output, target, masks)))))
        return c.view(NUM_CLASSES, output.shape[0]).transpose(0, 1)
