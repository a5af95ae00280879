"""``umsn prepare``: face photos → aligned training faces with (pseudo-)labels."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import err_console, report_problems, reports_errors


@reports_errors
def prepare(
    inputs: list[str] | None = opt.INPUTS,
    output: Path = opt.OUTPUT,
    min_face: int = typer.Option(
        48, "--min-face", help="Skip faces smaller than this (px, at the photo's resolution)."
    ),
    max_faces: int | None = typer.Option(
        None,
        "--max-faces",
        min=1,
        help="Keep the N largest faces of each photo.",
        show_default=False,
    ),
    max_outside: float = typer.Option(
        0.15,
        "--max-outside",
        help="Skip faces whose canonical window leaves the photo by "
        "more than this share of its area (the photo, mirrored, fills the rest).",
    ),
    min_sharpness: float = typer.Option(
        50.0,
        "--min-sharpness",
        help="Skip faces softer than this (variance of the "
        "Laplacian of the 128² canonical crop, levels 0–255).",
    ),
    labels: bool = typer.Option(
        True, "--labels/--no-labels", help="Write S-Net pseudo-labels to masks/."
    ),
    model: str = opt.MODEL,
    backend: str = opt.BACKEND,
    overwrite: bool = opt.OVERWRITE,
    recursive: bool = opt.RECURSIVE,
    offline: bool = opt.OFFLINE,
    verbose: bool = opt.VERBOSE,
) -> None:
    """Align every face of the photos to the model's framing, for `umsn train --data`.

    Writes images/ (faces with a margin around the canonical framing), masks/
    (CelebAMask-HQ label PNGs from S-Net), prepare.json and prepare.jsonl.
    """
    from umsn_cli import prepare as lib
    from umsn_cli.api import Restorer

    options = lib.PrepareOptions(
        min_face=min_face, max_faces=max_faces, max_outside=max_outside,
        min_sharpness=min_sharpness, labels=labels, overwrite=overwrite, recursive=recursive,
    )  # fmt: skip
    segment = contract = None
    if labels:
        restorer = Restorer.load(model, backend=backend, offline=offline or None)
        segment, contract = restorer.backend.segment, restorer.contract
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    shown = err_console.is_terminal
    with Progress(*columns, console=err_console, transient=True, disable=not shown) as progress:
        bar = progress.add_task("prepare", total=None)
        report = lib.run(
            inputs or [], output, options, segment, labeller=model,
            on_file=lambda _path: progress.advance(bar), contract=contract,
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
