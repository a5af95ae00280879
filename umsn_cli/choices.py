"""The named choices users pick from, as ``str`` Enums: one home for each vocabulary.

The library checks values against these, and the CLI declares its options with them
(Typer lists the choices in ``--help`` and refuses others). This module imports
nothing heavy, so building the command line never loads torch.
"""

from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    """How ``deblur`` takes an image."""

    auto = "auto"  # a small square image filled by one face is a crop, else a photo
    aligned = "aligned"  # an aligned face crop
    photo = "photo"  # find, align, restore and paste back every face


class Precision(str, Enum):
    """Inference precision; ``auto`` lets the backend pick what is fastest at equal
    quality on its device."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class SynthMode(str, Enum):
    """What ``umsn synth-blur`` makes of each sharp image."""

    pairs = "pairs"  # one blurry copy, blurred whole
    class_ = "class"  # one blurry copy with one semantic class blurred
    shen = "shen"  # 80 copies: 10 kernels × sizes 13–27 (Shen et al. test protocol)


class Framing(str, Enum):
    """How ``umsn benchmark`` shows the model a sharp face it blurred."""

    crop = "crop"  # the face framing alone at the model's input size: an aligned crop
    photo = "photo"  # the whole frame as a photo, the face at --size px, in photo mode


class Protocol(str, Enum):
    """How ``umsn benchmark`` blurs a folder of sharp faces."""

    shen = "shen"  # 10 seeded kernels at each of the 8 sizes 13–27


class Storage(str, Enum):
    """How ``umsn train --export`` stores the weights it writes."""

    float16 = "float16"  # half the size of float32, the same results
    int8 = "int8"  # a quarter, one scale per output channel (−0.005 dB measured)


class StageName(str, Enum):
    """What ``umsn train STAGE`` trains."""

    snet = "snet"
    fnet = "fnet"
    umsn = "umsn"
    bnet = "bnet"  # the plain B-Net ablation


class TrainPrecision(str, Enum):
    """Training arithmetic; ``auto`` is bf16 where the device computes it natively."""

    auto = "auto"
    bf16 = "bf16"  # autocast
    fp32 = "fp32"


class TrainLoss(str, Enum):
    """What the generator stages (``umsn``, ``bnet``) minimise."""

    method = "method"  # the paper's terms: L1 (or L_c), half-scale, gradient, perceptual
    mse = "mse"  # the squared error alone: what PSNR scores, for a last fine-tune
    psnr = "psnr"  # each face's squared error relative to its own: the mean PSNR's gradient


def values(choice: type[Enum]) -> tuple[str, ...]:
    """The accepted strings, in declaration order."""
    return tuple(member.value for member in choice)
