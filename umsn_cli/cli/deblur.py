"""``umsn deblur``: restore the blurred faces of photos and of aligned face crops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from umsn_cli.choices import Mode, Precision
from umsn_cli.cli import _batch as opt
from umsn_cli.weights.manifest import DEFAULT_MODEL


def deblur(
    output: opt.Output,
    inputs: opt.Inputs = None,
    example: opt.Example = False,
    recursive: opt.Recursive = False,
    suffix: opt.Suffix = "",
    overwrite: opt.Overwrite = False,
    ext: Annotated[
        str | None,
        typer.Option("--ext", help="Output type (png, jpg, tif, webp, bmp); default: the input's."),
    ] = None,
    side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Also write NAME_compare.png: blurry | restored.")
    ] = False,
    save_masks: Annotated[
        bool,
        typer.Option(
            "--save-masks",
            help="Also write the S-Net masks (NAME_overlay/_labels.png; photos: per face).",
        ),
    ] = False,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="aligned: face crops; photo: find, align, restore and paste back every face; "
            "auto: a small square image filled by one face is a crop, anything else a photo.",
        ),
    ] = Mode.auto,
    min_face: Annotated[
        int,
        typer.Option(
            "--min-face", min=1, help="Photo mode: leave faces smaller than this (px) alone."
        ),
    ] = 24,
    max_faces: Annotated[
        int | None,
        typer.Option(
            "--max-faces",
            min=1,
            help="Photo mode: restore only the N largest faces.",
            show_default=False,
        ),
    ] = None,
    only_center_face: Annotated[
        bool,
        typer.Option(
            "--only-center-face", help="Photo mode: restore only the face nearest the centre."
        ),
    ] = False,
    flip_ensemble: Annotated[
        bool,
        typer.Option(
            "--flip-ensemble",
            help="Also restore each face mirrored and average the two: about +0.1 dB, "
            "twice the time.",
        ),
    ] = False,
    save_faces: Annotated[
        bool,
        typer.Option(
            "--save-faces", help="Photo mode: also write each aligned face before and after."
        ),
    ] = False,
    strength: Annotated[
        str,
        typer.Option(
            "--strength",
            help="How much of the correction each face gets, 0 (none) to 1 (all); auto: all "
            "for blurred faces, a little for sharp ones, judged per face (-v shows it).",
        ),
    ] = "auto",
    skip_sharp: Annotated[
        bool,
        typer.Option("--skip-sharp", help="Leave the faces judged sharp exactly as they were."),
    ] = False,
    max_face_size: opt.MaxFaceSize = 128,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write FILE.json: per file and face, the box, the judgement and the strength.",
            show_default=False,
        ),
    ] = None,
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
    """Restore blurred faces in photos or aligned face crops into the -o folder.

    Example: umsn deblur photos/*.jpg -o out/
    """
    from umsn_cli.photo.pipeline import PhotoOptions
    from umsn_cli.strength import parse_strength

    run = opt.BatchRun(
        output, inputs, example, recursive, suffix, overwrite, model, backend, device,
        precision, batch_size, offline, verbose, quiet, skip_existing, shard, print0, remeasure,
    )  # fmt: skip
    opt.run_batch(
        "deblur",
        run,
        ext=ext,
        side_by_side=side_by_side,
        save_masks=save_masks,
        mode=mode.value,
        photo=PhotoOptions(min_face, max_faces, only_center_face),
        save_faces=save_faces,
        flip_ensemble=flip_ensemble,
        strength=parse_strength(strength),
        skip_sharp=skip_sharp,
        report_file=report,
        max_face_size=max_face_size,
    )
