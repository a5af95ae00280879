"""The hours of training a run's log reports: pauses are not training."""

import math

import pytest

from umsn_cli.train.report import training_hours


def _line(step: int, rate: float) -> dict:
    return {"kind": "train", "step": step, "steps_per_hour": rate, "loss": 0.1}


def test_steady_windows_add_up_to_steps_over_rate():
    history = [_line(s, 1000.0) for s in range(20, 220, 20)]
    time = training_hours(history)
    assert time.steps == 180  # the first line has no window before it
    assert time.hours == pytest.approx(0.18)
    assert time.logged_hours == pytest.approx(0.18)


def test_a_paused_window_counts_at_the_median_rate_not_as_logged():
    rates = [1000.0] * 9 + [10.0] + [1000.0] * 10  # one window stopped for ~2 hours
    history = [_line(20 * (i + 1), r) for i, r in enumerate(rates)]
    time = training_hours(history)
    assert time.median_rate == 1000.0
    assert time.hours == pytest.approx(19 * 20 / 1000)
    assert time.logged_hours == pytest.approx(18 * 20 / 1000 + 20 / 10)


def test_a_slower_machine_is_not_a_pause():
    history = [_line(20 * (i + 1), r) for i, r in enumerate([1000.0] * 6 + [600.0] * 5)]
    assert training_hours(history).hours == pytest.approx(5 * 0.02 + 5 * 20 / 600)


def test_until_cuts_the_run_and_other_lines_are_ignored():
    history = [_line(s, 1000.0) for s in range(20, 220, 20)]
    history.insert(3, {"kind": "val", "step": 60, "psnr": 25.0})
    time = training_hours(history, until=100)
    assert time.steps == 80
    assert time.hours == pytest.approx(0.08)


def test_a_log_without_steps_has_no_hours():
    time = training_hours([{"kind": "note", "step": 0, "note": "x"}])
    assert time.steps == 0 and time.hours == 0.0 and math.isnan(time.median_rate)
