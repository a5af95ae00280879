"""The options commands share, and what the batch commands (``umsn deblur``, ``umsn segment``)
share besides: model loading, progress, summary."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from umsn_cli import choices
from umsn_cli.cli._common import (
    err_console,
    optional,
    out_console,
    progress_bar,
    report_problems,
    transfer_bar,
    warn,
)
from umsn_cli.contract import check_working_size
from umsn_cli.errors import ImageError, UsageError
from umsn_cli.files import check_file_destination

if TYPE_CHECKING:
    from umsn_cli.batch import Report
    from umsn_cli.restorer import Restorer

# The options several commands share, as ``Annotated`` types (Typer's recommended
# style): a command declares ``model: opt.Model = DEFAULT_MODEL``; deblur and segment
# gather the shared ones into a :class:`BatchRun`.
Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Image files, folders or quoted glob patterns.", show_default=False),
]
Output = Annotated[
    Path,
    typer.Option(
        "-o", "--output", help="Output folder (created if missing); - for standard output."
    ),
]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Walk folders recursively.")]
Suffix = Annotated[
    str, typer.Option("--suffix", help="Appended to every output name, e.g. _restored.")
]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Model = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Weights id, config name, imported id or checkpoint file (see `umsn weights list`).",
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        help="Inference backend: auto, cpu, torchscript, cuda or an installed plugin.",
    ),
]
Device = Annotated[
    str | None,
    typer.Option("--device", help="torch device, e.g. cpu or cuda:0."),
]
Precision = Annotated[
    choices.Precision,
    typer.Option("--precision", help="auto: bf16 where the CPU/GPU has it natively, else fp32."),
]
BatchSize = Annotated[
    int, typer.Option("--batch-size", min=1, max=1024, help="Faces per forward pass.")
]
Offline = Annotated[
    bool, typer.Option("--offline", help="Never use the network (also UMSN_OFFLINE=1).")
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Print every per-file warning.")]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only errors (no summary, warnings).")
]
SkipExisting = Annotated[
    bool,
    typer.Option("--skip-existing", help="Skip inputs whose outputs all exist (resume a batch)."),
]
Shard = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="K/N",
        help="Process only the K-th of N interleaved parts of the inputs (cluster arrays).",
        show_default=False,
    ),
]
Print0 = Annotated[
    bool,
    typer.Option(
        "--print0",
        help="Print the files written to stdout ending in NUL, not newline (for xargs -0), "
        "also on a terminal.",
    ),
]
Remeasure = Annotated[
    bool,
    typer.Option(
        "--remeasure",
        help="With --backend auto: time the backends again rather than take the answer "
        "measured before on this machine.",
    ),
]
MaxFaceSize = Annotated[
    int,
    typer.Option(
        "--max-face-size",
        help="Restore a face at its own scale up to this many px: 128, 256 or 512 (the "
        "largest of these within the face's size). Each doubling costs about 4× the "
        "time and memory per face; the weights were trained at 128.",
    ),
]
Example = Annotated[
    bool,
    typer.Option(
        "--example", help="Also process the built-in example: a public-domain face, motion-blurred."
    ),
]

# Blur options of the commands that blur sharp faces (synth-blur, benchmark).
Seed = Annotated[int, typer.Option("--seed", help="Seed of every kernel and all noise.")]
Noise = Annotated[float, typer.Option("--noise", min=0.0, help="Noise σ on the [0, 1] scale.")]
Kernels = Annotated[
    Path | None,
    optional(
        "--kernels",
        help="Blur with these kernels (.npy, grey .png, .mat file or a folder of them) instead "
        "of generated ones.",
    ),
]


@dataclass(frozen=True)
class BatchRun:
    """The options every batch command takes: what to read, where to write, which model
    runs how, what to print: gathered by each batch command from its options."""

    output: Path
    inputs: list[str] | None
    example: bool
    recursive: bool
    suffix: str
    overwrite: bool
    model: str
    backend: str
    device: str | None
    precision: choices.Precision
    batch_size: int
    offline: bool
    verbose: bool
    quiet: bool
    skip_existing: bool
    shard: str | None
    print0: bool
    remeasure: bool


def run_batch(
    task: str,
    run: BatchRun,
    *,
    flip_ensemble: bool = False,
    strength: float | None = None,
    skip_sharp: bool = False,
    report_file: Path | None = None,
    max_face_size: int = 128,
    **options: Any,
) -> None:
    """Plan, load, run with a progress bar, summarise; exit 1 if any file failed."""
    from umsn_cli import batch
    from umsn_cli.examples import write_example
    from umsn_cli.inputs import plan_jobs
    from umsn_cli.inputs import shard as shard_of
    from umsn_cli.restorer import Restorer

    # Every usage mistake is reported before the (slow) model load.
    if run.verbose and run.quiet:
        raise UsageError("--verbose and --quiet contradict each other: give one of them")
    check_working_size(max_face_size)
    if run.remeasure and run.backend != "auto":
        raise UsageError(f"--remeasure times the backends for --backend auto, not {run.backend}")
    settings = batch.Options(
        task=task, overwrite=run.overwrite, batch_size=run.batch_size,
        skip_existing=run.skip_existing, **options,
    )  # fmt: skip
    items, output, example = list(run.inputs or []), run.output, run.example
    to_stdout = str(output) == "-"
    _check_pipe(task, items, to_stdout, example=example, settings=settings)
    if not to_stdout:
        batch.check_output_folder(output)
    if report_file is not None:
        check_file_destination(report_file)  # found now, not after the whole batch
    with tempfile.TemporaryDirectory(prefix="umsn-example-") as scratch:
        if items == ["-"]:
            items = [str(_stdin_to_file(Path(scratch)))]
        if to_stdout:
            output = Path(scratch) / "out"
        if example:
            items.append(str(write_example(Path(scratch) / "astronaut_blurred.png")))
        missing: list[tuple[Path, str]] = []  # inputs that name nothing: failed, not fatal
        # deblur without --ext names each output like its input (a.png, a.jpg); the batch
        # checks the real names, including the PNG a format that cannot hold it becomes.
        by_name = task == "deblur" and settings.ext is None
        jobs = plan_jobs(
            items, output, recursive=run.recursive, suffix=run.suffix, missing=missing,
            by_name=by_name,
        )  # fmt: skip
        jobs = shard_of(jobs, run.shard)
        with err_console.status("loading the model…"):
            restorer = Restorer.load(
                run.model,
                backend=run.backend,
                device=run.device,
                precision=run.precision.value,
                offline=run.offline or None,
                progress=transfer_bar,
                flip_ensemble=flip_ensemble,
                strength=strength,
                skip_sharp=skip_sharp,
                faces=len(jobs),
                batch_size=run.batch_size,
                remeasure=run.remeasure,
                max_face_size=max_face_size,
            )
        if not run.quiet:
            err_console.print(f"using {restorer.info}")
        if run.verbose:
            err_console.print(f"backend: {escape(restorer.backend_reason)}", style="dim")
        with progress_bar(task, len(jobs)) as bar:
            report = batch.run(jobs, restorer, settings, on_file=bar.advance)
        report.failed[:0] = missing
        if report_file is not None:
            _write_report(report_file, report, restorer)
        if to_stdout:
            _summarise(task, report, Path("-"), verbose=True, quiet=run.quiet, paths=False)
            if report.written:
                sys.stdout.buffer.write(report.written[0].read_bytes())
                sys.stdout.buffer.flush()
            return
    _summarise(
        task, report, output, verbose=run.verbose or len(jobs) == 1, quiet=run.quiet,
        print0=run.print0, skip_sharp=skip_sharp,
    )  # fmt: skip


def _write_report(path: Path, report: Report, restorer: Restorer) -> None:
    """``--report``: what was done to each file and face, as JSON."""
    from umsn_cli.files import write_text

    data = {
        "model": restorer.model_ref,
        "strength": "auto" if restorer.strength is None else restorer.strength,
        "skip_sharp": restorer.skip_sharp,
        "seconds": round(report.seconds, 3),
        "files": report.records,
        "failed": [{"file": str(source), "error": message} for source, message in report.failed],
    }
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def _check_pipe(task: str, items: list[str], to_stdout: bool, *, example: bool, settings) -> None:
    """``-`` reads one image from stdin and ``-o -`` writes one result to stdout."""
    if "-" in items and (len(items) > 1 or example):
        raise UsageError("`-` (standard input) must be the only input")
    if to_stdout and (items != ["-"] and (len(items) != 1 or Path(items[0]).is_dir())):
        raise UsageError("-o - writes one image to standard output: give exactly one input file")
    if to_stdout and (task != "deblur" or settings.side_by_side or settings.save_masks
                      or settings.save_faces or settings.save_probs):  # fmt: skip
        raise UsageError(
            "-o - writes only the restored image; drop the extra outputs or use -o DIR"
        )


def _stdin_to_file(folder: Path) -> Path:
    """The image on standard input, saved under a suffix that names its format."""
    from PIL import Image, UnidentifiedImageError

    data = sys.stdin.buffer.read()
    if not data:
        raise UsageError("`-`: standard input is empty; pipe an image into umsn")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or "PNG"
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError("`-`: standard input is not an image (cannot identify format)") from exc
    suffix = {"JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}
    path = folder / f"stdin{suffix.get(fmt, '.png')}"
    path.write_bytes(data)
    return path


def _summarise(
    task: str,
    report: Report,
    output: Path,
    *,
    verbose: bool,
    quiet: bool,
    paths: bool = True,
    print0: bool = False,
    skip_sharp: bool = False,
) -> None:
    # Piped (`umsn deblur … | xargs …`): stdout carries the files written, one per line
    # (or NUL-ended with --print0); everything for people stays on stderr.
    if paths and print0:
        sys.stdout.buffer.write(b"".join(os.fsencode(p) + b"\0" for p in report.written))
        sys.stdout.buffer.flush()
    elif paths and not out_console.is_terminal:
        for path in report.written:
            typer.echo(str(path))
        broken = sum("\n" in str(p) for p in report.written)
        if broken:
            warn(f"{broken} file name(s) hold a line break: read them with --print0")
    if quiet:
        report_problems([], report.failed, verbose=False)
    else:
        if verbose:
            for source, note in report.notes:
                err_console.print(f"{escape(str(source))}: {escape(note)}", style="dim")
        report_problems(report.warnings, report.failed, verbose=verbose)
        skipped = f", {len(report.skipped)} skipped (already done)" if report.skipped else ""
        if skip_sharp:
            skipped += f", {report.sharp} face(s) judged sharp left as they were"
        err_console.print(
            f"{task}: {len(report.done)} done, {len(report.failed)} failed{skipped} in "
            f"{report.seconds:.1f} s ({report.faces_per_second:.1f} faces/s) → "
            f"{escape(str(output))}"
        )
    if report.failed:
        raise typer.Exit(1)
