"""``--backend auto`` by measurement: the faster backend wins, once, and is remembered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from umsn_cli.backends import Backend
from umsn_cli.backends.measure import MEASURE_FROM, choose_by_measurement
from umsn_cli.nn import build_model

KEY = "a" * 64


def _backend(name: str, priority: int, seconds_per_call: float) -> type[Backend]:
    """A backend that takes a fixed time per call, and counts how often it is built."""

    class Timed(Backend):
        built = 0

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            type(self).built += 1

        @classmethod
        def unavailable_reason(cls, device: str | None = None) -> str | None:
            return None

        def deblur(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            time.sleep(seconds_per_call)
            return images, images[:, :1].repeat(1, 4, 1, 1)

        def segment(self, images: torch.Tensor) -> torch.Tensor:
            return images[:, :1].repeat(1, 4, 1, 1)

    Timed.name, Timed.priority = name, priority
    return Timed


@pytest.fixture
def model(tiny_config):
    return build_model(tiny_config).eval()


def choose(candidates, model, cache: Path, *, faces: int = 100, remeasure: bool = False):
    return choose_by_measurement(
        candidates, model, weights_key=KEY, device=None, precision="fp32", batch=2,
        faces=faces, remeasure=remeasure, cache_file=cache,
    )  # fmt: skip


def test_the_faster_backend_wins_and_the_answer_is_kept(model, tmp_path):
    slow, fast = _backend("eager", 10, 0.03), _backend("compiled", 5, 0.005)
    cache = tmp_path / "choices.json"
    first = choose([slow, fast], model, cache)
    assert first.backend is fast and first.built is not None and first.built.name == "compiled"
    assert "measured now" in first.reason and "eager" in first.reason
    (entry,) = json.loads(cache.read_text()).values()
    assert entry["backend"] == "compiled" and entry["ms_per_face"]["eager"] > 10
    again = choose([slow, fast], model, cache, faces=1)  # the cache answers a small job too
    assert again.backend is fast and again.built is None and "measured before" in again.reason
    assert (slow.built, fast.built) == (1, 1)  # not timed a second time
    choose([slow, fast], model, cache, remeasure=True)
    assert (slow.built, fast.built) == (2, 2)


def test_a_small_job_takes_the_default_unmeasured(model, tmp_path):
    slow, fast = _backend("eager", 10, 0.03), _backend("compiled", 5, 0.005)
    cache = tmp_path / "choices.json"
    choice = choose([slow, fast], model, cache, faces=MEASURE_FROM - 1)
    assert choice.backend is slow and "by default" in choice.reason
    assert (slow.built, fast.built) == (0, 0) and not cache.exists()


def test_a_near_tie_keeps_the_default(model, tmp_path):
    default, other = _backend("eager", 10, 0.05), _backend("compiled", 5, 0.048)
    assert choose([default, other], model, tmp_path / "c.json").backend is default


def test_a_damaged_or_foreign_cache_means_measuring_again(model, tmp_path):
    slow, fast = _backend("eager", 10, 0.02), _backend("compiled", 5, 0.002)
    cache = tmp_path / "choices.json"
    cache.write_text("{not json")
    assert choose([slow, fast], model, cache).backend is fast
    entries = json.loads(cache.read_text())
    for entry in entries.values():
        entry["backend"] = "planted"  # not one of the candidates: ignored
    cache.write_text(json.dumps(entries))
    choice = choose([slow, fast], model, cache)
    assert choice.backend is fast and "measured now" in choice.reason


def test_one_candidate_is_taken_without_timing(model, tmp_path):
    only = _backend("eager", 10, 0.0)
    choice = choose([only], model, tmp_path / "c.json")
    assert choice.backend is only and only.built == 0 and "only backend" in choice.reason
