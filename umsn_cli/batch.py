"""Running a folder of images through a :class:`~umsn_cli.restorer.Restorer`.

The batch goes on when one file fails: each failure is recorded with its one-line
message and the others are still processed. A job's outputs are written atomically,
and if any of them fails the ones already written for that job are removed, so a
job either leaves all its files or none.

Each image is an aligned face crop (restored in batches of ``batch_size``) or a
photo (its faces found, aligned, restored and pasted back: :mod:`umsn_cli.photo`);
``mode`` says which, or ``auto`` decides per image.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from umsn_cli.errors import ImageError, UmsnError, UsageError, one_line
from umsn_cli.files import check_writable_folder
from umsn_cli.images import (
    LoadedImage,
    atomic_write,
    lost_in,
    normalise_ext,
    output_suffix,
    quantise,
    read_image,
    save_label_png,
    save_rgb8,
    write_image,
)
from umsn_cli.inputs import Job, check_not_input, resolved_sources
from umsn_cli.photo.detect import Face
from umsn_cli.photo.pipeline import (
    PhotoOptions,
    PhotoResult,
    check_mode,
    choose_mode,
)
from umsn_cli.restorer import Restored, Restorer
from umsn_cli.strength import describe, face_record
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
    mode: str = "aligned"  # deblur: aligned crops, whole photos, or auto per image
    photo: PhotoOptions = field(default_factory=PhotoOptions)
    save_faces: bool = False  # photo mode: each face's aligned crop before and after
    skip_existing: bool = False  # a job whose outputs all exist is done already: skip it

    def __post_init__(self) -> None:
        """Refuse impossible options before any file is read or any model loaded."""
        if self.task not in ("deblur", "segment"):
            raise UsageError(f"unknown task {self.task!r}; choose deblur or segment")
        check_mode(self.mode)
        if self.task == "segment" and self.mode != "aligned":
            raise UsageError("segment works on aligned face crops only; leave out --mode")
        if self.skip_existing and self.overwrite:
            raise UsageError("--skip-existing and --overwrite contradict each other; pick one")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: give 1 or more")
        if self.ext is not None:
            normalise_ext(self.ext)  # a UsageError for a type we cannot write


@dataclass
class Report:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[tuple[Path, str]] = field(default_factory=list)  # shown with --verbose
    skipped: list[Path] = field(default_factory=list)  # --skip-existing: already complete
    written: list[Path] = field(default_factory=list)  # every file written, in order
    faces: int = 0  # faces restored (an aligned crop is one)
    sharp: int = 0  # of them, judged sharp already (umsn_cli.strength)
    # Per file restored: its faces' judgement and strength (deblur --report).
    records: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Item:
    job: Job
    image: LoadedImage
    outputs: dict[str, Path]
    mode: str  # "aligned" or "photo"
    faces: list[Face] | None = None  # found choosing the mode: photo mode takes them


Progress = Callable[[Path], None]


def check_output_folder(folder: Path) -> None:
    """Refuse an output folder that is a file or cannot be written, before any work is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {folder}: is a file, not a folder; give a folder for the results")
    try:
        check_writable_folder(folder)
    except OSError as exc:
        raise UsageError(
            f"-o {folder}: cannot write there ({one_line(exc)}); choose another output folder"
        ) from exc


def run(
    jobs: Sequence[Job], restorer: Restorer, options: Options, on_file: Progress | None = None
) -> Report:
    """Process every job; ``on_file`` is called once per input, done or failed."""
    report = Report()
    start = time.perf_counter()
    sources = resolved_sources(jobs)
    for batch in _batches(jobs, restorer, options, sources, report, on_file):
        _run_aligned([i for i in batch if i.mode == "aligned"], restorer, options, report, on_file)
        for item in (i for i in batch if i.mode == "photo"):
            _run_photo(item, restorer, options, report, on_file)
    report.seconds = time.perf_counter() - start
    return report


def _run_aligned(
    batch: list[_Item], restorer: Restorer, options: Options, report: Report, on_file
) -> None:
    if not batch:
        return
    try:
        results = _infer(restorer, options, [item.image for item in batch])
    except UmsnError as exc:  # e.g. non-finite output: these files fail, the next go on
        for item in batch:
            _fail(report, item.job.source, str(exc), on_file)
        return
    except (RuntimeError, MemoryError) as exc:
        if not _out_of_memory(exc):
            raise  # a bug, not this batch's fault: do not dress it up as a per-file failure
        message = f"inference failed ({one_line(exc)})"
        if len(batch) > 1:
            message += "; try --batch-size 1"
        for item in batch:
            _fail(report, item.job.source, message, on_file)
        return
    for item, (rgb, probs, restored) in zip(batch, results, strict=True):
        try:
            report.written += _write_outputs(item, rgb, probs, options)
        except UmsnError as exc:
            _fail(report, item.job.source, str(exc), on_file)
            continue
        if restored is not None:
            judged = (restored.detail_ratio, restored.strength, restored.blur_px)
            note = describe(*judged)
            report.notes.append((item.job.source, note))
            report.sharp += restored.sharp
            face = face_record(*judged)
            report.records.append(_record(item, "aligned", [face]))
        report.faces += 1
        _done(report, item.job.source, on_file)


def _run_photo(item: _Item, restorer: Restorer, options: Options, report: Report, on_file) -> None:
    source = item.job.source
    try:
        # The decoded photo is needed afterwards only for the side-by-side picture; without
        # one the result is written into it, sparing a photo-sized copy.
        in_place = "compare" not in item.outputs and item.image.rgb.flags.writeable
        result = restorer.restore(
            item.image, "photo", options.photo, in_place=in_place, found=item.faces
        ).photo
    except UmsnError as exc:
        _fail(report, source, str(exc), on_file)
        return
    except (RuntimeError, MemoryError) as exc:
        if not _out_of_memory(exc):
            raise
        _fail(report, source, f"inference failed ({one_line(exc)})", on_file)
        return
    try:
        report.written += _write_outputs(item, result.rgb, None, options, photo=result)
    except UmsnError as exc:
        _fail(report, source, str(exc), on_file)
        return
    for note in result.notes:
        kind = report.warnings if note.startswith("no face") else report.notes
        kind.append((source, note))
    report.faces += len(result.faces)
    report.sharp += sum(face.sharp for face in result.faces)
    faces = [face_record(f.detail_ratio, f.strength, f.blur_px, [round(v, 1) for v in f.face.box])
             for f in result.faces]  # fmt: skip
    report.records.append(_record(item, "photo", faces))
    _done(report, source, on_file)


def _record(item: _Item, mode: str, faces: list[dict]) -> dict:
    output = item.outputs.get("image")
    return {"file": str(item.job.source), "output": str(output) if output else None,
            "mode": mode, "faces": faces}  # fmt: skip


#: How torch and its allocators word running out of memory (CPU, CUDA, MPS).
_OOM_WORDS = ("out of memory", "not enough memory", "can't allocate", "failed to allocate")


def _out_of_memory(exc: BaseException) -> bool:
    """Whether an inference error is a lack of memory, which a smaller batch can avoid."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return any(words in text for words in _OOM_WORDS)


def _done(report: Report, source: Path, on_file: Progress | None) -> None:
    report.done.append(source)
    if on_file:
        on_file(source)


def _batches(
    jobs: Sequence[Job],
    restorer: Restorer,
    options: Options,
    sources: set[Path],
    report: Report,
    on_file: Progress | None,
) -> Iterator[list[_Item]]:
    """Read images lazily and group aligned crops; a photo comes alone, as soon as it is
    read. Unreadable files fail here, alone."""
    batch: list[_Item] = []
    claimed: dict[str, Path] = {}  # output (case-folded) -> the input it belongs to
    for job in jobs:
        try:
            image = read_image(job.source)
            mode, faces = _mode(image, restorer, options)
            outputs = _plan_outputs(job, image, options, mode)
            if options.skip_existing and all(t.exists() for t in outputs.values()):
                for target in outputs.values():
                    _check_complete(target)
                report.skipped.append(job.source)
                if on_file:
                    on_file(job.source)
                continue
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
        if "image" in outputs:
            lost = lost_in(image, outputs["image"].suffix)
            report.warnings.extend((job.source, w) for w in lost)
        if options.mode == "auto":
            kind = "an aligned crop" if mode == "aligned" else "a photo"
            report.notes.append((job.source, f"treated as {kind} (--mode auto)"))
        if mode == "aligned" and restorer.needs_resize(image):
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
        if mode == "photo":  # restored alone: holding several big photos costs gigabytes
            yield [_Item(job, image, outputs, mode, faces)]
            continue
        batch.append(_Item(job, image, outputs, mode, faces))
        if len(batch) == options.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _mode(
    image: LoadedImage, restorer: Restorer, options: Options
) -> tuple[str, list[Face] | None]:
    if options.task == "segment":
        return "aligned", None
    return choose_mode(image.rgb, options.mode, restorer.input_size)


def _plan_outputs(job: Job, image: LoadedImage, options: Options, mode: str) -> dict[str, Path]:
    """The outputs known before inference (a photo's per-face files are added after)."""
    stem = job.target_stem
    named = lambda tail: stem.with_name(stem.name + tail)  # noqa: E731
    outputs: dict[str, Path] = {}
    if options.task == "deblur":
        outputs["image"] = job.target(output_suffix(image, options.ext))
        if options.side_by_side:
            outputs["compare"] = named("_compare.png")
    if (options.save_masks and mode == "aligned") or options.task == "segment":
        outputs["overlay"] = named("_overlay.png")
        outputs["labels"] = named("_labels.png")
    if options.save_probs:
        outputs["probs"] = named("_probs.npy")
    return outputs


def _infer(
    restorer: Restorer, options: Options, images: list[LoadedImage]
) -> list[tuple[np.ndarray | None, np.ndarray, Restored | None]]:
    if options.task == "deblur":
        return [(r.rgb, r.probs, r) for r in restorer.deblur_batch(images)]
    return [(None, probs, None) for probs in restorer.segment_batch(images)]


def _write_outputs(
    item: _Item,
    rgb: np.ndarray | None,
    probs: np.ndarray | None,
    options: Options,
    photo: PhotoResult | None = None,
) -> list[Path]:
    written: list[Path] = []
    labels = labels_from_probs(probs) if probs is not None else None
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
    if photo is not None:  # masks belong to the face crops: written with them
        outputs = item.outputs | _face_outputs(item.job, photo, options)
        writers |= _face_writers(photo, options)
        source = item.job.source
        if not photo.faces and item.outputs["image"].suffix.lower() == source.suffix.lower():
            # Nothing was restored: "unchanged" means the same bytes, metadata and all.
            writers["image"] = lambda p: atomic_write(
                p, lambda fh: fh.write(source.read_bytes()), overwrite=options.overwrite
            )
    else:
        outputs = item.outputs
    try:
        for kind, path in outputs.items():
            writers[kind](path)
            written.append(path)
    except BaseException:
        for path in written:  # all of a job's files, or none
            path.unlink(missing_ok=True)
        raise
    return written


def _face_outputs(job: Job, photo: PhotoResult, options: Options) -> dict[str, Path]:
    """``NAME_faceK_before/after.png`` (and ``_overlay.png`` with --save-masks) per face."""
    outputs: dict[str, Path] = {}
    stem = job.target_stem
    for k in range(1, len(photo.faces) + 1) if options.save_faces else ():
        kinds = ("before", "after", *(("overlay",) if options.save_masks else ()))
        for kind in kinds:
            outputs[f"face{k}_{kind}"] = stem.with_name(f"{stem.name}_face{k}_{kind}.png")
    return outputs


def _face_writers(photo: PhotoResult, options: Options) -> dict[str, Callable[[Path], None]]:
    writers: dict[str, Callable[[Path], None]] = {}
    for k, face in enumerate(photo.faces, start=1):
        images = {
            "before": quantise(face.before),
            "after": quantise(face.after),
            "overlay": overlay(face.after, labels_from_probs(face.probs)),
        }
        for kind, pixels in images.items():
            writers[f"face{k}_{kind}"] = lambda p, x=pixels: save_rgb8(
                p, x, overwrite=options.overwrite
            )
    return writers


def _save_npy(path: Path, array: np.ndarray, *, overwrite: bool) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    atomic_write(path, lambda fh: fh.write(buffer.getvalue()), overwrite=overwrite)


def _check_complete(target: Path) -> None:
    """An output ``--skip-existing`` may count as done: one that decodes. A name alone
    proves nothing: an empty or cut file from elsewhere would be skipped for good."""
    try:
        if target.suffix.lower() == ".npy":
            np.load(target, mmap_mode="r", allow_pickle=False)
        else:
            read_image(target)
    except (UmsnError, OSError, ValueError) as exc:
        raise ImageError(
            f"{target} exists but does not decode ({one_line(exc)}); remove it, or pass "
            "--overwrite instead of --skip-existing"
        ) from exc


def _exists(target: Path) -> ImageError:
    return ImageError(f"{target}: already exists; pass --overwrite to replace it")


def _fail(report: Report, source: Path, message: str, on_file: Progress | None) -> None:
    report.failed.append((source, message))
    if on_file:
        on_file(source)
