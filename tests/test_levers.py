"""The lever A/B records and the page rendered from them (docs/levers.md)."""

from __future__ import annotations

import json
from pathlib import Path

from umsn_cli.benchmark.levers import BANDS, band_scores, load_levers, record_arm, render
from umsn_cli.train.report import training_hours

ROOT = Path(__file__).resolve().parent.parent


def _bench(blurry: float, restored: float) -> dict:
    """The part of a ``umsn benchmark --json`` file the lever table reads."""
    row = {"psnr_blurry": blurry, "psnr": restored}
    return {
        "count": 200,
        "overall": row,
        "by_size": {"15": {"psnr_blurry": blurry, "psnr": restored + 0.5}, "13": row},
        "command": "umsn benchmark …",
    }


def test_band_scores_keep_the_overall_and_the_gain_of_each_size_in_order():
    scores = band_scores(_bench(23.0, 27.25))
    assert scores["blurry"] == 23.0 and scores["restored"] == 27.25 and scores["images"] == 200
    assert list(scores["gain_by_size"].items()) == [("13", 4.25), ("15", 4.75)]


def test_recorded_arms_render_as_rows_with_their_training_and_bands(tmp_path):
    lever = tmp_path / "levers" / "mix.json"
    lever.parent.mkdir()
    lever.write_text(
        json.dumps({"title": "Blur mix", "question": "Q?", "start": "w", "budget": "b"})
    )
    run = tmp_path / "run"
    run.mkdir()
    log = [
        {"kind": "train", "step": 10, "steps_per_hour": 100.0},
        {"kind": "train", "step": 20, "steps_per_hour": 100.0},
        {"kind": "val", "step": 20, "psnr": 27.4567},
    ]
    (run / "log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in log))
    bench = tmp_path / "b.json"
    bench.write_text(json.dumps(_bench(23.0, 27.0)))
    record_arm(lever, "control", "", run, {"shen": bench})
    record_arm(lever, "wide", "--degradation wide", run, {"shen": bench, "mild": bench})
    record_arm(lever, "wide", "--degradation wide", run, {"shen": bench})  # replaces, not adds
    arms = json.loads(lever.read_text())["arms"]
    assert [a["name"] for a in arms] == ["control", "wide"]
    hours = training_hours(log).hours  # how docs/training.md counts hours, stalls discounted
    assert arms[0]["training"] == {"steps": 20, "hours": round(hours, 3), "val_psnr": 27.457}
    assert hours > 0

    page = render(load_levers(lever.parent))
    rows = [line for line in page.splitlines() if line.startswith("| Blur mix")]
    assert len(rows) == 2
    assert rows[1].split(" | ")[1:6] == ["wide (`--degradation wide`)", "20", f"{hours:.2f}",
                                        "27.457", "27.00 (+4.00)"]  # fmt: skip
    assert rows[1].count("–") == len(BANDS) - 1  # the bands it was not scored on
    assert "13 px +4.00, 15 px +4.50" in page


def test_per_class_gains_are_kept_and_shown_where_the_benchmark_scored_them(tmp_path):
    """The paper's claim is per class (features gain most): a benchmark scored with masks
    gives each class's masked gain, and the page lists them under the arm."""
    bench = _bench(23.0, 27.0)
    for c, (blurry, restored) in enumerate([(24, 27), (23, 26.5), (21, 26), (22, 25)], start=1):
        bench["overall"] |= {f"psnr_m{c}": restored, f"psnr_blurry_m{c}": blurry}
    scores = band_scores(bench)
    assert scores["gain_by_class"] == {"background": 3, "skin": 3.5, "features": 5, "hair": 3}
    assert "gain_by_class" not in band_scores(_bench(23.0, 27.0))
    lever = tmp_path / "levers" / "l.json"
    lever.parent.mkdir()
    lever.write_text(json.dumps({"title": "T", "question": "Q", "start": "s", "budget": "b"}))
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bench))
    record_arm(lever, "umsn", "", None, {"shen": path})
    page = render(load_levers(lever.parent))
    classes = "background +3.00, skin +3.50, features +5.00, hair +3.00"
    assert f"By class (masked PSNR): {classes}." in page
