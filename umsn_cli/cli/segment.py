"""``umsn segment``: S-Net's four-class parsing of (blurry) aligned faces."""

from __future__ import annotations

from typing import Annotated

import typer

from umsn_cli.cli import _batch as opt


@opt.batch_command
def segment(
    run: opt.BatchRun,
    probs: Annotated[bool, typer.Option("--probs", help="Also write NAME_probs.npy maps.")] = False,
) -> None:
    """Segment faces into background, skin, features and hair.

    Writes NAME_overlay.png (colour overlay) and NAME_labels.png (values 0–3); with
    --probs also NAME_probs.npy, the four class probabilities as a 4×H×W float array.
    """
    opt.run_batch("segment", run, save_probs=probs)
