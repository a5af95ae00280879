"""``umsn benchmark``: quality on a test set, or speed on this machine."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from umsn_cli.choices import Framing, Precision, Protocol
from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import (
    err_console,
    optional,
    out_console,
    progress_bar,
    transfer_bar,
    warn,
)
from umsn_cli.errors import UsageError
from umsn_cli.files import check_file_destination
from umsn_cli.weights.manifest import DEFAULT_MODEL


def benchmark(
    ctx: typer.Context,
    dataset: Annotated[
        str | None,
        optional(
            "--dataset",
            "-d",
            help="helen, celeba or pubfig (under --data-root), or a folder: sharp faces "
            "(blurred here) or blurred/sharp pairs.",
        ),
    ] = None,
    speed: Annotated[bool, typer.Option("--speed", help="Measure speed, not quality.")] = False,
    data_root: Annotated[
        Path | None, optional("--data-root", help="Where named test sets live (or $UMSN_DATA).")
    ] = None,
    kernels: opt.Kernels = None,
    protocol: Annotated[
        Protocol,
        typer.Option(
            "--protocol", help="How sharp faces are blurred: shen (10 kernels × 8 sizes)."
        ),
    ] = Protocol.shen,
    per_size: Annotated[
        int,
        typer.Option(
            "--per-size", min=1, max=10, help="Shen protocol: kernels per size (10 = full)."
        ),
    ] = 10,
    seed: opt.Seed = 0,
    noise: opt.Noise = 0.01,
    crop: Annotated[
        float,
        typer.Option(
            "--crop",
            min=0.05,
            max=1.0,
            help="Sharp faces: centre fraction that is the face framing (0.75 for CelebAMask-HQ).",
        ),
    ] = 1.0,
    framing: Annotated[
        Framing,
        typer.Option(
            "--framing",
            help="crop: each face's --crop framing alone, at the model's input size. photo: "
            "the whole frame as a photo, its face --size px (default 384), blurred at that "
            "scale by each kernel as drawn and 2× larger, restored in photo mode; scores "
            "the face region, the whole photo, the background and ms per photo.",
        ),
    ] = Framing.crop,
    align: Annotated[
        int,
        typer.Option(
            "--align",
            min=0,
            max=32,
            help="Score PSNR/SSIM at each image's best integer shift within ±PX (the border "
            "left out); 0 scores unshifted. The plain scores are always reported beside.",
        ),
    ] = 5,
    limit: Annotated[
        int | None,
        optional("--limit", min=1, help="Score only the first N faces."),
    ] = None,
    flip_ensemble: Annotated[
        bool,
        typer.Option(
            "--flip-ensemble", help="Score deblur --flip-ensemble: each face and its mirror."
        ),
    ] = False,
    strength: Annotated[
        str,
        typer.Option(
            "--strength", help="Score deblur --strength: auto, or 0 to 1 (1: the whole correction)."
        ),
    ] = "auto",
    identity: Annotated[
        bool, typer.Option("--identity", help="Also the dlib identity distance (needs umsn[eval]).")
    ] = False,
    json_file: Annotated[
        Path | None, optional("--json", help="Write every number (and each case) here.")
    ] = None,
    markdown: Annotated[Path | None, optional("--markdown", help="Write the tables here.")] = None,
    picture: Annotated[
        Path | None,
        optional(
            "--picture", help="Write the best and worst cases (blurry | restored | sharp | masks)."
        ),
    ] = None,
    batches: Annotated[
        list[int],
        typer.Option("--batch", min=1, max=1024, help="Speed: batch sizes (repeat the option)."),
    ] = (1, 16),
    sizes: Annotated[
        list[int] | None,
        optional(
            "--size",
            min=16,
            max=2048,
            help="Speed: image sizes (repeat the option; default 128 and 256). "
            "--framing photo: the face's size in the photo (default 384).",
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Speed: timed runs per setting.")
    ] = 5,
    model: opt.Model = DEFAULT_MODEL,
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            "-b",
            help="Inference backend; for --speed, 'all' (default with --speed) times each one.",
        ),
    ] = "auto",
    device: opt.Device = None,
    precision: opt.Precision = Precision.auto,
    batch_size: opt.BatchSize = 8,
    max_face_size: opt.MaxFaceSize = 128,
    offline: opt.Offline = False,
) -> None:
    """Score a model on a test set (PSNR/SSIM overall, per kernel size, per class).

    Sharp faces are blurred with the seeded Shen-protocol bank, or with --kernels.

    Examples: umsn benchmark --dataset helen --data-root ~/data;
    umsn benchmark --dataset faces/ --crop 0.75 --markdown results.md;
    umsn benchmark --speed
    """
    for path in (p for p in (json_file, markdown, picture) if p is not None):
        if not path.parent.is_dir():
            raise UsageError(f"{path}: its folder does not exist; create it first")
        check_file_destination(path)  # found now, not after the whole run
    outputs = _Outputs(json_file, markdown, picture, command_line(ctx))
    if speed and flip_ensemble:
        raise UsageError(
            "--flip-ensemble scores quality; --speed times single passes (the ensemble "
            "makes two, so it takes twice as long)"
        )
    if speed:
        _speed(
            outputs, model=model, backend=backend, device=device, precision=precision.value,
            offline=offline, batches=tuple(batches), sizes=tuple(sizes or (128, 256)),
            repeats=repeats,
        )  # fmt: skip
        return
    if dataset is None:
        raise UsageError("give --dataset NAME|FOLDER (or --speed); see umsn benchmark --help")
    photo = framing is Framing.photo
    if sizes is not None and (not photo or len(sizes) > 1):
        raise UsageError(
            "--size with a quality run is the face's size in the photo: give it once, "
            "with --framing photo"
        )
    from umsn_cli.benchmark import datasets
    from umsn_cli.blur.kernel_files import load_kernels
    from umsn_cli.contract import check_working_size
    from umsn_cli.restorer import Restorer
    from umsn_cli.strength import parse_strength

    check_working_size(max_face_size)
    if photo and not (Path(dataset).is_dir() and dataset not in datasets.NAMED_DATASETS):
        raise UsageError(
            "--framing photo blurs sharp frames itself: give --dataset a folder of sharp "
            "faces (e.g. CelebAMask-HQ's 512² frames with --crop 0.75)"
        )
    restorer = Restorer.load(
        model, backend=backend, device=device, precision=precision.value, offline=offline,
        progress=transfer_bar, flip_ensemble=flip_ensemble, strength=parse_strength(strength),
        max_face_size=max_face_size,
    )  # fmt: skip
    options = dict(
        kernels=load_kernels(kernels) if kernels is not None else None, seed=seed,
        noise=noise, per_size=per_size, crop=crop, limit=limit,
    )  # fmt: skip
    if photo:
        test = datasets.photo_frames(Path(dataset), face_size=(sizes or [384])[0], **options)
    else:  # faces framed as the model's input contract says
        test = datasets.open_dataset(
            dataset, root=datasets.data_root(data_root), size=restorer.input_size, **options
        )
    _quality(outputs, test, restorer, model=model, identity=identity, batch_size=batch_size,
             align=align, photo=photo)  # fmt: skip


@dataclass(frozen=True)
class _Outputs:
    """Where a benchmark's report goes besides the terminal, and the command behind it."""

    json_file: Path | None
    markdown_file: Path | None
    picture: Path | None
    command: str

    def write(self, data: dict, markdown: str) -> None:
        """The numbers (with the command) as JSON and the tables as Markdown, if asked."""
        from umsn_cli.files import write_text

        numbers = json.dumps(data | {"command": self.command}, indent=2, ensure_ascii=False)
        for path, text, what in (
            (self.json_file, numbers + "\n", "numbers"),
            (self.markdown_file, markdown, "tables"),
        ):
            if path is None:
                continue
            try:
                write_text(path, text)
            except OSError as exc:
                raise UsageError(
                    f"{path}: cannot write it ({exc.strerror or exc}); choose a writable path"
                ) from exc
            err_console.print(f"{what} → {escape(str(path))}")


def _speed(outputs: _Outputs, *, model: str, backend: str, offline: bool, **settings: Any) -> None:
    """``--speed``: time each backend on this machine; print and write the table."""
    from umsn_cli.benchmark import report
    from umsn_cli.benchmark.speed import measure_speed, speed_model
    from umsn_cli.paths import choices_file

    network, key = speed_model(model, offline=offline, progress=transfer_bar)
    result = measure_speed(
        network,
        weights_key=key,
        model_ref=model,
        backends=None if backend in ("all", "auto") else [backend],
        progress=lambda line: err_console.print(escape(line)),
        cache_file=choices_file(),
        **settings,
    )
    table = report.speed_table(result)
    _show(report, table)
    for batch, answer in result.auto.items():
        err_console.print(f"--backend auto at batch {batch} takes {escape(answer)}")
    if any(row.unstable for row in result.rows):
        warn(
            "some rows are unstable (timed runs over 2× apart, or 25 % above the matmul peak): "
            "another process had the cores; rerun them on a quiet machine"
        )
    outputs.write(result.to_dict(), report.to_markdown([table], outputs.command))


def _quality(
    outputs: _Outputs,
    test,
    restorer,
    *,
    model: str,
    identity: bool,
    batch_size: int,
    align: int,
    photo: bool = False,
) -> None:
    """Score ``restorer`` on ``test`` (its pairs taken as photos with ``photo``); print
    the tables, write the reports and picture."""
    from umsn_cli.benchmark import quality, report

    scored = quality.PhotoModel(restorer) if photo else quality.RestorerModel(restorer)

    embedder, note = _identity(identity)
    err_console.print(f"benchmark {escape(test.name)}: {test.count} cases, {restorer.info}")
    with progress_bar("scoring", test.count) as bar:
        result = quality.score(
            test,
            scored,
            model_name=model,
            backend=str(restorer.info),
            identity=embedder,
            identity_note=note,
            batch=batch_size,
            align=align,
            progress=bar.set,
        )
    if result.skipped:
        why, count = result.skipped[0][1], len(result.skipped)
        warn(
            f"{count} pair(s) could not be read and are left out, e.g. {why}"
            + (" (all listed with --json)" if count > 1 else "")
        )
    tables = report.quality_tables(result)
    for table in tables:
        _show(report, table)
    outputs.write(result.to_dict(), report.to_markdown(tables, outputs.command))
    if outputs.picture is not None:
        report.save_picture(outputs.picture, result)
        err_console.print(f"best and worst cases → {escape(str(outputs.picture))}")


def _identity(wanted: bool):
    if not wanted:
        return None, None
    from umsn_cli.benchmark import identity

    reason = identity.identity_unavailable_reason()
    if reason is not None:
        warn(f"identity distance skipped: {reason}")
        return None, f"skipped: {reason}"
    return identity.IdentityEmbedder(), "dlib face-recognition ResNet, euclidean distance"


def command_line(ctx: typer.Context) -> str:
    """The options as given (defaults left out): the command a report says produced it."""
    parts = ["umsn", ctx.info_name or "benchmark"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[param.name]
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            parts += [flag] if value else []
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                parts += [flag, str(item.value if isinstance(item, Enum) else item)]
    return shlex.join(parts)


def _show(report, table) -> None:
    """Print a table whole: a narrow terminal wraps it rather than cutting numbers off."""
    out_console.width = max(out_console.width, report.width(table))
    out_console.print(report.to_rich(table))
