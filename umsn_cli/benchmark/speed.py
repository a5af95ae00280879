"""Speed of the whole deblurring pass (S-Net plus generator) on this machine.

The library behind ``umsn benchmark --speed``. For each backend, batch size and image
size it reports milliseconds per face (the median of repeated ``deblur`` calls after
warm-up), faces per second and peak memory, plus the model's FLOP per face and the
fraction of this machine's peak throughput that the speed reaches. The peak is
measured in the same run, with a large matmul in fp32 and in bf16, because a
datasheet peak says little about a shared, throttled or virtualised CPU.

The values of the weights do not change the speed, so random weights give the same
numbers as trained ones.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from umsn_cli.backends import Backend, BackendInfo, create_backend, discover_backends
from umsn_cli.backends.cpu import cpuinfo_fields, has_native_bf16
from umsn_cli.backends.measure import answer_key, remember
from umsn_cli.backends.registry import auto_candidates, check_settings, choose_backend
from umsn_cli.errors import BackendUnavailableError, UsageError
from umsn_cli.nn import UMSN, count_parameters
from umsn_cli.weights.download import TransferProgress

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


@dataclass(frozen=True)
class MatmulPeak:
    """The best matmul throughput measured on one device: the ceiling rows are compared to.

    ``bf16_tflops`` is None where the device cannot multiply bf16 matrices in hardware.
    """

    device: str
    fp32_tflops: float
    bf16_tflops: float | None

    def tflops(self, dtype: str) -> float | None:
        """The peak for a row computed in ``dtype`` ("float32", "bfloat16", "float16").

        Half-precision rows are compared with the bf16 peak: fp16 and bf16 run on the
        same units at the same rate on the hardware we target, so one product suffices.
        """
        return self.fp32_tflops if dtype == "float32" else self.bf16_tflops


@dataclass(frozen=True)
class SpeedRow:
    """One backend at one batch size and image size."""

    backend: str
    device: str
    dtype: str
    batch: int
    size: int
    ms_per_face: float
    faces_per_second: float
    peak_memory_mib: float | None
    gflop_per_face: float
    fraction_of_peak: float | None
    spread: float = 1.0  # the slowest timed run over the fastest
    #: Runs that differ by more than 2×, or faster than the peak: another process had
    #: the cores, and the row says little.
    unstable: bool = False


@dataclass
class SpeedReport:
    """Everything one speed run measured, with what is needed to compare runs."""

    model: str
    config: str
    params: int
    threads: int
    torch_version: str
    cpu: str = ""  # the processor and its vector instruction sets: what decides the speed
    peaks: list[MatmulPeak] = field(default_factory=list)
    rows: list[SpeedRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    #: What ``--backend auto`` takes from now on at each batch size (the input size's
    #: rows decide it, and are kept for it), and why.
    auto: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, numbers and strings, ready for ``json.dumps``."""
        return asdict(self)


#: The CPU flags (as Linux names them) that decide which precision and backend is fastest.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_summary() -> str:
    """The CPU's model name and which of :data:`SPEED_FLAGS` it has, e.g. "AMD EPYC
    (avx2 avx512f avx512_bf16)"; the platform's processor string where there is no
    /proc/cpuinfo."""
    fields = cpuinfo_fields()
    if not fields:
        return platform.processor() or platform.machine()
    flags = [flag for flag in SPEED_FLAGS if flag in fields.get("flags", "").split()]
    return f"{fields.get('model name', platform.machine())} ({' '.join(flags) or 'no AVX2'})"


def measure_matmul_peak(
    device: torch.device | str, n: int | None = None, repeats: int = 5
) -> MatmulPeak:
    """The best-of-``repeats`` throughput of an n×n @ n×n product in fp32 and in bf16.

    The bf16 product runs on bf16 tensors directly, not under autocast, so it measures
    the hardware rather than conversions. ``n`` defaults to 2048 on the CPU (a fraction
    of a second per product on two cores) and 8192 on GPUs, where a 2048² product is
    too short to hide the launch overhead.
    """
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    return MatmulPeak(
        device=str(device),
        fp32_tflops=_matmul_tflops(device, torch.float32, n, repeats),
        bf16_tflops=_bf16_matmul_tflops(device, n, repeats),
    )


def _bf16_matmul_tflops(device: torch.device, n: int, repeats: int) -> float | None:
    """None where the device has no bf16 matmul in hardware, rather than failing the run.

    That is older GPUs, and CPUs without AVX512-BF16 or AMX: there PyTorch emulates bf16
    far slower than fp32, so timing it would keep a speed run waiting for minutes for a
    ceiling no row is compared with (the CPU backend computes in fp32 there).
    """
    if device.type == "cpu" and not has_native_bf16():
        return None
    try:
        return _matmul_tflops(device, torch.bfloat16, n, repeats)
    except RuntimeError:
        return None


def _matmul_tflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    out = torch.empty(n, n, device=device, dtype=dtype)  # no allocation inside the timing

    def product() -> None:
        torch.mm(a, b, out=out)

    product()  # warm-up: thread pool, kernel selection, lazy initialisation
    best = min(_timed(product, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e12


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds ``fn`` takes, waiting for queued GPU work before and after."""
    _synchronize(device)
    start = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_gflop(model: UMSN, size: int) -> float:
    """GFLOP per face of one deblurring pass (S-Net plus generator) at size×size.

    Counted by ``FlopCounterMode`` (convolutions and matrix products, one multiply-add
    = 2 FLOP) on a model of the same config built on the meta device: it allocates and
    computes nothing, and leaves ``model`` alone whatever a backend has done to it
    (moved it to a GPU, frozen it).
    """
    with torch.device("meta"):
        meta_model = UMSN(model.config).eval()
        images = torch.empty(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta_model(images)
    return counter.get_total_flops() / 1e9


def measure_speed(
    model: UMSN,
    *,
    weights_key: str,
    model_ref: str,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] = (1, 16),
    sizes: Sequence[int] = (128, 256),
    precision: str = "auto",
    device: str | None = None,
    repeats: int = 5,
    warmup: int = 3,
    progress: Callable[[str], None] | None = None,
    cache_file: Path | None = None,
) -> SpeedReport:
    """Time ``deblur`` for every backend × batch size × image size, in that order.

    ``backends`` None measures every backend that can run here and records the others,
    with their reasons, in ``skipped``. Named backends are checked before anything is
    timed, so a typo fails at once rather than after minutes of measuring: an unknown
    name raises :class:`UsageError`, one that cannot run here
    :class:`BackendUnavailableError`. ``weights_key`` keys the backends' compiled
    caches (the TorchScript graph), ``model_ref`` only labels the report. The matmul
    peak is measured once for each device the backends use. Backends move ``model``
    to their device and memory format. ``progress`` receives one line before each step.
    ``cache_file``: where ``--backend auto`` keeps its answers; the timings made here
    answer it (:func:`_leave_answers`).
    """
    _check_plan(batches, sizes, repeats, warmup)
    names, skipped = _select_backends(backends, device, precision)
    say = progress or (lambda line: None)
    report = SpeedReport(
        model=model_ref,
        config=model.config.name,
        params=count_parameters(model.snet) + count_parameters(model.generator),
        threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        cpu=cpu_summary(),
        skipped=skipped,
    )
    gflop = {size: model_gflop(model, size) for size in sizes}
    peaks: dict[str, MatmulPeak] = {}
    for name in names:
        say(f"preparing backend {name}")
        backend = create_backend(
            name, model, weights_key=weights_key, device=device, precision=precision
        )
        info = backend.info
        if info.device not in peaks:
            say(f"measuring the matmul peak of {info.device}")
            peaks[info.device] = measure_matmul_peak(backend.device)
        for batch in batches:
            for size in sizes:
                say(f"timing {info.name} ({info.dtype}) at batch {batch}, {size}×{size}")
                times, memory = _time_deblur(backend, batch, size, repeats, warmup)
                report.rows.append(
                    _row(info, batch, size, times, memory, gflop[size], peaks[info.device])
                )
    report.peaks = list(peaks.values())
    if cache_file is not None:
        report.auto = _leave_answers(report, model, device, precision, cache_file)
    return report


def _leave_answers(
    report: SpeedReport, model: UMSN, device: str | None, precision: str, cache_file: Path
) -> dict[int, str]:
    """Keep, for ``--backend auto``, the fastest of the backends it chooses among at each
    batch size timed at the model's input size, where every one of them was timed and
    none is unstable (a busy machine's numbers would mislead every later run)."""
    candidates = auto_candidates(device, precision)
    if len(candidates) < 2:
        return {}
    where = torch.device(device or candidates[0].default_device())
    names = [c.name for c in candidates]
    answers = {}
    for batch in sorted({row.batch for row in report.rows}):
        rows = [r for r in report.rows if r.batch == batch and r.size == model.config.input_size]
        times = {r.backend: r.ms_per_face for r in rows if r.backend in names}
        if set(times) != set(names) or any(r.unstable for r in rows):
            continue
        key = answer_key(where, model, precision, batch)
        winner, why = remember(cache_file, key, times, names[0], batch)
        answers[batch] = f"{winner} ({why})"
    return answers


def _check_plan(batches: Sequence[int], sizes: Sequence[int], repeats: int, warmup: int) -> None:
    """Reject impossible settings before any backend is built or compiled."""
    if not batches or min(batches) < 1:
        raise UsageError(f"batch sizes must be positive integers, e.g. 1 16; got {list(batches)}")
    if not sizes or any(size < 4 or size % 4 for size in sizes):
        raise UsageError(
            "image sizes must be positive multiples of 4 (S-Net halves them twice), "
            f"e.g. 128 256; got {list(sizes)}"
        )
    if repeats < 1 or warmup < 0:
        raise UsageError(
            f"give at least 1 timed run and 0 or more warm-up runs; got {repeats} and {warmup}"
        )


def _select_backends(
    names: Sequence[str] | None, device: str | None, precision: str
) -> tuple[list[str], dict[str, str]]:
    """The backends to time, and those left out with the reason each cannot run."""
    if names is not None:
        for name in names:
            choose_backend(name, device, precision)  # raises for unknown or unavailable
        return list(dict.fromkeys(names)), {}
    check_settings(device, precision)
    usable: list[str] = []
    skipped: dict[str, str] = {}
    for name, cls in discover_backends().items():
        reason = cls.unavailable_reason(device) or cls.precision_reason(precision)
        if reason is None:
            usable.append(name)
        else:
            skipped[name] = reason
    if not usable:
        where = f" on device {device!r}" if device else ""
        raise BackendUnavailableError(
            f"no inference backend can run{where}; choose another --device (e.g. cpu)"
        )
    return usable, skipped


#: Warm-up goes on until two calls in a row differ by less than this fraction …
SETTLED = 0.2
#: … or this many times the warm-up asked for have run.
MAX_WARMUP_FACTOR = 4
#: Timed runs that differ by more than this factor make a row unstable.
UNSTABLE_SPREAD = 2.0
#: A row this far above the matmul peak is taken for a peak measured while another
#: process had the cores. Not 1: in fp32 oneDNN's direct convolutions beat its own
#: 2048² matmul (0.226 against 0.194 TFLOP/s on a 2-core AVX512-BF16 machine), so a
#: quiet machine's fp32 rows reach 106–112 % of it.
ABOVE_PEAK = 1.25


def _time_deblur(
    backend: Backend, batch: int, size: int, repeats: int, warmup: int
) -> tuple[list[float], float | None]:
    """The seconds of each timed ``deblur`` call, and the peak memory of those calls.

    The warm-up calls absorb one-off costs (allocator growth, oneDNN primitive
    creation, cuDNN autotuning, the TorchScript profiling runs); they go on past
    ``warmup`` until the time settles, as some of those costs take several calls.
    """
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator)
    previous = None
    for done in range(MAX_WARMUP_FACTOR * max(warmup, 1)):
        took = _timed(lambda: backend.deblur(images), backend.device)
        settled = previous is not None and abs(took - previous) <= SETTLED * previous
        if done + 1 >= warmup and settled:
            break
        previous = took
    tracked = _reset_peak_memory(backend.device)
    times = [_timed(lambda: backend.deblur(images), backend.device) for _ in range(repeats)]
    memory = _peak_memory_mib(backend.device) if tracked else None
    return times, memory


def _reset_peak_memory(device: torch.device) -> bool:
    """Start a new memory peak; False where the peak of ``device`` cannot be measured.

    On the CPU, writing "5" to ``/proc/self/clear_refs`` resets the process's resident
    high-water mark (Linux only; it can be forbidden, e.g. in some sandboxes).
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    if device.type == "cpu":
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True
    return False


def _peak_memory_mib(device: torch.device) -> float | None:
    """Peak memory in MiB since :func:`_reset_peak_memory`.

    On a GPU, the tensors PyTorch allocated on it. On the CPU, the whole process's
    peak resident set size (VmHWM): model, Python, torch's libraries and all, since
    CPU tensors cannot be told apart from the rest of the process's memory.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / _MIB
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        fields = line.split()
        if fields[:1] == ["VmHWM:"] and len(fields) >= 2 and fields[1].isdigit():
            return int(fields[1]) * 1024 / _MIB  # the kernel reports kB
    return None


def _row(
    info: BackendInfo,
    batch: int,
    size: int,
    times: list[float],
    memory: float | None,
    gflop: float,
    peak: MatmulPeak,
) -> SpeedRow:
    """A row from the timed runs: their median (the odd run slowed by another process
    counts for little), and how far apart they were."""
    seconds_per_face = statistics.median(times) / batch
    peak_tflops = peak.tflops(info.dtype)
    achieved_tflops = gflop / seconds_per_face / 1e3
    fraction = achieved_tflops / peak_tflops if peak_tflops else None
    spread = max(times) / min(times)
    return SpeedRow(
        backend=info.name,
        device=info.device,
        dtype=info.dtype,
        batch=batch,
        size=size,
        ms_per_face=seconds_per_face * 1e3,
        faces_per_second=1 / seconds_per_face,
        peak_memory_mib=memory,
        gflop_per_face=gflop,
        fraction_of_peak=fraction,
        spread=spread,
        unstable=spread > UNSTABLE_SPREAD or (fraction is not None and fraction > ABOVE_PEAK),
    )


def speed_model(
    model: str, *, offline: bool | None = None, progress: TransferProgress | None = None
) -> tuple[UMSN, str]:
    """The network to time and a key naming its weights: the weights if they can be had,
    else (for a config name with no weights here, e.g. paper-size ``umsn``) random ones
    of the same network, with a warning, since values do not change the speed."""
    from umsn_cli.errors import ManifestError, WeightsError
    from umsn_cli.nn import CONFIGS, build_model
    from umsn_cli.weights import load_model

    try:
        return load_model(model, offline=offline, progress=progress)
    except (ManifestError, WeightsError):
        if model not in CONFIGS:
            raise
        log.warning("no weights for %s here: timing random weights of the same network", model)
        return build_model(model), f"random-{model}"
