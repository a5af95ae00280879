"""``umsn segment``: S-Net's four-class parsing of (blurry) aligned faces."""

from __future__ import annotations

from pathlib import Path

import typer

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import reports_errors


@reports_errors
def segment(
    inputs: list[str] | None = opt.INPUTS,
    output: Path = opt.OUTPUT,
    example: bool = opt.EXAMPLE,
    recursive: bool = opt.RECURSIVE,
    suffix: str = opt.SUFFIX,
    overwrite: bool = opt.OVERWRITE,
    probs: bool = typer.Option(
        False, "--probs", help="Also write the 4 probability maps as NAME_probs.npy (4×H×W)."
    ),
    model: str = opt.MODEL,
    backend: str = opt.BACKEND,
    device: str | None = opt.DEVICE,
    precision: str = opt.PRECISION,
    batch_size: int = opt.BATCH_SIZE,
    offline: bool = opt.OFFLINE,
    verbose: bool = opt.VERBOSE,
    quiet: bool = opt.QUIET,
    skip_existing: bool = opt.SKIP_EXISTING,
    shard: str | None = opt.SHARD,
) -> None:
    """Segment faces into background, skin, features and hair.

    Writes NAME_overlay.png (colour overlay) and NAME_labels.png (values 0–3).
    """
    opt.run_batch(
        "segment",
        inputs,
        output,
        example=example,
        recursive=recursive,
        suffix=suffix,
        model=model,
        backend=backend,
        device=device,
        precision=precision,
        offline=offline,
        verbose=verbose,
        quiet=quiet,
        shard=shard,
        skip_existing=skip_existing,
        overwrite=overwrite,
        save_probs=probs,
        batch_size=batch_size,
    )
