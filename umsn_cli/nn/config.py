"""Model configurations: one architecture, several widths.

``umsn`` is the paper-size model (docs/method.md: S-Net, F-Nets, B-Net); ``umsn-lite``
keeps every stage and connection but is narrower, so that it trains and runs on a
2-core CPU. A config is plain data: it is saved inside every checkpoint and rebuilt
from there, so a checkpoint always knows the exact network it belongs to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from umsn_cli.contract import InputContract


@dataclass(frozen=True)
class SNetConfig:
    """S-Net widths (docs/method.md, S-Net): three scales, dense bottleneck blocks, BatchNorm."""

    width: int = 64  # channels carried between blocks (after each transition)
    stem_growth: int = 61  # first block: 3 → 3 + stem_growth channels at full resolution
    growth: int = 64  # growth of the half- and quarter-resolution blocks
    quarter_blocks: int = 4  # dilated blocks at H/4
    full_growth: int = 64  # growth of the last full-resolution block


@dataclass(frozen=True)
class FNetConfig:
    """F-Net-i widths (docs/method.md, F-Nets): one per class, two scales."""

    width: int = 16  # the class feature f_i has this many channels at H/2
    stem_growth: int = 24  # first block: 4 → 4 + stem_growth channels at full resolution
    dilated_blocks: int = 3


@dataclass(frozen=True)
class BNetConfig:
    """B-Net widths (docs/method.md, B-Net and the generator): the second stage."""

    width: int = 64  # channels of the H/2 body
    full_growth: int = 64  # growth of the two full-resolution blocks
    fuse_width: int = 32  # the four class features are fused to this many channels
    dilated_blocks: int = 4  # dilated blocks in the H/2 body
    head_width: int = 16  # channels entering the full-resolution difference head
    refine_width: int = 8  # the 7×7 → 3×3 refine step after the residual


@dataclass(frozen=True)
class FastSNetConfig:
    """S-Net of the ``fast`` family (umsn_cli.nn.fast): a residual U-Net at H/2, H/4, H/8."""

    widths: tuple[int, int, int] = (32, 64, 96)
    blocks: tuple[int, int, int] = (1, 1, 3)  # residual blocks per level (encoder = decoder)


@dataclass(frozen=True)
class FastFNetConfig:
    """One class stream of the ``fast`` family: residual blocks at H/4."""

    width: int = 32
    blocks: int = 2


@dataclass(frozen=True)
class FastBNetConfig:
    """B-Net of the ``fast`` family: a residual U-Net, class features fused at H/4."""

    widths: tuple[int, int, int] = (64, 128, 192)
    blocks: tuple[int, int, int] = (1, 3, 6)
    naf: tuple[int, int, int] = (0, 0, 0)  # NAFNet blocks after each level's residual blocks
    deep: int = 0  # residual blocks at H/16, added to the H/8 body (0: no such level)


#: Each family's part configs: "dense" is the paper's building block, "fast" the
#: CPU-throughput blocks (docs/method.md: Building blocks, The CPU family).
FAMILIES: dict[str, dict[str, type]] = {
    "dense": {"snet": SNetConfig, "fnet": FNetConfig, "bnet": BNetConfig},
    "fast": {"snet": FastSNetConfig, "fnet": FastFNetConfig, "bnet": FastBNetConfig},
}


@dataclass(frozen=True)
class ModelConfig:
    """A whole UMSN model: S-Net, four F-Nets, B-Net (plus CN, used only in training).

    ``guided=False`` is the plain B-Net of the paper's ablation: its generator sees
    neither masks nor class streams (S-Net stays, for photo mode's paste mask).
    """

    name: str
    snet: Any = SNetConfig()
    fnet: Any = FNetConfig()
    bnet: Any = BNetConfig()
    confidence_width: int = 16  # CN: widths 16 → 32 over three down steps
    input: InputContract = field(default_factory=InputContract)  # saved with the weights
    family: str = "dense"
    guided: bool = True

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown model family {self.family!r} (known: {sorted(FAMILIES)})")
        for part, kind in FAMILIES[self.family].items():
            if not isinstance(getattr(self, part), kind):
                raise ValueError(f"{part} of a {self.family!r} model must be a {kind.__name__}")

    @property
    def input_size(self) -> int:
        """Training and canonical inference size (H = W), from the input contract."""
        return self.input.size

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (the networks' down steps)."""
        if self.family != "fast":
            return 4
        return 16 if self.bnet.deep else 8

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config; unknown keys are an error (a newer or corrupt checkpoint)."""
        data = dict(data) if isinstance(data, dict) else data
        if isinstance(data, dict) and "input_size" in data:  # checkpoints before the contract
            data["input"] = {"size": data.pop("input_size")}
        _check_keys(cls, data)
        parts = FAMILIES.get(data.get("family", "dense"), {})
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "input":
                kwargs[key] = InputContract.from_dict(value)
            elif key in parts:
                _check_keys(parts[key], value)
                # JSON turns tuples into lists; the frozen configs hold tuples.
                value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
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

# The CPU-throughput family (docs/method.md, The CPU family; umsn_cli.nn.fast): widths
# chosen by measuring the whole bf16 training step against the matmul peak of the same run
# (benchmarks/train_step_cost.py) and inference at batch 1 against the 60 ms budget.
UMSN_FAST = ModelConfig(
    name="umsn-fast",
    family="fast",
    snet=FastSNetConfig(),
    fnet=FastFNetConfig(),
    bnet=FastBNetConfig(),
    confidence_width=32,
)


# umsn-fast with twice the residual blocks at every level of B-Net (S-Net, F-Nets and CN
# unchanged): about twice the training step and inference time of umsn-fast, within the
# 60 ms budget at batch 1. Its extra blocks start as the identity, so it can start from
# a umsn-fast run (``umsn train --init``) computing exactly what that run computed.
UMSN_FAST_LARGE = replace(UMSN_FAST, name="umsn-fast-large", bnet=FastBNetConfig(blocks=(2, 6, 12)))

# umsn-fast-large with half as many blocks again in the H/8 body (18 instead of 12): the
# cheapest place for capacity, 0.66 M parameters and 0.34 GFLOP per block at 16×16, with
# the widest view of the blur. It grows from a umsn-fast-large run the same way.
UMSN_FAST_XL = replace(UMSN_FAST, name="umsn-fast-xl", bnet=FastBNetConfig(blocks=(2, 6, 18)))

# umsn-fast-xl with NAFNet blocks (LayerNorm, SimpleGate, simplified channel attention)
# after the residual blocks: 4 at H/4 (encoder and decoder alike) and 12 in the H/8 body.
# 20.4 GFLOP per 128² face with S-Net against xl's 17.3. They start as the identity, so
# it grows from an xl run (``--init``) computing what that run computed.
UMSN_FAST_XL_NAF = replace(
    UMSN_FAST, name="umsn-fast-xl-naf", bnet=FastBNetConfig(blocks=(2, 6, 18), naf=(0, 4, 12))
)

# umsn-fast-xl with a level below its body: 6 residual blocks at H/16 (8×8 for a 128²
# face), whose view spans the 25–45 px shakes the xl body sees only in part. It adds
# about 0.5 GFLOP per face and starts as the identity, so it grows from an xl run.
UMSN_FAST_XL_DEEP = replace(
    UMSN_FAST, name="umsn-fast-xl-deep", bnet=FastBNetConfig(blocks=(2, 6, 18), deep=6)
)

# The fast model for CPUs without bf16 (issue 35): half umsn-fast's widths at H/2 and
# H/4, two thirds at H/8, with more blocks there where they cost least. 3.6 GFLOP per
# 128² face with S-Net against the default's 17.3, so about 26 ms at 86 % of a 2-core
# AVX2 CPU's fp32 peak (0.16 TFLOP/s). Meant to be distilled from the default
# (``umsn train bnet --arch umsn-fast-s --teacher bnet-fast-xl``).
UMSN_FAST_S = replace(
    UMSN_FAST, name="umsn-fast-s", bnet=FastBNetConfig(widths=(32, 64, 128), blocks=(1, 3, 8))
)


def plain(config: ModelConfig) -> ModelConfig:
    """The paper's B-Net baseline of ``config``: the same widths, no semantic guidance.

    Named ``bnet-<family>`` (``umsn-fast`` → ``bnet-fast``), so that weights trained
    with ``umsn train bnet`` can be shipped and told apart from guided ones.
    """
    return replace(config, name="bnet-" + config.name.removeprefix("umsn-"), guided=False)


#: The named configurations users can ask for with ``--model``.
CONFIGS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        UMSN,
        UMSN_LITE,
        UMSN_FAST,
        plain(UMSN_FAST),
        UMSN_FAST_LARGE,
        plain(UMSN_FAST_LARGE),
        UMSN_FAST_XL,
        plain(UMSN_FAST_XL),
        UMSN_FAST_XL_NAF,
        plain(UMSN_FAST_XL_NAF),
        UMSN_FAST_XL_DEEP,
        plain(UMSN_FAST_XL_DEEP),
        UMSN_FAST_S,
        plain(UMSN_FAST_S),
    )
}


def get_config(name: str) -> ModelConfig:
    """The named configuration; an unknown name is a :class:`UsageError` listing the known."""
    from umsn_cli.errors import UsageError

    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise UsageError(f"unknown model configuration {name!r} (known: {known})") from None
