"""Blurry/sharp training and test pairs from sharp faces (``umsn synth-blur``).

The kernels: docs/method.md, Blur synthesis.

Three modes:

- ``pairs``: each image blurred whole with its own random kernel;
- ``class``: only the pixels of one semantic class blurred (``m·blur(x) + (1 − m)·x``
  with the class mask ``m`` from a CelebAMask-HQ label PNG); the other pixels keep the
  sharp values bit for bit;
- ``shen``: the Shen et al. (CVPR 2018) test protocol, every image blurred with one
  bank of 10 kernels at each size 13, 15, …, 27 (80 blurry images per face), the bank
  drawn once from the seed.

Everything random comes from ``seed``: kernel sizes and kernels from one generator in
image order (the shen bank from ``shen_bank(seed)``, shared with the evaluation), the noise of image
``i``'s ``j``-th blurry version from a generator of its own, seeded by ``(seed, i, j)``.
A run is reproduced bit for bit, and a file that fails does not shift the kernels or
the noise of the others.

Layout under the output folder: ``blurry/``, ``sharp/`` (the sharp input as 8-bit PNG,
the exact reference for the blurry image), ``kernels/`` (``.npy`` and a visible ``.png``
per kernel), ``pairs.jsonl`` (one line per blurry image) and, with ``preview``,
``preview.png``. Every file is written atomically; a failed image leaves no files.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from umsn_cli.blur.convolve import blur_image
from umsn_cli.blur.kernel_files import load_kernels
from umsn_cli.blur.kernels import KERNEL_SIZES, random_kernels, shen_bank
from umsn_cli.choices import SynthMode, values
from umsn_cli.errors import ImageError, UmsnError, UsageError
from umsn_cli.images import atomic_write, quantise, read_image, save_rgb8
from umsn_cli.inputs import Job, check_not_input, plan_jobs, resolved_sources
from umsn_cli.labels import read_celebamask_labels

MODES = values(SynthMode)
#: ``--class`` number → (UMSN class index in a label map, name).
CLASSES = {1: (0, "background"), 2: (1, "skin"), 3: (2, "features"), 4: (3, "hair")}
SHEN_PER_SIZE = 10
_CHUNK = 256  # kernels simulated per call in pairs/class mode (bounds memory, not results)
_PREVIEW_ROWS = 4
_TILE = 128
_GAP = 4


#: The largest kernel ``--size`` takes: wider than any camera shake on a face photo, and
#: its trajectories (and the blur of a big photo) still take seconds, not gigabytes.
MAX_KERNEL_SIZE = 255


@dataclass(frozen=True)
class SynthOptions:
    """What to synthesise; impossible combinations are refused on construction."""

    mode: str = "pairs"
    seed: int = 0
    noise: float = 0.0
    size: int | None = None
    exposure: float = 1.0
    kernels: Path | None = None
    masks: Path | None = None
    cls: int | None = None
    preview: bool = False
    overwrite: bool = False
    recursive: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode}: choose one of {', '.join(MODES)}")
        if self.seed < 0:
            raise UsageError(f"--seed {self.seed}: give 0 or a positive integer")
        if not 0 <= self.noise <= 1:
            raise UsageError(f"--noise {self.noise}: give a standard deviation in [0, 1]")
        if not 0 < self.exposure <= 1:
            raise UsageError(f"--exposure {self.exposure}: give a fraction in (0, 1]")
        if self.size is not None:
            if self.mode == "shen":
                raise UsageError("--size does not apply to --mode shen (sizes 13, 15, …, 27)")
            if self.size < 3 or self.size % 2 == 0 or self.size > MAX_KERNEL_SIZE:
                raise UsageError(
                    f"--size {self.size}: give an odd kernel size from 3 to {MAX_KERNEL_SIZE}"
                )
        if self.kernels is not None:
            if self.size is not None:
                raise UsageError("--size applies to generated kernels; drop it or --kernels")
            if self.exposure != 1.0:
                raise UsageError("--exposure applies to generated kernels; drop it or --kernels")
        if self.mode == "class":
            if self.masks is None or self.cls is None:
                raise UsageError(
                    "--mode class needs --masks DIR (CelebAMask-HQ label PNGs named like the "
                    "images) and --class 1-4 (1 background, 2 skin, 3 features, 4 hair)"
                )
            if self.cls not in CLASSES:
                raise UsageError(
                    f"--class {self.cls}: give 1 (background), 2 (skin), 3 (features) or 4 (hair)"
                )
            if not self.masks.is_dir():
                raise UsageError(f"--masks {self.masks}: not a folder of label PNGs")
        elif self.masks is not None or self.cls is not None:
            raise UsageError("--masks and --class only apply to --mode class")


@dataclass
class SynthReport:
    done: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    blurry: int = 0  # blurry images written
    seconds: float = 0.0
    preview: Path | None = None


@dataclass(frozen=True)
class BankKernel:
    """A kernel of the shen bank: the NN-th (from 1) of the kernels of size K."""

    rank: int
    kernel: np.ndarray

    @property
    def size(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def name(self) -> str:
        """The kernel's files under kernels/: ``kerNN_kK``."""
        return f"ker{self.rank:02d}_k{self.size}"

    @property
    def tail(self) -> str:
        """Appended to the image's stem for its blurry image: ``kerNN_blur_kK``."""
        return f"ker{self.rank:02d}_blur_k{self.size}"


@dataclass
class SynthPlan:
    """Inputs, where they go, and the kernels: everything checked before any file is read."""

    jobs: list[Job]
    output: Path
    options: SynthOptions
    given: list[tuple[str, np.ndarray]] | None  # (file stem, kernel) from --kernels
    bank: list[BankKernel] | None = None  # shen mode: 80 kernels unless given

    def relative(self, job: Job) -> Path:
        """The input's place in the output layout (mirrors folder inputs), less suffix."""
        return job.target_stem.relative_to(self.output)


# --- planning ------------------------------------------------------------------------------


def plan(items: Sequence[str], output: Path, options: SynthOptions) -> SynthPlan:
    """Check the whole command before any image is read; usage mistakes raise here."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: is a file, not a folder; give a folder for the results")
    given = load_kernels(options.kernels) if options.kernels is not None else None
    jobs = plan_jobs(items, output, recursive=options.recursive)
    result = SynthPlan(jobs, output, options, given)
    if options.mode == "shen":
        result.bank = _shen_bank(options, given)
    _check_outputs(result)
    return result


def _shen_bank(options: SynthOptions, given: list | None) -> list[BankKernel]:
    """The bank, generated once from the seed (10 per size) or the given kernels."""
    if given is None:
        bank = shen_bank(options.seed, SHEN_PER_SIZE, options.exposure)
        return [BankKernel(index, kernel) for index, _, kernel in bank]
    kernels = [kernel for _, kernel in given]
    rank: dict[int, int] = {}
    bank = []
    for kernel in kernels:
        size = kernel.shape[0]
        rank[size] = rank.get(size, 0) + 1
        bank.append(BankKernel(rank[size], kernel))
    return bank


def _check_outputs(plan: SynthPlan) -> None:
    """Refuse to write over an input or, without ``overwrite``, a previous run's files.

    Per-image files are checked again when each image is written; the files of the whole
    run (pairs.jsonl, preview.png, the shen kernel bank) are checked here.
    """
    output, options = plan.output, plan.options
    sources = resolved_sources(plan.jobs)
    out_resolved = output.resolve()
    # An output can only land on an input that lives inside the output folder.
    inside = {source for source in sources if out_resolved in source.parents}
    if inside:
        run_files = [output / "pairs.jsonl", output / "preview.png", *_bank_files(plan)]
        for target in run_files + [t for job in plan.jobs for t in _job_files(plan, job)]:
            check_not_input(target, inside)
    if options.overwrite:
        return
    for target in (output / "pairs.jsonl", *_bank_files(plan)):
        if target.exists():
            raise UsageError(
                f"{target}: already exists (an earlier run?); pass --overwrite to replace "
                "it or choose another -o"
            )
    if options.preview and (output / "preview.png").exists():
        raise UsageError(f"{output / 'preview.png'}: already exists; pass --overwrite")


def _bank_files(plan: SynthPlan) -> list[Path]:
    if plan.bank is None:
        return []
    return [plan.output / "kernels" / f"{b.name}{ext}" for b in plan.bank for ext in _KEXT]


_KEXT = (".npy", ".png")


def _job_files(plan: SynthPlan, job: Job) -> list[Path]:
    rel = plan.relative(job)
    out = plan.output
    files = [out / "sharp" / rel.with_name(rel.name + ".png")]
    if plan.bank is not None:
        files += [out / "blurry" / rel.with_name(f"{rel.name}_{b.tail}.png") for b in plan.bank]
    else:
        files.append(out / "blurry" / rel.with_name(rel.name + ".png"))
        files += [out / "kernels" / rel.with_name(rel.name + ext) for ext in _KEXT]
    return files


# --- running -------------------------------------------------------------------------------


class _KernelStream:
    """Per-image kernels for pairs/class mode: drawn in image order from one generator."""

    def __init__(self, count: int, options: SynthOptions, given: list | None) -> None:
        self.given = given
        self.options = options
        self.rng = np.random.default_rng(options.seed)
        if options.size is not None:
            self.sizes = np.full(count, options.size)
        else:
            self.sizes = self.rng.choice(np.array(KERNEL_SIZES), size=count)
        self.cache: dict[int, np.ndarray] = {}
        self.next_chunk = 0

    def __call__(self, index: int) -> np.ndarray:
        if self.given is not None:
            return self.given[index % len(self.given)][1]
        while index >= self.next_chunk:  # images are processed in order: chunks too
            start, stop = self.next_chunk, self.next_chunk + _CHUNK
            self.cache = dict(
                enumerate(
                    random_kernels(self.sizes[start:stop], self.rng, self.options.exposure),
                    start,
                )
            )
            self.next_chunk = stop
        return self.cache[index]


@dataclass
class _Written:
    """One blurry image's record, and the pixels a preview needs."""

    record: dict
    kernel: np.ndarray
    sharp: np.ndarray | None = None  # kept only for the preview
    blurry: np.ndarray | None = None


def run(plan: SynthPlan, on_file: Callable[[Path], None] | None = None) -> SynthReport:
    """Blur every planned image; ``on_file`` is called once per input, done or failed."""
    start = time.perf_counter()
    report = SynthReport()
    options, out = plan.options, plan.output
    lines: list[str] = []  # of pairs.jsonl, kept as text (a shen run can have many)
    previews: list[_Written] = []
    overwrite = options.overwrite
    kernels = _KernelStream(len(plan.jobs), options, plan.given) if plan.bank is None else None
    for index, job in enumerate(plan.jobs):
        kernel = kernels(index) if kernels is not None else None  # drawn even if the image fails
        written: list[Path] = []
        try:
            for target in _job_files(plan, job):
                if target.exists() and not overwrite:
                    raise ImageError(f"{target}: already exists; pass --overwrite to replace it")
            keep = _PREVIEW_ROWS - len(previews) if options.preview else 0
            results = _synthesise(plan, job, index, kernel, report, written, keep)
        except UmsnError as exc:
            for path in written:  # all of an image's files, or none
                path.unlink(missing_ok=True)
            report.failed.append((job.source, str(exc)))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        else:
            report.done.append(job.source)
            report.blurry += len(results)
            lines.extend(json.dumps(r.record, ensure_ascii=False) + "\n" for r in results)
            previews.extend(r for r in results if r.sharp is not None)
        if on_file:
            on_file(job.source)
    # The files of the whole run come last, and only if some image was done: when every
    # image failed, a rerun needs no --overwrite.
    if lines and plan.bank is not None:
        for b in plan.bank:
            _save_kernel(out / "kernels" / b.name, b.kernel, overwrite=overwrite)
    if lines:
        data = "".join(lines).encode("utf-8")
        atomic_write(out / "pairs.jsonl", lambda fh: fh.write(data), overwrite=overwrite)
    if options.preview and previews:
        report.preview = out / "preview.png"
        save_rgb8(report.preview, _preview(previews), overwrite=overwrite)
    report.seconds = time.perf_counter() - start
    return report


def _synthesise(
    plan: SynthPlan,
    job: Job,
    index: int,
    kernel: np.ndarray | None,
    report: SynthReport,
    written: list[Path],
    keep: int,
) -> list[_Written]:
    """Write one image's files (recorded in ``written`` as they land); keep the pixels of
    up to ``keep`` of its blurry images, spread over its kernels, for the preview."""
    options, out = plan.options, plan.output
    overwrite = options.overwrite
    image = read_image(job.source)
    warnings = list(image.warnings)
    if image.alpha is not None:
        warnings.append("alpha channel dropped: the pairs are RGB")
    if image.bit_depth == 16:
        warnings.append("16-bit source reduced to 8 bits: the pairs are 8-bit PNGs")
    sharp8 = quantise(image.rgb)
    sharp = sharp8.astype(np.float32) / 255
    mask = _class_mask(plan, job, sharp8.shape[:2], warnings) if options.mode == "class" else None
    longest = kernel.shape[0] if kernel is not None else max(b.size for b in plan.bank or [])
    if longest > min(sharp8.shape[:2]):
        warnings.append(
            f"a {longest} px kernel is larger than the image ({sharp8.shape[1]}×"
            f"{sharp8.shape[0]}): its blur is mostly the repeated edge"
        )
    report.warnings.extend((job.source, w) for w in warnings)

    rel = plan.relative(job)
    sharp_path = out / "sharp" / rel.with_name(rel.name + ".png")
    save_rgb8(sharp_path, sharp8, overwrite=overwrite)
    written.append(sharp_path)

    if plan.bank is not None:
        tasks = [
            (
                out / "blurry" / rel.with_name(f"{rel.name}_{b.tail}.png"),
                out / "kernels" / b.name,
                b.kernel,
            )
            for b in plan.bank
        ]
    else:
        assert kernel is not None
        kernel_stem = out / "kernels" / rel
        _save_kernel(kernel_stem, kernel, overwrite=overwrite)
        written += [kernel_stem.with_name(kernel_stem.name + ext) for ext in _KEXT]
        tasks = [(out / "blurry" / rel.with_name(rel.name + ".png"), kernel_stem, kernel)]

    shown = set(_spread(list(range(len(tasks))), keep)) if keep > 0 else set()
    results = []
    for number, (blurry_path, kernel_stem, k) in enumerate(tasks):
        blurred = blur_image(sharp, k)
        if options.noise > 0:
            # Noise of image i, kernel j from its own generator, seeded (seed, i, j).
            rng = np.random.default_rng([options.seed, index, number])
            noise = rng.standard_normal(blurred.shape, dtype=np.float32)
            blurred = blurred + np.float32(options.noise) * noise
        blurry8 = quantise(blurred)
        if mask is not None:
            blurry8 = np.where(mask[..., None], blurry8, sharp8)  # m·blur(x) + (1 − m)·x
        save_rgb8(blurry_path, blurry8, overwrite=overwrite)
        written.append(blurry_path)
        record = {
            "blurry": _rel(blurry_path, out),
            "sharp": _rel(sharp_path, out),
            "kernel": _rel(kernel_stem.with_name(kernel_stem.name + ".npy"), out),
            "kernel_size": int(k.shape[0]),
            "noise": float(options.noise),
            "seed": int(options.seed),
            "mode": options.mode,
        }
        if options.mode == "class":
            record["class"] = options.cls
        pixels = (sharp8, blurry8) if number in shown else (None, None)
        results.append(_Written(record, k, *pixels))
    return results


def _class_mask(plan: SynthPlan, job: Job, shape: tuple[int, int], warnings: list[str]):
    options = plan.options
    assert options.masks is not None and options.cls is not None
    rel = plan.relative(job)
    candidates = [options.masks / rel.with_name(job.source.stem + ".png")]
    if rel.parent != Path("."):
        candidates.append(options.masks / (job.source.stem + ".png"))
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise ImageError(
            f"{job.source}: no label mask {candidates[0]} in --masks; masks are label PNGs "
            "named like the images"
        )
    labels = read_celebamask_labels(path)
    if labels.shape != shape:
        raise ImageError(
            f"{path}: the mask is {labels.shape[1]}×{labels.shape[0]} but {job.source} is "
            f"{shape[1]}×{shape[0]}; masks must match their images"
        )
    index, name = CLASSES[options.cls]
    mask = labels == index
    if not mask.any():
        warnings.append(f"no {name} pixels in {path}: the blurry image equals the sharp one")
    return mask


def _save_kernel(stem: Path, kernel: np.ndarray, *, overwrite: bool) -> None:
    """``stem.npy`` (float32, sums to 1) and ``stem.png`` (scaled so the peak is white)."""
    buffer = io.BytesIO()
    np.save(buffer, kernel.astype(np.float32))
    npy = stem.with_name(stem.name + ".npy")
    atomic_write(npy, lambda fh: fh.write(buffer.getvalue()), overwrite=overwrite)
    visible = Image.fromarray(quantise(kernel / kernel.max()))  # grey
    atomic_write(
        stem.with_name(stem.name + ".png"),
        lambda fh: visible.save(fh, format="PNG"),
        overwrite=overwrite,
    )


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items`` (all of them if fewer)."""
    if count <= 0:
        return []
    if len(items) <= count:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


# --- preview -------------------------------------------------------------------------------


def _preview(rows: list[_Written]) -> np.ndarray:
    """One row per example: the kernel (enlarged, nearest), the sharp and the blurry image."""
    rows = rows[:_PREVIEW_ROWS]
    height = len(rows) * (_TILE + _GAP) + _GAP
    width = 3 * (_TILE + _GAP) + _GAP
    canvas = np.full((height, width, 3), 32, dtype=np.uint8)
    for r, row in enumerate(rows):
        kernel = quantise(row.kernel / row.kernel.max())
        scale = max(1, _TILE // kernel.shape[0])
        kernel = np.repeat(np.repeat(kernel, scale, 0), scale, 1)
        tiles = [np.repeat(kernel[..., None], 3, 2), _fit(row.sharp), _fit(row.blurry)]
        for c, tile in enumerate(tiles):
            tile = tile[:_TILE, :_TILE]
            top = _GAP + r * (_TILE + _GAP) + (_TILE - tile.shape[0]) // 2
            left = _GAP + c * (_TILE + _GAP) + (_TILE - tile.shape[1]) // 2
            canvas[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return canvas


def _fit(rgb: np.ndarray) -> np.ndarray:
    """Shrink (or enlarge) an image to fit a tile, keeping its aspect ratio."""
    h, w = rgb.shape[:2]
    scale = _TILE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
