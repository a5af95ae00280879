"""``umsn benchmark`` end to end with a tiny random model: quality reports and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cli_helpers import face, save
from photo_helpers import paste_face, scene
from PIL import Image
from test_benchmark_datasets import shen_layout
from test_cli_deblur import assert_clean_error, run


def bench(model: Path, *args: str | Path):
    return run("benchmark", *args, "--model", model, "--backend", "cpu", "--batch-size", "16")


def sharp_faces(folder: Path, count: int = 2) -> Path:
    for i in range(count):
        save(face(64).rotate(5 * i), folder / f"face{i}.png")
    return folder


def test_quality_on_a_folder_of_sharp_faces_writes_every_report(tmp_path, tiny_checkpoint):
    faces = sharp_faces(tmp_path / "faces")
    out = tmp_path / "out"
    out.mkdir()
    result = bench(
        tiny_checkpoint, "--dataset", faces, "--per-size", "1",
        "--json", out / "r.json", "--markdown", out / "r.md", "--picture", out / "cases.png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "blurry input" in result.stdout and "per kernel size" in result.stdout
    data = json.loads((out / "r.json").read_text())
    assert data["count"] == 2 * 8 and len(data["cases"]) == 16
    assert sorted(data["by_size"], key=int) == [str(s) for s in range(13, 28, 2)]
    assert data["mask_source"] == "S-Net on the sharp face"
    assert {"psnr", "ssim", "psnr_blurry", "ssim_blurry"} <= set(data["overall"])
    assert data["command"].startswith("umsn benchmark --dataset")
    markdown = (out / "r.md").read_text()
    assert "| blurry input |" in markdown and "| 27×27 |" in markdown
    assert f"{data['overall']['psnr_blurry']:.2f}" in markdown
    with Image.open(out / "cases.png") as picture:
        assert picture.width > 4 * 128 and picture.height > 6 * 128  # 3 best + 3 worst rows


def test_quality_on_a_shen_layout_under_the_data_root(tmp_path, tiny_checkpoint, monkeypatch):
    shen_layout(tmp_path / "data")
    monkeypatch.setenv("UMSN_DATA", str(tmp_path / "data"))
    result = bench(tiny_checkpoint, "--dataset", "helen", "--json", tmp_path / "h.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["dataset"] == "helen" and data["count"] == 8
    assert sorted(data["by_size"]) == ["13", "27"]


def test_a_missing_named_set_exits_2_saying_where_it_comes_from(tmp_path, tiny_checkpoint):
    result = bench(tiny_checkpoint, "--dataset", "celeba", "--data-root", tmp_path)
    message = assert_clean_error(result, 2)
    assert "Shen et al." in message and "final_CelebA_gt" in message


def test_usage_errors(tmp_path, tiny_checkpoint):
    assert "--dataset" in assert_clean_error(bench(tiny_checkpoint), 2)
    faces = sharp_faces(tmp_path / "faces", 1)
    message = assert_clean_error(
        bench(tiny_checkpoint, "--dataset", faces, "--json", tmp_path / "no" / "r.json"), 2
    )
    assert "does not exist" in message
    if Path("/proc").is_dir():  # a folder not even root can write: refused before the run
        message = assert_clean_error(bench(tiny_checkpoint, "--dataset", faces, "--json",
                                           "/proc/x.json"), 2)  # fmt: skip
        assert "/proc/x.json: its folder cannot be written" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    message = assert_clean_error(bench(tiny_checkpoint, "--dataset", empty), 2)
    assert "no images" in message and "--data " not in message
    result = bench(tiny_checkpoint, "--speed", "--flip-ensemble")
    assert "--flip-ensemble" in assert_clean_error(result, 2)
    result = bench(tiny_checkpoint, "--dataset", faces, "--protocol", "levin")
    assert "protocol" in assert_clean_error(result, 2)
    result = bench(tiny_checkpoint, "--dataset", faces, "--kernels", tmp_path / "none.npy")
    assert "--kernels" in assert_clean_error(result, 2)


def test_identity_without_dlib_is_skipped_with_a_message(tmp_path, tiny_checkpoint, monkeypatch):
    from umsn_cli.benchmark import identity

    monkeypatch.setattr(identity, "identity_unavailable_reason", lambda: "install umsn[eval]")
    faces = sharp_faces(tmp_path / "faces", 1)
    result = bench(
        tiny_checkpoint, "--dataset", faces, "--per-size", "1", "--identity", "--limit", "1",
        "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "identity distance skipped: install umsn[eval]" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert "identity" not in data["overall"] and data["identity"].startswith("skipped")


def test_speed_table_and_reports(tmp_path, tiny_checkpoint):
    result = run(
        "benchmark", "--speed", "--model", tiny_checkpoint, "--backend", "cpu",
        "--batch", "1", "--batch", "2", "--size", "32", "--repeats", "1",
        "--precision", "fp32", "--json", tmp_path / "s.json", "--markdown", tmp_path / "s.md",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "matmul peak" in result.stdout and "│ cpu " in result.stdout
    data = json.loads((tmp_path / "s.json").read_text())
    assert [(r["backend"], r["batch"], r["size"]) for r in data["rows"]] == [
        ("cpu", 1, 32),
        ("cpu", 2, 32),
    ]
    assert all(r["ms_per_face"] > 0 for r in data["rows"])
    assert "--speed" in data["command"] and "--batch 1 --batch 2" in data["command"]
    assert "--precision fp32" in data["command"]  # a choice as typed, not its enum's name
    assert data["cpu"]  # the processor and its instruction sets: what the speed depends on
    assert "| cpu |" in (tmp_path / "s.md").read_text()


def test_speed_with_a_backend_that_cannot_run_is_an_error(tmp_path, tiny_checkpoint):
    result = run("benchmark", "--speed", "--model", tiny_checkpoint, "--backend", "cuda")
    assert "cuda" in assert_clean_error(result)


def test_an_unreadable_pair_is_left_out_with_a_warning(tmp_path, tiny_checkpoint):
    folder = shen_layout(tmp_path / "data", faces=("f1",), sizes=(13,))
    (folder / "final_Helen_blur" / "f1_ker01_blur_k13.png").write_bytes(b"broken")
    result = bench(tiny_checkpoint, "--dataset", "helen", "--data-root", tmp_path / "data",
                   "--json", tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 pair(s) could not be read and are left out" in result.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["count"] == 1 and data["skipped"][0]["file"].endswith("f1_ker01_blur_k13.png")


def test_nothing_readable_is_an_error(tmp_path, tiny_checkpoint):
    folder = shen_layout(tmp_path / "data", faces=("f1",), sizes=(13,))
    (folder / "final_Helen_gt" / "f1.png").write_bytes(b"broken")
    result = bench(tiny_checkpoint, "--dataset", "helen", "--data-root", tmp_path / "data")
    assert "no pair could be scored" in assert_clean_error(result, 1)


def test_speed_of_a_config_without_weights_times_random_weights(monkeypatch, tiny_config):
    from umsn_cli.nn import config as configs

    monkeypatch.setitem(configs.CONFIGS, "test-tiny", tiny_config)
    result = run("benchmark", "--speed", "--model", "test-tiny", "--backend", "cpu",
                 "--batch", "1", "--size", "32", "--repeats", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no weights for test-tiny here: timing random weights" in result.stderr


def test_photo_framing_scores_the_face_the_photo_and_its_background(tmp_path, tiny_checkpoint):
    """--framing photo: each frame is a photo blurred at its own scale by every kernel as
    drawn (13–27 px) and twice as large (26–54 px), restored in photo mode; the face
    region, the whole photo, the untouched background and the time are reported."""
    frames = tmp_path / "frames"
    for i in range(2):
        photo = paste_face(scene(256, 256, seed=i), 32, 32, 192)  # the face: centre 0.75
        save(Image.fromarray((photo * 255).round().astype(np.uint8)), frames / f"f{i}.png")
    result = bench(
        tiny_checkpoint, "--dataset", frames, "--framing", "photo", "--crop", "0.75",
        "--size", "96", "--per-size", "1", "--json", tmp_path / "p.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "whole photos" in result.stdout
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["count"] == 2 * 8 * 2
    small, large = range(13, 28, 2), range(26, 55, 4)
    assert sorted(data["by_size"], key=int) == sorted(str(s) for s in [*small, *large])
    overall = data["overall"]
    # the largest shakes on a 96 px face hide it from the detector: such a photo comes
    # back unchanged, which keeps its background too
    assert overall["faces_found"] >= 0.5 and overall["background_kept"] == 1
    assert overall["ms_per_photo"] > 0 and overall["psnr_photo_blurry"] > 0
    assert "128²" in data["protocol"] and "96²" in data["protocol"]


def test_size_in_a_quality_run_needs_photo_framing(tmp_path, tiny_checkpoint):
    faces = sharp_faces(tmp_path / "faces")
    result = bench(tiny_checkpoint, "--dataset", faces, "--size", "384")
    assert "--framing photo" in assert_clean_error(result, 2)
