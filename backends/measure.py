"""``--backend auto`` by measurement: the fastest backend for this machine and model.

Which backend is fastest depends on the CPU, not on a fixed order: eager and
TorchScript run level on an AVX512-BF16 CPU, TorchScript is faster on AMX and 2.9×
slower at batch 16 on a CPU with AVX2 alone. So where more than one backend can run,
the first large job times each of them on the model and batch size it will run and
keeps the winner in ``backend-choices.json`` under the cache root, keyed by what
decides the speed: the CPU (model name and instruction-set flags) or GPU, torch's version, the
network's architecture, the precision and the batch size. Later runs read the answer,
and ``umsn benchmark --speed``, which times every backend anyway, leaves its answers
there too.

Only the name of one of umsn's own backends is kept, never code: a planted entry can
at worst pick the slower of two backends. A small job (one face) does not pay for a
measurement: it takes the cached answer, or else the backend of highest priority,
which is eager PyTorch on the CPU, the known-good choice on every instruction set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from umsn_cli.backends.base import Backend
from umsn_cli.backends.cpu import cpuinfo_fields
from umsn_cli.errors import UmsnError
from umsn_cli.files import write_text
from umsn_cli.nn import UMSN

#: Jobs with fewer faces than this take the cached or default backend, unmeasured.
MEASURE_FROM = 16
#: Calls timed per backend after its warm-up; the median counts.
TIMED = 3
#: A challenger must beat the default by this factor to replace it (noise stays out).
MARGIN = 1.1


@dataclass(frozen=True)
class Choice:
    """The backend ``auto`` took and why, for ``-v``; ``built``: the instance that was
    timed, where one was (TorchScript compiles once, not twice)."""

    backend: type[Backend]
    device: str  # where every candidate runs: the device of the default's kind
    reason: str
    built: Backend | None = None


def machine_key(device: torch.device) -> str:
    """What decides the speed besides the model: the processor and torch's version."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.machine()} {_cpu_model_and_flags()} threads={torch.get_num_threads()}"
    return hashlib.sha256(f"{where}|torch {torch.__version__}".encode()).hexdigest()[:16]


def _cpu_model_and_flags() -> str:
    fields = cpuinfo_fields()
    if not fields:
        return platform.processor()
    return f"{fields.get('model name', '')} {fields.get('flags', '')}"


def choose_by_measurement(
    candidates: list[type[Backend]],
    model: UMSN,
    *,
    weights_key: str,
    device: str | None,
    precision: str,
    batch: int,
    faces: int,
    remeasure: bool,
    cache_file: Path,
) -> Choice:
    """The fastest of ``candidates`` (highest priority first) for this model and batch:
    cached, measured now (a job of ``faces`` ≥ :data:`MEASURE_FROM`, or ``remeasure``),
    or the first candidate unmeasured."""
    default = candidates[0]
    where = str(device or default.default_device())
    if len(candidates) == 1:
        return Choice(default, where, f"the only backend that can run here is {default.name}")
    key = answer_key(torch.device(where), model, precision, batch)
    known = {c.name: c for c in candidates}
    cached = _read(cache_file).get(key)
    if not remeasure and cached and cached.get("backend") in known:
        return Choice(known[cached["backend"]], where, f"measured before: {cached['why']}")
    if not remeasure and faces < MEASURE_FROM:
        why = f"{default.name} by default ({faces} face(s) are too few to time)"
        return Choice(default, where, why)
    built = {c.name: c(model, weights_key=weights_key, device=where, precision=precision)
             for c in candidates}  # fmt: skip
    size = model.config.input_size
    times = {name: _time(backend, batch, size) for name, backend in built.items()}
    winner, why = remember(cache_file, key, times, default.name, batch)
    reason = f"measured now: {why} (--remeasure times them again)"
    return Choice(known[winner], where, reason, built[winner])


def answer_key(device: torch.device, model: UMSN, precision: str, batch: int) -> str:
    """Where an answer is kept: the machine, the network (its architecture: the values
    of the weights do not change the speed), the precision asked for, the batch size."""
    network = hashlib.sha256(repr(model.config).encode()).hexdigest()[:16]
    return f"{machine_key(device)}|{model.config.name} {network}|{precision}|batch {batch}"


def remember(
    cache_file: Path, key: str, times: dict[str, float], default: str, batch: int
) -> tuple[str, str]:
    """Keep the winner of ``times`` (ms per face by backend name; ``default`` unless
    another is :data:`MARGIN` faster) under ``key``: its name and the why."""
    fastest = min(times, key=times.__getitem__)
    winner = fastest if times[default] > MARGIN * times[fastest] else default
    why = ", ".join(f"{name} {ms:.0f} ms/face" for name, ms in times.items())
    why = f"{why} at batch {batch}"
    _write(cache_file, key, {"backend": winner, "why": why, "ms_per_face": times})
    return winner, why


def _time(backend: Backend, batch: int, size: int) -> float:
    """Milliseconds per face: the median of :data:`TIMED` calls after two warm-up calls."""
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        backend.deblur(images)
    runs = []
    for _ in range(TIMED):
        start = time.perf_counter()
        backend.deblur(images)
        runs.append(time.perf_counter() - start)
    return 1000 * statistics.median(runs) / batch


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or damaged: measure again
    return data if isinstance(data, dict) else {}


def _write(path: Path, key: str, entry: dict) -> None:
    """Add one answer; a cache that cannot be written only means measuring again."""
    data = _read(path)
    data[key] = entry
    with contextlib.suppress(OSError, UmsnError):
        write_text(path, json.dumps(data, indent=1) + "\n")
