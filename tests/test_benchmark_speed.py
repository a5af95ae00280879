"""`umsn benchmark --speed`'s library: timing rows, FLOP counts, the matmul peak, memory.

Timings depend on the machine and its load, so only their consistency is checked,
never a threshold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from umsn_cli.backends import discover_backends
from umsn_cli.benchmark import speed
from umsn_cli.benchmark.speed import (
    MatmulPeak,
    SpeedReport,
    measure_matmul_peak,
    measure_speed,
    model_gflop,
)
from umsn_cli.errors import UsageError
from umsn_cli.nn import UMSN, count_parameters
from umsn_cli.nn.config import ModelConfig

WEIGHTS_KEY = "1" * 64


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: tiny models gain nothing from more, and the suite may share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model(tiny_config: ModelConfig) -> UMSN:
    torch.manual_seed(0)
    return UMSN(tiny_config).eval()


def quick(model: UMSN, **options) -> SpeedReport:
    """A speed run small enough for the test suite."""
    settings = {"batches": (1, 2), "sizes": (32,), "repeats": 2, "warmup": 1, **options}
    return measure_speed(model, weights_key=WEIGHTS_KEY, model_ref="tiny", **settings)


def test_every_available_backend_is_timed_at_every_batch_and_size(tiny_model):
    lines: list[str] = []
    report = quick(tiny_model, progress=lines.append)

    available = {n for n, cls in discover_backends().items() if cls.unavailable_reason() is None}
    assert {(r.backend, r.batch, r.size) for r in report.rows} == {
        (name, batch, 32) for name in available for batch in (1, 2)
    }
    assert len(report.rows) == 2 * len(available)
    assert set(report.skipped) == set(discover_backends()) - available
    assert all(report.skipped.values())
    assert lines and all(isinstance(line, str) for line in lines)

    assert report.config == "test-tiny"
    assert report.model == "tiny"
    assert report.params == count_parameters(tiny_model.snet) + count_parameters(
        tiny_model.generator
    )
    assert report.threads == torch.get_num_threads()
    assert report.torch_version == torch.__version__
    assert [peak.device for peak in report.peaks] == sorted({r.device for r in report.rows})

    gflop = model_gflop(tiny_model, 32)
    for row in report.rows:
        assert math.isfinite(row.ms_per_face) and row.ms_per_face > 0
        assert row.faces_per_second == pytest.approx(1000 / row.ms_per_face)
        assert row.gflop_per_face == pytest.approx(gflop)
        assert row.fraction_of_peak is None or 0 < row.fraction_of_peak < 1.5
        assert row.peak_memory_mib is None or row.peak_memory_mib > 0


def test_report_is_json_serialisable(tiny_model):
    report = quick(tiny_model, backends=["cpu"], batches=(1,))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows"][0]["backend"] == "cpu"
    assert data["peaks"][0]["device"] == "cpu"
    assert set(data) >= {"model", "config", "params", "threads", "torch_version", "skipped"}


def test_without_memory_stats_or_bf16_peak_the_row_says_none(tiny_model, monkeypatch):
    """A sandbox that forbids clear_refs, a device with no bf16 matmul: None, no crash."""

    class NoClearRefs(type(Path())):
        def write_text(self, *args, **kwargs):
            raise PermissionError("clear_refs is not writable here")

    monkeypatch.setattr(speed, "Path", NoClearRefs)
    monkeypatch.setattr(speed, "measure_matmul_peak", lambda device: MatmulPeak("cpu", 1.0, None))
    report = quick(tiny_model, backends=["cpu"], batches=(1,), precision="bf16")

    (row,) = report.rows
    assert row.dtype == "bfloat16"
    assert row.peak_memory_mib is None
    assert row.fraction_of_peak is None


def test_gflop_grows_with_the_pixel_count(tiny_model):
    small, large = model_gflop(tiny_model, 32), model_gflop(tiny_model, 64)
    assert small > 0
    assert large / small == pytest.approx(4, rel=0.1)


def test_matmul_peak_is_positive(monkeypatch):
    monkeypatch.setattr(speed, "has_native_bf16", lambda: True)
    peak = measure_matmul_peak(torch.device("cpu"), n=256, repeats=2)
    assert peak.device == "cpu"
    assert peak.fp32_tflops > 0
    assert peak.bf16_tflops is not None and peak.bf16_tflops > 0
    assert peak.tflops("float32") == peak.fp32_tflops
    assert peak.tflops("bfloat16") == peak.tflops("float16") == peak.bf16_tflops


def test_no_bf16_peak_is_timed_where_the_cpu_emulates_bf16(monkeypatch):
    """Emulated bf16 is far slower than fp32: timing it would only make the run wait."""
    monkeypatch.setattr(speed, "has_native_bf16", lambda: False)
    real_mm = torch.mm

    def mm(a, b, **kwargs):
        assert a.dtype == torch.float32, "a bf16 product was timed"
        return real_mm(a, b, **kwargs)

    monkeypatch.setattr(torch, "mm", mm)
    peak = measure_matmul_peak(torch.device("cpu"), n=128, repeats=2)
    assert peak.fp32_tflops > 0 and peak.bf16_tflops is None
    assert peak.tflops("bfloat16") is None


def test_unknown_backend_is_a_usage_error_before_anything_is_timed(tiny_model, monkeypatch):
    monkeypatch.setattr(speed, "measure_matmul_peak", lambda device: pytest.fail("timed"))
    with pytest.raises(UsageError, match="no-such-backend"):
        quick(tiny_model, backends=["cpu", "no-such-backend"])


@pytest.mark.parametrize("options", [{"sizes": (30,)}, {"batches": (0,)}, {"repeats": 0}])
def test_impossible_settings_are_usage_errors(tiny_model, options):
    with pytest.raises(UsageError):
        quick(tiny_model, **options)


def test_rows_report_the_spread_and_flag_unstable_timings():
    from umsn_cli.backends.base import BackendInfo

    info = BackendInfo("cpu", "cpu", "float32")
    peak = MatmulPeak("cpu", 1.0, None)
    steady = speed._row(info, 2, 32, [0.010, 0.011, 0.012], None, 1.0, peak)
    assert steady.ms_per_face == pytest.approx(5.5) and steady.spread == pytest.approx(1.2)
    assert not steady.unstable
    busy = speed._row(info, 2, 32, [0.010, 0.011, 2.221], None, 1.0, peak)
    assert busy.ms_per_face == pytest.approx(5.5) and busy.unstable  # the median holds
    too_fast = speed._row(info, 1, 32, [0.0005] * 3, None, 1.0, peak)  # 2 TFLOP/s of 1
    assert too_fast.fraction_of_peak == pytest.approx(2.0) and too_fast.unstable


def test_warm_up_goes_on_until_the_time_settles(monkeypatch):
    """One-off costs that take several calls (1.0, 0.5, 0.3 s …) are not timed."""
    calls = iter([1.0, 0.5, 0.3, 0.11, 0.1, 0.1, 0.1, 0.1])
    monkeypatch.setattr(speed, "_timed", lambda fn, device: next(calls))

    class Backend:
        device = torch.device("cpu")

    times, _ = speed._time_deblur(Backend(), 1, 8, repeats=3, warmup=2)
    assert times == [0.1, 0.1, 0.1]  # warm-up ran past its 2 calls: 1.0 … 0.1


def test_the_speed_run_answers_backend_auto_for_later_runs(tiny_model, monkeypatch, tmp_path):
    """Every backend `auto` chooses among was timed at the input size: the faster one is
    kept for each batch size, and a later one-face job takes it unmeasured."""
    from umsn_cli.backends.measure import choose_by_measurement
    from umsn_cli.backends.registry import auto_candidates
    from umsn_cli.benchmark import speed

    def fake(backend, batch, size, repeats, warmup):  # TorchScript 2.5× faster, steadily
        return [0.4 * batch if backend.name == "torchscript" else 1.0 * batch] * repeats, None

    monkeypatch.setattr(speed, "_time_deblur", fake)
    cache = tmp_path / "choices.json"
    report = quick(tiny_model, sizes=(128,), cache_file=cache)
    assert set(report.auto) == {1, 2} and report.auto[1].startswith("torchscript (")
    choice = choose_by_measurement(
        auto_candidates(), tiny_model, weights_key=WEIGHTS_KEY, device=None, precision="auto",
        batch=2, faces=1, remeasure=False, cache_file=cache,
    )  # fmt: skip
    assert choice.backend.name == "torchscript" and "measured before" in choice.reason
    assert quick(tiny_model, sizes=(32,), cache_file=tmp_path / "other.json").auto == {}
