"""``umsn deblur``: restore blurred aligned face crops."""

from __future__ import annotations

import typer

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import reports_errors
from umsn_cli.weights.manifest import DEFAULT_MODEL


@reports_errors
def deblur(
    output: opt.Output,  # first: a required option cannot follow defaults
    inputs: opt.Inputs = None,
    example: opt.Example = False,
    recursive: opt.Recursive = False,
    suffix: opt.Suffix = "",
    ext: str | None = typer.Option(
        None, "--ext", help="Output type (png, jpg, tif, webp, bmp); default: the input's."
    ),
    overwrite: opt.Overwrite = False,
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Also write NAME_compare.png: blurry | restored."
    ),
    save_masks: bool = typer.Option(
        False,
        "--save-masks",
        help="Also write the S-Net masks (NAME_overlay/_labels.png; photos: per face).",
    ),
    mode: str = typer.Option(
        "auto",
        "--mode",
        help="aligned: face crops; photo: find, align, restore and paste back every face; "
        "auto: a small square image filled by one face is a crop, anything else a photo.",
    ),
    min_face: int = typer.Option(
        24, "--min-face", min=1, help="Photo mode: leave faces smaller than this (px) alone."
    ),
    max_faces: int | None = typer.Option(
        None,
        "--max-faces",
        min=1,
        help="Photo mode: restore only the N largest faces.",
        show_default=False,
    ),
    only_center_face: bool = typer.Option(
        False, "--only-center-face", help="Photo mode: restore only the face nearest the centre."
    ),
    save_faces: bool = typer.Option(
        False, "--save-faces", help="Photo mode: also write each aligned face before and after."
    ),
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
    """Restore blurred faces in photos or aligned face crops into the -o folder.

    Example: umsn deblur photos/*.jpg -o out/
    """
    from umsn_cli.photo.pipeline import PhotoOptions

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
        quiet=quiet,
        shard=shard,
        skip_existing=skip_existing,
        ext=ext,
        overwrite=overwrite,
        side_by_side=side_by_side,
        save_masks=save_masks,
        batch_size=batch_size,
        mode=mode,
        photo=PhotoOptions(min_face, max_faces, only_center_face),
        save_faces=save_faces,
    )
