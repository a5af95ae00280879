"""``umsn segment``: S-Net's four-class parsing of (blurry) aligned faces."""

from __future__ import annotations

from typing import Annotated

import typer

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import reports_errors
from umsn_cli.weights.manifest import DEFAULT_MODEL


@reports_errors
def segment(
    output: opt.Output,  # first: a required option cannot follow defaults
    inputs: opt.Inputs = None,
    example: opt.Example = False,
    recursive: opt.Recursive = False,
    suffix: opt.Suffix = "",
    overwrite: opt.Overwrite = False,
    probs: Annotated[
        bool,
        typer.Option(
            "--probs", help="Also write the 4 probability maps as NAME_probs.npy (4×H×W)."
        ),
    ] = False,
    model: opt.Model = DEFAULT_MODEL,
    backend: opt.Backend = "auto",
    device: opt.Device = None,
    precision: opt.Precision = "auto",
    batch_size: opt.BatchSize = 8,
    offline: opt.Offline = False,
    verbose: opt.Verbose = False,
    quiet: opt.Quiet = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
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
