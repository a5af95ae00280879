"""``umsn segment`` end to end with a tiny random model: overlays, label maps, probabilities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cli_helpers import face, files, leftovers, pixels, save
from PIL import Image
from typer.testing import CliRunner

from umsn_cli.cli import app


def segment(model: Path, *args: str | Path, backend: str = "cpu"):
    argv = ["segment", *map(str, args), "--model", str(model), "--backend", backend]
    return CliRunner().invoke(app, argv)


def test_writes_overlay_labels_and_probs(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face((200, 150), "L"), src / "b.jpg", quality=95)
    out = tmp_path / "out"

    result = segment(tiny_checkpoint, src, "-o", out, "--probs", "--suffix", "_s")
    assert result.exit_code == 0, result.output
    assert "segment: 2 done, 0 failed" in result.stderr
    assert files(out) == [
        "a_s_labels.png",
        "a_s_overlay.png",
        "a_s_probs.npy",
        "b_s_labels.png",
        "b_s_overlay.png",
        "b_s_probs.npy",
    ]  # no restored image
    for stem, (height, width) in (("a_s", (128, 128)), ("b_s", (150, 200))):
        with (
            Image.open(out / f"{stem}_overlay.png") as ov,
            Image.open(out / f"{stem}_labels.png") as lab,
        ):
            assert (ov.mode, ov.size) == ("RGB", (width, height))
            assert (lab.mode, lab.size) == ("L", (width, height))
            labels = np.asarray(lab)
        probs = np.load(out / f"{stem}_probs.npy")
        assert probs.shape == (4, height, width) and probs.dtype == np.float32
        assert probs.min() >= 0.0 and probs.max() <= 1.0
        assert labels.dtype == np.uint8 and labels.max() <= 3
        assert np.array_equal(labels, np.argmax(probs, axis=0))
        # The overlay leaves background pixels as they were and tints the others.
        source = np.asarray(face((width, height)).convert("RGB")) if stem == "a_s" else None
        if source is not None:
            overlay = pixels(out / f"{stem}_overlay.png")
            background = labels == 0
            assert np.array_equal(overlay[background], source[background])
            if (~background).any():
                assert not np.array_equal(overlay[~background], source[~background])
    assert not leftovers(out)


def test_without_probs_no_npy_and_existing_outputs_kept(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    out = tmp_path / "out"
    first = segment(tiny_checkpoint, src, "-o", out)
    assert first.exit_code == 0, first.output
    assert files(out) == ["a_labels.png", "a_overlay.png"]

    before = (out / "a_labels.png").read_bytes()
    (out / "a_labels.png").write_bytes(b"user data")
    again = segment(tiny_checkpoint, src, "-o", out, "--probs")
    assert again.exit_code == 1 and "--overwrite" in again.stderr
    assert (out / "a_labels.png").read_bytes() == b"user data"
    assert files(out) == ["a_labels.png", "a_overlay.png"]  # no lone .npy either

    forced = segment(tiny_checkpoint, src, "-o", out, "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert (out / "a_labels.png").read_bytes() == before


def test_a_corrupt_file_fails_alone(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "ok.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    out = tmp_path / "out"
    result = segment(tiny_checkpoint, src, "-o", out, "--probs")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "segment: 1 done, 1 failed" in result.stderr
    assert any(
        line.startswith("failed:") and "broken.jpg" in line for line in result.stderr.splitlines()
    )
    assert files(out) == ["ok_labels.png", "ok_overlay.png", "ok_probs.npy"]
    assert not leftovers(out)


def test_batch_size_and_backend_keep_the_probabilities(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    rng = np.random.default_rng(3)
    for i in range(3):
        save(
            Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)), src / f"r{i}.png"
        )
    save(face(176), src / "r3.png")
    common = ("--probs", "--precision", "fp32")  # exactness is an fp32 promise
    runs = {
        "b1": segment(tiny_checkpoint, src, "-o", tmp_path / "b1", *common, "--batch-size", "1"),
        "b3": segment(tiny_checkpoint, src, "-o", tmp_path / "b3", *common, "--batch-size", "3"),
        "ts": segment(tiny_checkpoint, src, "-o", tmp_path / "ts", *common, backend="torchscript"),
    }
    for result in runs.values():
        assert result.exit_code == 0, result.output
    for i in range(4):
        reference = np.load(tmp_path / "b1" / f"r{i}_probs.npy")
        top2 = np.sort(reference, axis=0)[-2:]
        clear = top2[1] - top2[0] > 1e-4  # pixels whose class is not a near tie
        for name, atol in (("b3", 1e-5), ("ts", 1e-4)):
            probs = np.load(tmp_path / name / f"r{i}_probs.npy")
            np.testing.assert_allclose(probs, reference, rtol=0, atol=atol)
            labels = pixels(tmp_path / name / f"r{i}_labels.png")
            assert np.array_equal(labels[clear], np.argmax(reference, axis=0)[clear])
