"""Running a folder of images through a :class:`~umsn_cli.api.Restorer`.

The batch goes on when one file fails: each failure is recorded with its one-line
message and the others are still processed. A job's outputs are written atomically,
and if any of them fails the ones already written for that job are removed, so a
job either leaves all its files or none.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umsn_cli.api import Restorer
from umsn_cli.errors import ImageError, UmsnError, UsageError, one_line
from umsn_cli.images import (
    LoadedImage,
    atomic_write,
    normalise_ext,
    output_suffix,
    read_image,
    save_label_png,
    save_rgb8,
    write_image,
)
from umsn_cli.inputs import Job, check_not_input, resolved_sources
from umsn_cli.visualize import labels_from_probs, overlay, side_by_side


@dataclass(frozen=True)
class Options:
    """What to write besides (or, for segment, instead of) the restored image."""

    task: str  # "deblur" or "segment"
    ext: str | None = None
    overwrite: bool = False
    side_by_side: bool = False
    save_masks: bool = False  # overlay + label PNG (always on for segment)
    save_probs: bool = False  # the 4 probability maps as .npy
    batch_size: int = 8

    def __post_init__(self) -> None:
        """Refuse impossible options before any file is read or any model loaded."""
        if self.task not in ("deblur", "segment"):
            raise UsageError(f"unknown task {self.task!r}; choose deblur or segment")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: give 1 or more")
        if self.ext is not None:
            normalise_ext(self.ext)  # a UsageError for a type we cannot write


@dataclass
class Report:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def faces_per_second(self) -> float:
        return len(self.done) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Item:
    job: Job
    image: LoadedImage
    outputs: dict[str, Path]


Progress = Callable[[Path], None]


def check_output_folder(folder: Path) -> None:
    """Refuse an output folder that is an existing file, before any work is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {folder}: is a file, not a folder; give a folder for the results")


def run(
    jobs: Sequence[Job], restorer: Restorer, options: Options, on_file: Progress | None = None
) -> Report:
    """Process every job; ``on_file`` is called once per input, done or failed."""
    report = Report()
    start = time.perf_counter()
    sources = resolved_sources(jobs)
    for batch in _batches(jobs, restorer, options, sources, report, on_file):
        try:
            results = _infer(restorer, options, [item.image for item in batch])
        except (RuntimeError, MemoryError) as exc:  # e.g. out of memory for this batch
            message = f"inference failed ({one_line(exc)})"
            if len(batch) > 1:
                message += "; try --batch-size 1"
            for item in batch:
                _fail(report, item.job.source, message, on_file)
            continue
        for item, (rgb, probs) in zip(batch, results, strict=True):
            try:
                _write_outputs(item, rgb, probs, options)
            except UmsnError as exc:
                _fail(report, item.job.source, str(exc), on_file)
                continue
            report.done.append(item.job.source)
            if on_file:
                on_file(item.job.source)
    report.seconds = time.perf_counter() - start
    return report


def _batches(
    jobs: Sequence[Job],
    restorer: Restorer,
    options: Options,
    sources: set[Path],
    report: Report,
    on_file: Progress | None,
) -> Iterator[list[_Item]]:
    """Read images lazily and group them; unreadable files fail here, alone."""
    batch: list[_Item] = []
    claimed: dict[str, Path] = {}  # output (case-folded) -> the input it belongs to
    for job in jobs:
        try:
            image = read_image(job.source)
            outputs = _plan_outputs(job, image, options)
            for target in outputs.values():
                check_not_input(target, sources)
                owner = claimed.get(str(target).casefold())
                if owner is not None:
                    raise UsageError(
                        f"{target} is already an output of {owner}; rename one of the two "
                        "inputs or pass a --suffix"
                    )
                if target.exists() and not options.overwrite:
                    raise _exists(target)
        except UmsnError as exc:
            _fail(report, job.source, str(exc), on_file)
            continue
        claimed.update((str(target).casefold(), job.source) for target in outputs.values())
        report.warnings.extend((job.source, w) for w in image.warnings)
        if restorer.needs_resize(image):
            h, w = image.rgb.shape[:2]
            size = restorer.input_size
            report.warnings.append(
                (
                    job.source,
                    (
                        f"{w}×{h} is not the model's {size}×{size}: resized for the network "
                        "(aligned mode expects aligned face crops)"
                    ),
                )
            )
        batch.append(_Item(job, image, outputs))
        if len(batch) == options.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _plan_outputs(job: Job, image: LoadedImage, options: Options) -> dict[str, Path]:
    stem = job.target_stem
    named = lambda tail: stem.with_name(stem.name + tail)  # noqa: E731
    outputs: dict[str, Path] = {}
    if options.task == "deblur":
        outputs["image"] = job.target(output_suffix(image, options.ext))
        if options.side_by_side:
            outputs["compare"] = named("_compare.png")
    if options.save_masks or options.task == "segment":
        outputs["overlay"] = named("_overlay.png")
        outputs["labels"] = named("_labels.png")
    if options.save_probs:
        outputs["probs"] = named("_probs.npy")
    return outputs


def _infer(
    restorer: Restorer, options: Options, images: list[LoadedImage]
) -> list[tuple[np.ndarray | None, np.ndarray]]:
    if options.task == "deblur":
        return [(r.rgb, r.probs) for r in restorer.deblur_batch(images)]
    return [(None, probs) for probs in restorer.segment_batch(images)]


def _write_outputs(item: _Item, rgb: np.ndarray | None, probs: np.ndarray, options: Options):
    written: list[Path] = []
    labels = labels_from_probs(probs)
    writers: dict[str, Callable[[Path], None]] = {
        "image": lambda p: write_image(p, rgb, item.image, overwrite=options.overwrite),
        "compare": lambda p: save_rgb8(
            p, side_by_side(item.image.rgb, rgb), overwrite=options.overwrite
        ),
        "overlay": lambda p: save_rgb8(
            p, overlay(item.image.rgb, labels), overwrite=options.overwrite
        ),
        "labels": lambda p: save_label_png(p, labels, overwrite=options.overwrite),
        "probs": lambda p: _save_npy(p, probs, overwrite=options.overwrite),
    }
    try:
        for kind, path in item.outputs.items():
            writers[kind](path)
            written.append(path)
    except BaseException:
        for path in written:  # all of a job's files, or none
            path.unlink(missing_ok=True)
        raise


def _save_npy(path: Path, array: np.ndarray, *, overwrite: bool) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()), overwrite=overwrite)


def _exists(target: Path) -> ImageError:
    return ImageError(f"{target}: already exists; pass --overwrite to replace it")


def _fail(report: Report, source: Path, message: str, on_file: Progress | None) -> None:
    report.failed.append((source, message))
    if on_file:
        on_file(source)
