"""``umsn deblur``: restore blurred aligned face crops."""

from __future__ import annotations

from pathlib import Path

import typer

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import reports_errors


@reports_errors
def deblur(
    inputs: list[str] | None = opt.INPUTS,
    output: Path = opt.OUTPUT,
    example: bool = opt.EXAMPLE,
    recursive: bool = opt.RECURSIVE,
    suffix: str = opt.SUFFIX,
    ext: str | None = typer.Option(
        None, "--ext", help="Output type (png, jpg, tif, webp, bmp); default: the input's."
    ),
    overwrite: bool = opt.OVERWRITE,
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Also write NAME_compare.png: blurry | restored."
    ),
    save_masks: bool = typer.Option(
        False, "--save-masks", help="Also write the S-Net masks (NAME_overlay/_labels.png)."
    ),
    model: str = opt.MODEL,
    backend: str = opt.BACKEND,
    device: str | None = opt.DEVICE,
    precision: str = opt.PRECISION,
    batch_size: int = opt.BATCH_SIZE,
    offline: bool = opt.OFFLINE,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Restore blurred face crops (aligned, ideally 128×128) into the -o folder.

    Example: umsn deblur photos/*.jpg -o out/
    """
    opt.run_batch(
        "deblur",
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
        ext=ext,
        overwrite=overwrite,
        side_by_side=side_by_side,
        save_masks=save_masks,
        batch_size=batch_size,
    )
