"""``umsn prepare``: face photos → aligned training faces with (pseudo-)labels."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import err_console, progress_bar, report_problems
from umsn_cli.weights.manifest import DEFAULT_MODEL


def prepare(
    output: opt.Output,  # first: a required option cannot follow defaults
    inputs: opt.Inputs = None,
    min_face: Annotated[int, typer.Option("--min-face", help="Skip faces under this (px).")] = 48,
    max_faces: Annotated[
        int | None,
        typer.Option(
            "--max-faces", min=1, help="Keep the N largest faces of each photo.", show_default=False
        ),
    ] = None,
    max_outside: Annotated[
        float,
        typer.Option(
            "--max-outside",
            help="Skip faces whose canonical window leaves the photo by "
            "more than this share of its area (the photo, mirrored, fills the rest).",
        ),
    ] = 0.15,
    min_sharpness: Annotated[
        float,
        typer.Option(
            "--min-sharpness",
            help="Skip faces softer than this (variance of the "
            "Laplacian of the 128² canonical crop, levels 0–255).",
        ),
    ] = 50.0,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Write S-Net pseudo-labels to masks/.")
    ] = True,
    model: opt.Model = DEFAULT_MODEL,
    backend: opt.Backend = "auto",
    overwrite: opt.Overwrite = False,
    recursive: opt.Recursive = False,
    offline: opt.Offline = False,
    verbose: opt.Verbose = False,
) -> None:
    """Align every face of the photos to the model's framing, for `umsn train --data`.

    Writes images/ (faces with a margin around the canonical framing), masks/
    (CelebAMask-HQ label PNGs from S-Net), prepare.json and prepare.jsonl. Face sizes
    (--min-face) are the detector box's shorter side in the photo's pixels.
    """
    from umsn_cli import prepare as lib
    from umsn_cli.restorer import Restorer

    options = lib.PrepareOptions(
        min_face=min_face, max_faces=max_faces, max_outside=max_outside,
        min_sharpness=min_sharpness, labels=labels, overwrite=overwrite, recursive=recursive,
    )  # fmt: skip
    segment = contract = None
    if labels:
        restorer = Restorer.load(model, backend=backend, offline=offline or None)
        segment, contract = restorer.backend.segment, restorer.contract
    with progress_bar("prepare", None) as bar:
        report = lib.run(
            inputs or [], output, options, segment, labeller=model,
            on_file=bar.advance, contract=contract,
        )  # fmt: skip
    report_problems(report.warnings, report.failed, verbose=verbose)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
    err_console.print(
        f"prepare: {report.faces} faces from {len(report.done)} photos, "
        f"{len(report.failed)} failed"
        + (f"; skipped: {escape(skipped)}" if skipped else "")
        + f" in {report.seconds:.1f} s → {escape(str(output))}"
    )
    if report.failed:
        raise typer.Exit(1)
