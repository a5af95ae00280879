"""Model configurations: one architecture, several widths.

``umsn`` is the paper-size model (spec §3–§5); ``umsn-lite`` keeps every stage and
connection but is narrower, so that it trains and runs on a 2-core CPU. A config is
plain data: it is saved inside every checkpoint and rebuilt from there, so a
checkpoint always knows the exact network it belongs to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class SNetConfig:
    """S-Net widths (spec §3): three scales, dense bottleneck blocks, BatchNorm."""

    width: int = 64  # channels carried between blocks (after each transition)
    stem_growth: int = 61  # first block: 3 → 3 + stem_growth channels at full resolution
    growth: int = 64  # growth of the half- and quarter-resolution blocks
    quarter_blocks: int = 4  # dilated blocks at H/4
    full_growth: int = 64  # growth of the last full-resolution block


@dataclass(frozen=True)
class FNetConfig:
    """F-Net-i widths (spec §4): one per class, two scales."""

    width: int = 16  # the class feature f_i has this many channels at H/2
    stem_growth: int = 24  # first block: 4 → 4 + stem_growth channels at full resolution
    dilated_blocks: int = 3


@dataclass(frozen=True)
class BNetConfig:
    """B-Net widths (spec §5): the second stage that fuses everything."""

    width: int = 64  # channels of the H/2 body
    full_growth: int = 64  # growth of the two full-resolution blocks
    fuse_width: int = 32  # the four class features are fused to this many channels
    dilated_blocks: int = 4  # dilated blocks in the H/2 body
    head_width: int = 16  # channels entering the full-resolution difference head
    refine_width: int = 8  # the 7×7 → 3×3 refine step after the residual


@dataclass(frozen=True)
class ModelConfig:
    """A whole UMSN model: S-Net, four F-Nets, B-Net (plus CN, used only in training)."""

    name: str
    snet: SNetConfig = SNetConfig()
    fnet: FNetConfig = FNetConfig()
    bnet: BNetConfig = BNetConfig()
    confidence_width: int = 16  # CN: widths 16 → 32 over three down steps
    input_size: int = 128  # training and canonical inference size (H = W)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config; unknown keys are an error (a newer or corrupt checkpoint)."""
        _check_keys(cls, data)
        parts = {"snet": SNetConfig, "fnet": FNetConfig, "bnet": BNetConfig}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in parts:
                _check_keys(parts[key], value)
                kwargs[key] = parts[key](**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _check_keys(kind: type, data: Any) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{kind.__name__}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in fields(kind)}
    if unknown:
        raise ValueError(f"{kind.__name__}: unknown keys {sorted(unknown)}")


UMSN = ModelConfig(name="umsn")

# Widths chosen by measuring a full bf16 training step (S-Net, generator, CN, VGG
# relu1_2 perceptual loss, Adam) at batch 16 on the 2-core CPU: about 2.2 s, i.e. over
# 1500 steps per hour; B-Net width 12 instead of 10 cost 30% more time per step.
UMSN_LITE = ModelConfig(
    name="umsn-lite",
    snet=SNetConfig(width=12, stem_growth=5, growth=12, quarter_blocks=4, full_growth=4),
    fnet=FNetConfig(width=4, stem_growth=3, dilated_blocks=3),
    bnet=BNetConfig(width=10, full_growth=6, fuse_width=10, dilated_blocks=4, head_width=8),
    confidence_width=8,
)

#: The named configurations users can ask for with ``--model``.
CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (UMSN, UMSN_LITE)}


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise KeyError(f"unknown model configuration {name!r} (known: {known})") from None
