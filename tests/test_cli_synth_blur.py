"""``umsn synth-blur`` end to end: pairs, class and shen modes, given kernels, failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import face, files, leftovers, pixels, save
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from umsn_cli.blur import KERNEL_SIZES, SHEN_SIZES, blur_image
from umsn_cli.cli import app


def synth(*args: str | Path):
    return CliRunner().invoke(app, ["synth-blur", *map(str, args)])


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


def test_pairs_mode_writes_the_layout_and_the_index(tmp_path):
    src = tmp_path / "in"
    save(face(96), src / "a.png")
    save(face((80, 64), "L"), src / "b.jpg", quality=95)
    out = tmp_path / "out"

    result = synth(src, "-o", out, "--seed", "5", "--noise", "0.01", "--preview")
    assert result.exit_code == 0, result.output
    assert "synth-blur: 2 done, 0 failed, 2 blurry images" in result.stderr
    per_image = [f"{folder}/{stem}.png" for folder in ("blurry", "sharp") for stem in "ab"]
    per_image += [f"kernels/{stem}.{kind}" for stem in "ab" for kind in ("npy", "png")]
    assert files(out) == sorted([*per_image, "pairs.jsonl", "preview.png"])
    entries = records(out)
    assert [e["blurry"] for e in entries] == ["blurry/a.png", "blurry/b.png"]
    for entry, stem, (width, height) in zip(entries, "ab", [(96, 96), (80, 64)], strict=True):
        assert entry["sharp"] == f"sharp/{stem}.png"
        assert entry["kernel"] == f"kernels/{stem}.npy"
        assert (entry["noise"], entry["seed"], entry["mode"]) == (0.01, 5, "pairs")
        assert "class" not in entry
        kernel = np.load(out / entry["kernel"])
        assert kernel.shape == (entry["kernel_size"],) * 2
        assert entry["kernel_size"] in KERNEL_SIZES
        assert kernel.min() >= 0 and abs(float(kernel.sum()) - 1) < 1e-5
        visible = pixels(out / "kernels" / f"{stem}.png")
        assert visible.shape == kernel.shape and visible.max() == 255
        sharp, blurry = pixels(out / entry["sharp"]), pixels(out / entry["blurry"])
        assert sharp.shape == blurry.shape == (height, width, 3)
        # The blurry image is the sharp one blurred (plus a little noise), not anything else.
        expected = blur_image(sharp.astype(np.float32) / 255, kernel) * 255
        error = blurry.astype(np.float32) - expected
        assert abs(float(error.mean())) < 0.5 and 1.5 < float(error.std()) < 4
    assert np.array_equal(pixels(out / "sharp/a.png"), pixels(src / "a.png"))
    with Image.open(out / "preview.png") as preview:
        assert (preview.mode, preview.size) == ("RGB", (400, 268))  # 2 rows of 3 tiles
    assert not leftovers(out)


def test_same_seed_same_bytes_other_seed_other_blur(tmp_path):
    src = tmp_path / "in"
    save(face(64), src / "a.png")
    save(face(72), src / "b.png")
    runs = {}
    for name, seed in (("s1", "3"), ("s2", "3"), ("s3", "4")):
        result = synth(src, "-o", tmp_path / name, "--seed", seed, "--noise", "0.02")
        assert result.exit_code == 0, result.output
        runs[name] = {f: (tmp_path / name / f).read_bytes() for f in files(tmp_path / name)}
    assert runs["s1"] == runs["s2"]
    assert runs["s1"]["sharp/a.png"] == runs["s3"]["sharp/a.png"]
    for stem in "ab":
        assert runs["s1"][f"kernels/{stem}.npy"] != runs["s3"][f"kernels/{stem}.npy"]
        assert runs["s1"][f"blurry/{stem}.png"] != runs["s3"][f"blurry/{stem}.png"]


def test_fixed_size_and_no_noise(tmp_path):
    save(face(64), tmp_path / "a.png")
    result = synth(tmp_path / "a.png", "-o", tmp_path / "out", "--size", "15")
    assert result.exit_code == 0, result.output
    (entry,) = records(tmp_path / "out")
    assert entry["kernel_size"] == 15 and entry["noise"] == 0.0
    kernel = np.load(tmp_path / "out/kernels/a.npy")
    sharp = pixels(tmp_path / "out/sharp/a.png").astype(np.float32) / 255
    expected = np.rint(np.clip(blur_image(sharp, kernel), 0, 1) * 255)
    assert np.abs(pixels(tmp_path / "out/blurry/a.png") - expected).max() <= 1


def test_shen_mode_writes_80_blurry_images_per_face_from_one_bank(tmp_path):
    src = tmp_path / "in"
    save(face(48), src / "a.png")
    save(face(40), src / "b.png")
    out = tmp_path / "out"
    result = synth(src, "-o", out, "--mode", "shen", "--seed", "1", "--preview")
    assert result.exit_code == 0, result.output
    assert "160 blurry images" in result.stderr
    names = {f"ker{n:02d}_blur_k{k}" for k in SHEN_SIZES for n in range(1, 11)}
    assert len(names) == 80
    listed = files(out)
    for stem in "ab":
        mine = {f[len(f"blurry/{stem}_") : -4] for f in listed if f.startswith(f"blurry/{stem}_")}
        assert mine == names
    bank = [f for f in listed if f.startswith("kernels/")]
    assert len(bank) == 160  # 80 kernels, .npy and .png, shared by both faces
    assert "kernels/ker10_k27.npy" in bank and "kernels/ker01_k13.png" in bank
    entries = records(out)
    assert len(entries) == 160
    by_name = {e["blurry"]: e for e in entries}
    a, b = by_name["blurry/a_ker03_blur_k19.png"], by_name["blurry/b_ker03_blur_k19.png"]
    assert a["kernel"] == b["kernel"] == "kernels/ker03_k19.npy"
    assert a["kernel_size"] == 19 and a["mode"] == "shen"
    assert np.load(out / a["kernel"]).shape == (19, 19)
    assert "preview.png" in listed
    assert not leftovers(out)


def _labels(size: int) -> np.ndarray:
    """CelebAMask-HQ values: hair (13) on top, skin (1) in the middle, background (0)."""
    labels = np.zeros((size, size), np.uint8)
    labels[: size // 3] = 13
    labels[size // 3 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return labels


@pytest.mark.parametrize(("label_mode", "cls", "value"), [("P", 4, 13), ("L", 2, 1)])
def test_class_mode_blurs_only_the_class(tmp_path, label_mode, cls, value):
    src, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    save(face(96), src / "a.png")
    save(face(96), src / "nomask.png")
    labels = _labels(96)
    mask_image = Image.fromarray(labels, mode="L")
    if label_mode == "P":
        mask_image = mask_image.convert("P")
        mask_image.putpalette([v for i in range(256) for v in (i, i, i)])
    save(mask_image, masks / "a.png")

    result = synth(src, "-o", out, "--mode", "class", "--masks", masks, "--class", str(cls))
    assert result.exit_code == 1, result.output  # nomask.png has no label mask
    assert "1 done, 1 failed" in result.stderr and "nomask" in result.stderr
    sharp, blurry = pixels(out / "sharp/a.png"), pixels(out / "blurry/a.png")
    inside = labels == value
    assert np.array_equal(blurry[~inside], sharp[~inside])
    changed = np.any(blurry != sharp, axis=-1)
    assert changed[inside].mean() > 0.3
    (entry,) = records(out)
    assert entry["mode"] == "class" and entry["class"] == cls
    assert not any("nomask" in f for f in files(out))
    assert not leftovers(out)


def test_a_kernel_larger_than_the_image_is_warned_about(tmp_path):
    save(face(48), tmp_path / "a.png")
    result = synth(tmp_path / "a.png", "-o", tmp_path / "out", "--size", "61", "-v")
    assert result.exit_code == 0, result.output
    assert "a 61 px kernel is larger than the image (48×48)" in result.stderr


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--mode", "class"], "--masks"),
        (["--mode", "class", "--masks", "MASKS", "--class", "5"], "--class 5"),
        (["--masks", "MASKS"], "only apply to --mode class"),
        (["--mode", "shen", "--size", "13"], "--size"),
        (["--size", "14"], "odd"),
        (["--size", "100001"], "from 3 to 255"),
        (["--mode", "wobble"], "'wobble' is not one of 'pairs', 'class', 'shen'"),
        (["--exposure", "0"], "--exposure"),
        (["--noise", "-0.1"], "--noise"),
    ],
)
def test_wrong_combinations_are_one_line_usage_errors(tmp_path, extra, needle):
    save(face(48), tmp_path / "a.png")
    (tmp_path / "masks").mkdir()
    extra = [str(tmp_path / "masks") if a == "MASKS" else a for a in extra]
    result = synth(tmp_path / "a.png", "-o", tmp_path / "out", *extra)
    assert needle in one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_given_kernels_npy_png_and_mat(tmp_path):
    src, bank, out = tmp_path / "in", tmp_path / "bank", tmp_path / "out"
    for i, stem in enumerate("abcd"):
        save(face(48 + 8 * i), src / f"{stem}.png")
    bank.mkdir()
    box = np.ones((5, 5))
    np.save(bank / "k1.npy", 3 * box)
    line = np.zeros((7, 7), np.uint8)
    line[3, 1:6] = 200
    Image.fromarray(line).save(bank / "k2.png")
    disc = (np.hypot(*np.mgrid[-4:5, -4:5]) <= 3.5).astype(np.float64)
    savemat(bank / "k3.mat", {"psf": disc})

    result = synth(src, "-o", out, "--kernels", bank)
    assert result.exit_code == 0, result.output
    expected = [box / box.sum(), line / line.sum(), disc / disc.sum(), box / box.sum()]
    for stem, kernel in zip("abcd", expected, strict=True):  # cycled over the images
        np.testing.assert_allclose(np.load(out / f"kernels/{stem}.npy"), kernel, atol=1e-7)
    assert [e["kernel_size"] for e in records(out)] == [5, 7, 9, 5]

    # A single file works too; in shen mode the given kernels are the whole bank.
    single = synth(src / "a.png", "-o", tmp_path / "one", "--kernels", bank / "k3.mat")
    assert single.exit_code == 0, single.output
    assert records(tmp_path / "one")[0]["kernel_size"] == 9
    shen = synth(src / "a.png", "-o", tmp_path / "shen", "--mode", "shen", "--kernels", bank)
    assert shen.exit_code == 0, shen.output
    assert [f for f in files(tmp_path / "shen") if f.startswith("blurry/")] == [
        "blurry/a_ker01_blur_k5.png",
        "blurry/a_ker01_blur_k7.png",
        "blurry/a_ker01_blur_k9.png",
    ]


def _negative(path: Path) -> Path:
    kernel = np.ones((5, 5))
    kernel[0, 0] = -0.5
    np.save(path / "neg.npy", kernel)
    return path / "neg.npy"


def _two_arrays(path: Path) -> Path:
    savemat(path / "two.mat", {"a": np.ones((5, 5)), "b": np.ones((3, 3))})
    return path / "two.mat"


def _even(path: Path) -> Path:
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(path / "even.png")
    return path / "even.png"


def _stack(path: Path) -> Path:
    np.save(path / "stack.npy", np.ones((2, 5, 5)))
    return path / "stack.npy"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_negative, "negative"),
        (_two_arrays, "exactly one 2-D numeric array, found 2 (a, b)"),
        (_even, "odd size"),
        (_stack, "2-D"),
    ],
)
def test_bad_kernel_files_are_usage_errors(tmp_path, make, needle):
    save(face(48), tmp_path / "a.png")
    kernel = make(tmp_path)
    result = synth(tmp_path / "a.png", "-o", tmp_path / "out", "--kernels", kernel)
    message = one_line_error(result)
    assert needle in message and kernel.name in message
    assert not (tmp_path / "out").exists()


def test_a_corrupt_image_fails_alone(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    save(face(64), src / "ok.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 40)
    save(face(56), src / "zz.png")
    result = synth(src, "-o", out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "synth-blur: 2 done, 1 failed" in result.stderr
    assert any(
        line.startswith("failed:") and "broken.jpg" in line for line in result.stderr.splitlines()
    )
    assert not any("broken" in f for f in files(out))
    assert [e["blurry"] for e in records(out)] == ["blurry/ok.png", "blurry/zz.png"]
    assert not leftovers(out)

    # A failure does not shift the others' kernels: zz's is the same when the file is fine.
    (src / "broken.jpg").unlink()
    save(face(48), src / "broken.png")  # the same place in the sorted order
    again = synth(src, "-o", tmp_path / "again")
    assert again.exit_code == 0, again.output
    same = tmp_path / "again" / "kernels/zz.npy"
    assert (out / "kernels/zz.npy").read_bytes() == same.read_bytes()


def test_existing_outputs_need_overwrite(tmp_path):
    save(face(48), tmp_path / "a.png")
    out = tmp_path / "out"
    assert synth(tmp_path / "a.png", "-o", out).exit_code == 0
    before = {f: (out / f).read_bytes() for f in files(out)}
    again = synth(tmp_path / "a.png", "-o", out, "--seed", "9")
    assert "--overwrite" in one_line_error(again)
    assert {f: (out / f).read_bytes() for f in files(out)} == before
    forced = synth(tmp_path / "a.png", "-o", out, "--seed", "9", "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert (out / "kernels/a.npy").read_bytes() != before["kernels/a.npy"]


def test_never_writes_over_an_input(tmp_path):
    out = tmp_path / "out"
    source = save(face(48), out / "sharp" / "a.png")
    before = source.read_bytes()
    result = synth(source, "-o", out, "--overwrite")
    assert "refusing to write over the input" in one_line_error(result)
    assert source.read_bytes() == before
    assert files(out) == ["sharp/a.png"]


def test_earlier_results_inside_a_walked_folder_are_not_inputs(tmp_path):
    src = tmp_path / "faces"
    save(face(48), src / "a.png")
    first = synth(src, "-o", src / "synth")
    assert first.exit_code == 0, first.output
    again = synth(src, "-o", src / "synth", "--recursive", "--overwrite")
    assert again.exit_code == 0, again.output
    assert "1 done" in again.stderr


def test_a_16_bit_source_is_reduced_with_a_warning(tmp_path):
    import png as pypng

    deep = tmp_path / "in" / "deep.png"
    deep.parent.mkdir(parents=True)
    rows = (np.asarray(face(), dtype=np.uint16) * 257).reshape(128, -1)
    with deep.open("wb") as fh:
        pypng.Writer(128, 128, greyscale=False, bitdepth=16).write(fh, rows)
    result = synth(deep, "-o", tmp_path / "out", "--verbose")
    assert result.exit_code == 0, result.output
    assert "16-bit source reduced to 8 bits" in result.stderr
