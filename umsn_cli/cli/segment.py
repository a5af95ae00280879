"""``umsn segment``: S-Net's four-class parsing of (blurry) aligned faces."""

from __future__ import annotations

from typing import Annotated

import typer

from umsn_cli.choices import Precision
from umsn_cli.cli import _batch as opt
from umsn_cli.weights.manifest import DEFAULT_MODEL


def segment(
    output: opt.Output,
    inputs: opt.Inputs = None,
    example: opt.Example = False,
    recursive: opt.Recursive = False,
    suffix: opt.Suffix = "",
    overwrite: opt.Overwrite = False,
    probs: Annotated[bool, typer.Option("--probs", help="Also write NAME_probs.npy maps.")] = False,
    model: opt.Model = DEFAULT_MODEL,
    backend: opt.Backend = "auto",
    remeasure: opt.Remeasure = False,
    device: opt.Device = None,
    precision: opt.Precision = Precision.auto,
    batch_size: opt.BatchSize = 8,
    offline: opt.Offline = False,
    verbose: opt.Verbose = False,
    quiet: opt.Quiet = False,
    skip_existing: opt.SkipExisting = False,
    shard: opt.Shard = None,
    print0: opt.Print0 = False,
) -> None:
    """Segment faces into background, skin, features and hair.

    Writes NAME_overlay.png (colour overlay) and NAME_labels.png (values 0–3); with
    --probs also NAME_probs.npy, the four class probabilities as a 4×H×W float array.
    """
    run = opt.BatchRun(
        output, inputs, example, recursive, suffix, overwrite, model, backend, device,
        precision, batch_size, offline, verbose, quiet, skip_existing, shard, print0, remeasure,
    )  # fmt: skip
    opt.run_batch("segment", run, save_probs=probs)
