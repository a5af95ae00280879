"""``umsn deblur`` end to end with a tiny random model: inputs, outputs, failures, flags."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import png
import pytest
import torch
from cli_helpers import face, files, leftovers, pixels, save
from PIL import Image
from typer.testing import CliRunner

from umsn_cli.cli import app
from umsn_cli.weights import store
from umsn_cli.weights.manifest import Manifest

INFO_LINE = re.compile(r"using backend=(\w+) device=(\S+) dtype=(\w+)")


def run(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def deblur(model: Path, *args: str | Path, backend: str = "cpu"):
    return run("deblur", *args, "--model", model, "--backend", backend)


def assert_clean_error(result, code: int | None = None) -> str:
    """One ``error:`` line on stderr, no traceback; returns the message."""
    if code is None:
        assert result.exit_code != 0, result.output
    else:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# --- which inputs, which outputs --------------------------------------------------------------


def test_files_glob_and_directory_keep_stems_and_formats(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face(256), src / "b.jpeg", quality=95)
    save(face(128).convert("P"), src / "c.gif")
    (src / "notes.txt").write_text("not an image")  # a directory walk ignores it

    result = deblur(tiny_checkpoint, src / "a.png", src / "b.jpeg", "-o", tmp_path / "files")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "files") == ["a.png", "b.jpeg"]
    assert "2 done, 0 failed" in result.stderr

    result = deblur(tiny_checkpoint, str(src / "*.png"), "-o", tmp_path / "glob")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "glob") == ["a.png"]

    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "dir")
    assert result.exit_code == 0, result.output
    # The default type is the input's (spelled as the input spelled it); GIF becomes PNG.
    assert files(tmp_path / "dir") == ["a.png", "b.jpeg", "c.png"]
    with Image.open(tmp_path / "dir" / "b.jpeg") as jpeg, Image.open(tmp_path / "dir/c.png") as c:
        assert jpeg.format == "JPEG" and jpeg.size == (256, 256)
        assert c.format == "PNG" and c.mode == "RGB"
    assert not leftovers(tmp_path / "dir")


def test_recursive_mirrors_subfolders(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "top.png")
    save(face(128), src / "sub" / "mid.png")
    save(face(96), src / "sub" / "deeper" / "low.jpg")
    save(face(128), src / ".hidden" / "skip.png")

    flat = deblur(tiny_checkpoint, src, "-o", tmp_path / "flat")
    assert flat.exit_code == 0, flat.output
    assert files(tmp_path / "flat") == ["top.png"]

    deep = deblur(tiny_checkpoint, src, "--recursive", "-o", tmp_path / "deep")
    assert deep.exit_code == 0, deep.output
    assert files(tmp_path / "deep") == ["sub/deeper/low.jpg", "sub/mid.png", "top.png"]
    assert pixels(tmp_path / "deep/sub/deeper/low.jpg").shape == (96, 96, 3)


def test_suffix_and_ext(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "photo.jpg", quality=95)
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--suffix", "_r", "--ext", "PNG")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "out") == ["photo_r.png"]
    with Image.open(tmp_path / "out" / "photo_r.png") as out:
        assert out.format == "PNG" and out.size == (128, 128)


# --- what the outputs hold ------------------------------------------------------------------


def test_outputs_keep_size_grey_alpha_and_16_bits(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(256), src / "big.png")
    save(face(128), src / "small.png")
    save(face((100, 60)), src / "wide.png")
    save(face(128, "L"), src / "grey.png")
    rgba = face(160, "RGBA")
    alpha = np.tile(np.linspace(0, 255, 160).astype(np.uint8), (160, 1))
    rgba.putalpha(Image.fromarray(alpha))
    save(rgba, src / "alpha.png")
    deep = (np.asarray(face(128)).astype(np.uint16) * 257) ^ np.uint16(0x5A)  # odd low bytes
    with (src / "deep.png").open("wb") as fh:
        png.Writer(128, 128, greyscale=False, bitdepth=16).write(fh, deep.reshape(128, -1))

    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    with Image.open(out / "big.png") as big, Image.open(out / "small.png") as small:
        assert (big.size, big.mode) == ((256, 256), "RGB")
        assert (small.size, small.mode) == ((128, 128), "RGB")
    with Image.open(out / "wide.png") as wide, Image.open(out / "grey.png") as grey:
        assert (wide.size, grey.size, grey.mode) == ((100, 60), (128, 128), "L")
    with Image.open(out / "alpha.png") as restored:
        assert restored.mode == "RGBA" and restored.size == (160, 160)
        assert np.array_equal(np.asarray(restored)[..., 3], alpha)
    width, height, rows, info = png.Reader(filename=str(out / "deep.png")).read()
    restored16 = np.array(list(rows), dtype=np.uint16).reshape(height, width, 3)
    assert (width, height, info["bitdepth"], info["planes"]) == (128, 128, 16, 3)
    assert np.any(restored16 % 257 != 0)  # real 16-bit samples, not 8 bits scaled up
    # The model did change the image (random weights): the 128² output is the model's.
    assert not np.array_equal(pixels(out / "small.png"), np.asarray(face(128)))


def test_side_by_side_and_masks(tmp_path, tiny_checkpoint):
    src = save(face((200, 160)), tmp_path / "f.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--side-by-side", "--save-masks")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert files(out) == ["f.png", "f_compare.png", "f_labels.png", "f_overlay.png"]

    compare = pixels(out / "f_compare.png")
    assert compare.shape == (160, 2 * 200 + 4, 3)
    assert np.array_equal(compare[:, :200], np.asarray(face((200, 160))))  # the input, left
    assert np.all(compare[:, 200:204] == 255)  # a white gap
    assert np.array_equal(compare[:, 204:], pixels(out / "f.png"))  # the result, right

    with Image.open(out / "f_overlay.png") as ov, Image.open(out / "f_labels.png") as lab:
        assert (ov.mode, ov.size) == ("RGB", (200, 160))
        assert (lab.mode, lab.size) == ("L", (200, 160))
        labels = np.asarray(lab)
    assert labels.dtype == np.uint8 and labels.max() <= 3


# --- never destroying anything ----------------------------------------------------------------


def test_existing_outputs_need_overwrite(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    out = tmp_path / "out"
    sentinel = save(Image.new("RGB", (8, 8), "red"), out / "a.png")
    before = sentinel.read_bytes()

    refused = deblur(tiny_checkpoint, src, "-o", out)
    assert refused.exit_code == 1
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.output
    assert "0 done, 1 failed" in refused.stderr
    assert sentinel.read_bytes() == before

    replaced = deblur(tiny_checkpoint, src, "-o", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert pixels(sentinel).shape == (128, 128, 3)
    assert files(out) == ["a.png"] and not leftovers(out)


def test_inputs_are_never_written(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    a = save(face(128), src / "a.png")
    save(face(128).convert("P"), src / "c.gif")
    before = a.read_bytes()

    result = deblur(tiny_checkpoint, src, "-o", src)
    assert result.exit_code == 1
    assert "refusing to write over the input" in result.stderr
    assert "1 done, 1 failed" in result.stderr
    assert a.read_bytes() == before
    assert files(src) == ["a.png", "c.gif", "c.png"]  # the GIF's result is a new file

    # Even with --overwrite the input is kept.
    again = deblur(tiny_checkpoint, a, "-o", src, "--overwrite")
    assert again.exit_code == 1 and a.read_bytes() == before


def test_outputs_of_two_inputs_never_collide(tmp_path, tiny_checkpoint):
    """a.png's comparison and a_compare.gif's result would both be a_compare.png."""
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face(128).convert("P"), src / "a_compare.gif")
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, src, "-o", out, "--side-by-side", "--overwrite")
    assert result.exit_code == 1
    assert "already an output of" in result.stderr
    assert "1 done, 1 failed" in result.stderr
    assert pixels(out / "a_compare.png").shape == (128, 2 * 128 + 4, 3)  # not replaced


def test_bad_files_fail_alone(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    good = save(face(128), src / "good.png")
    save(face(144), src / "good2.jpg", quality=90)
    (src / "cut.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (src / "text.jpg").write_text("this is not a JPEG\n")
    (src / "empty.png").write_bytes(b"")
    out = tmp_path / "out"

    result = deblur(tiny_checkpoint, src, "-o", out, "--batch-size", "2", "--save-masks")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert re.search(r"deblur: 2 done, 3 failed in ", result.stderr)
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 3
    for name in ("cut.png", "text.jpg", "empty.png"):
        assert sum(name in line for line in failed) == 1
    assert files(out) == [
        "good.png",
        "good2.jpg",
        "good2_labels.png",
        "good2_overlay.png",
        "good_labels.png",
        "good_overlay.png",
    ]
    assert not leftovers(out)


def test_names_with_brackets_are_printed_as_they_are(tmp_path, tiny_checkpoint):
    """Rich would read "[bold]" in a file name as markup and swallow it."""
    src = tmp_path / "[draft] in"
    save(face(128), src / "[v2] ok.png")
    (src / "[bold] bad.png").write_text("not a picture")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "[red] out")
    assert result.exit_code == 1
    assert f"failed: {src / '[bold] bad.png'}: not an image file" in result.stderr
    assert f"→ {tmp_path / '[red] out'}" in result.stderr
    assert files(tmp_path / "[red] out") == ["[v2] ok.png"]


def test_output_must_be_a_folder(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    target = tmp_path / "result.png"
    target.write_bytes(b"keep")
    result = deblur(tiny_checkpoint, src, "-o", target)
    assert "is a file, not a folder" in assert_clean_error(result, 2)
    assert "using backend" not in result.output and target.read_bytes() == b"keep"


def test_inference_errors_fail_the_batch_on_one_line(tmp_path, tiny_checkpoint, monkeypatch):
    from umsn_cli.api import Restorer

    def out_of_memory(self, images):
        raise RuntimeError("DefaultCPUAllocator: not enough memory:\nyou tried to allocate")

    monkeypatch.setattr(Restorer, "deblur_batch", out_of_memory)
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face(128), src / "b.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--batch-size", "2")
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2
    assert all("not enough memory: you tried" in f and "--batch-size 1" in f for f in failed)
    assert "0 done, 2 failed" in result.stderr
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []


def _nan_weights(tmp_path: Path, tiny_config) -> Path:
    from umsn_cli.nn import build_model
    from umsn_cli.weights import save_checkpoint

    model = build_model(tiny_config)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    return save_checkpoint(tmp_path / "nan.pt", model, {"note": "damaged"})


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc, which root cannot write")
def test_an_unwritable_output_folder_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    from umsn_cli.restorer import Restorer

    monkeypatch.setattr(Restorer, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    src = save(face(128), tmp_path / "a.png")
    result = deblur(tmp_path / "any.pt", src, "-o", "/proc/umsn-out")
    message = assert_clean_error(result, 2)
    assert "cannot write there" in message and "choose another output folder" in message


@pytest.mark.parametrize("recursive", [[], ["-r"]])
def test_a_symlink_loop_fails_alone(tmp_path, tiny_checkpoint, recursive):
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    (src / "b.jpg").symlink_to("c.jpg")
    (src / "c.jpg").symlink_to("b.jpg")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", *recursive)
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and all("a link that cannot be followed" in f for f in failed)
    assert files(tmp_path / "out") == ["a.png"]


def test_print0_ends_each_written_path_in_nul_and_line_breaks_are_flagged(
    tmp_path, tiny_checkpoint
):
    src = tmp_path / "in"
    save(face(128), src / "line\nbreak.png")
    save(face(128), src / "plain.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "a", "--print0")
    assert result.exit_code == 0, result.output
    written = result.stdout_bytes.split(b"\0")
    assert written[-1] == b"" and len(written) == 3
    assert {Path(os.fsdecode(w)).name for w in written[:2]} == {"line\nbreak.png", "plain.png"}
    plain = deblur(tiny_checkpoint, src, "-o", tmp_path / "b")
    assert "1 file name(s) hold a line break: read them with --print0" in plain.stderr


def test_weights_that_give_nan_are_refused_at_load(tmp_path, tiny_config):
    src = save(face(128), tmp_path / "in" / "a.png")
    result = deblur(_nan_weights(tmp_path, tiny_config), src, "-o", tmp_path / "out")
    message = assert_clean_error(result)
    assert "nan.pt" in message and "non-finite" in message and "umsn weights verify" in message
    assert not (tmp_path / "out").exists() or files(tmp_path / "out") == []


def test_non_finite_output_fails_its_files_and_no_black_crop_is_written(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """Output that turns non-finite after loading fails its batch's files, not the run."""
    from umsn_cli.backends.cpu import CPUBackend

    calls = []
    original = CPUBackend.deblur

    def nan_on_second_batch(self, images):
        restored, probs = original(self, images)
        calls.append(len(images))
        # Call 1 is the self-check at load; call 2 is the first file.
        return (restored * float("nan"), probs) if len(calls) == 2 else (restored, probs)

    monkeypatch.setattr(CPUBackend, "deblur", nan_on_second_batch)
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        save(face(128), src / f"{name}.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--batch-size", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "non-finite" in failed[0]
    assert "2 done, 1 failed" in result.stderr
    assert len(files(tmp_path / "out")) == 2


# --- usage errors, backends, weights -----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--precision", "fp8"], "'fp8' is not one of 'auto', 'fp32', 'bf16', 'fp16'"),
        (["--device", "gpu0"], "'gpu0' is not a torch device"),
        (["--ext", "gif"], "--ext gif"),
        (["--ext", "xyz"], "--ext xyz"),
        (["--suffix", "a/b"], "path separator"),
        (["-v", "-q"], "--verbose and --quiet contradict each other"),
        (["--precision", "fp16"], "--precision fp16 is for GPUs"),
        (["--backend", "cpu", "--remeasure"], "--remeasure times the backends for --backend"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(tmp_path, tiny_checkpoint, args, needle):
    src = save(face(128), tmp_path / "a.png")
    result = run("deblur", src, "-o", tmp_path / "out", "--model", tiny_checkpoint, *args)
    assert needle in assert_clean_error(result, 2)
    assert "using backend" not in result.output  # refused before the model was loaded
    assert not (tmp_path / "out").exists()


def test_cli_usage_errors(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    missing = deblur(tiny_checkpoint, tmp_path / "nope.png", "-o", tmp_path / "out")
    assert "no such file or directory" in assert_clean_error(missing, 2)

    zero = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--batch-size", "0")
    assert zero.exit_code == 2 and "Traceback" not in zero.output

    no_output = deblur(tiny_checkpoint, src)
    assert no_output.exit_code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_unavailable_backend_is_an_error_not_a_fallback(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", backend="cuda")
    message = assert_clean_error(result)
    assert "'cuda'" in message and "--backend" in message
    assert "using backend" not in result.output
    assert not (tmp_path / "out").exists()


def test_backend_auto_says_what_it_chose(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", backend="auto")
    assert result.exit_code == 0, result.output
    match = INFO_LINE.search(result.stderr)
    assert match is not None, result.stderr
    assert "using backend" not in result.stdout
    name, device, dtype = match.groups()
    assert name in {"cpu", "torchscript", "cuda"} and device and dtype
    assert pixels(tmp_path / "out" / "a.png").shape == (128, 128, 3)


def test_backend_auto_times_the_backends_for_a_big_job_once(tmp_path, tiny_checkpoint):
    """A job of many faces times eager against TorchScript and remembers the winner; -v
    says which and why; a one-face job then takes the answer without timing."""
    from umsn_cli.backends.measure import MEASURE_FROM
    from umsn_cli.paths import choices_file

    for i in range(MEASURE_FROM):
        save(face(128), tmp_path / "in" / f"f{i:02d}.png")
    first = deblur(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "o1", "-v", backend="auto")
    assert first.exit_code == 0, first.output
    (line,) = [x for x in first.stderr.splitlines() if x.startswith("backend: ")]
    assert "measured now" in line and "cpu" in line and "torchscript" in line
    (entry,) = json.loads(choices_file().read_text()).values()
    assert entry["backend"] in INFO_LINE.search(first.stderr).group(1)
    one = deblur(tiny_checkpoint, tmp_path / "in" / "f00.png", "-o", tmp_path / "o2", "-v",
                 backend="auto")  # fmt: skip
    assert one.exit_code == 0 and "backend: measured before" in one.stderr


def test_torchscript_matches_eager(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face(192), src / "b.png")
    fp32 = ("--precision", "fp32")  # exactness is an fp32 promise; auto may pick bf16
    eager = deblur(tiny_checkpoint, src, "-o", tmp_path / "cpu", *fp32)
    traced = deblur(tiny_checkpoint, src, "-o", tmp_path / "ts", *fp32, backend="torchscript")
    assert eager.exit_code == 0 and traced.exit_code == 0, traced.output
    assert "using backend=torchscript device=cpu" in traced.stderr
    for name in ("a.png", "b.png"):
        a = pixels(tmp_path / "cpu" / name).astype(int)
        b = pixels(tmp_path / "ts" / name).astype(int)
        assert np.abs(a - b).max() <= 1


def test_batch_size_does_not_change_results(tmp_path, tiny_checkpoint):
    rng = np.random.default_rng(7)
    src = tmp_path / "in"
    for i in range(4):
        blurred = np.asarray(face(128)).astype(np.int16) + rng.integers(-20, 21, (128, 128, 3))
        save(Image.fromarray(np.clip(blurred, 0, 255).astype(np.uint8)), src / f"f{i}.png")
    save(face(160), src / "f4.png")

    one = deblur(tiny_checkpoint, src, "-o", tmp_path / "b1", "--batch-size", "1", "--save-masks")
    three = deblur(tiny_checkpoint, src, "-o", tmp_path / "b3", "--batch-size", "3", "--save-masks")
    assert one.exit_code == 0 and three.exit_code == 0, three.output
    assert files(tmp_path / "b1") == files(tmp_path / "b3")
    for name in files(tmp_path / "b1"):
        a = pixels(tmp_path / "b1" / name).astype(int)
        b = pixels(tmp_path / "b3" / name).astype(int)
        # oneDNN picks other kernels for other batch sizes: the float results differ by
        # ~5e-7, which can move a sample across a rounding boundary, never further.
        assert np.abs(a - b).max() <= 1, name
        assert np.mean(a != b) < 1e-3, name


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "load_manifest", lambda: Manifest(()))
    src = save(face(128), tmp_path / "x.png")

    result = run("deblur", src, "-o", tmp_path / "out")
    message = assert_clean_error(result)
    assert "umsn weights import" in message or "--model" in message
    assert not (tmp_path / "out").exists()

    debug = run("--debug", "deblur", src, "-o", tmp_path / "out")
    assert debug.exit_code == result.exit_code
    assert "Traceback" in debug.output


# --- the built-in example (README quick start) --------------------------------------------------


def test_example_is_restored_with_its_comparison(tmp_path, tiny_checkpoint):
    result = deblur(tiny_checkpoint, "--example", "-o", tmp_path / "out", "--side-by-side")
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "out") == ["astronaut_blurred.png", "astronaut_blurred_compare.png"]
    restored = pixels(tmp_path / "out" / "astronaut_blurred.png")
    assert restored.shape == (128, 128, 3)
    compare = pixels(tmp_path / "out" / "astronaut_blurred_compare.png")
    assert compare.shape == (128, 2 * 128 + 4, 3)


def test_example_is_a_blurred_face():
    from umsn_cli.examples import example_blurry, example_face, motion_kernel

    sharp, blurry = example_face(), example_blurry()
    assert sharp.shape == blurry.shape == (128, 128, 3)
    kernel = motion_kernel()
    assert kernel.min() >= 0 and abs(kernel.sum() - 1) < 1e-6
    # Blur removes high frequencies: the blurry image has much less gradient energy.
    energy = lambda im: np.abs(np.diff(im, axis=0)).mean() + np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
    assert energy(blurry) < 0.7 * energy(sharp)
    # ... but the same colours (unit-sum kernel, replicated borders: nothing darkens).
    assert abs(blurry.mean() - sharp.mean()) < 2e-3


def test_quick_start_without_weights_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "load_manifest", lambda: Manifest(()))
    result = run("deblur", "--example", "-o", tmp_path / "out", "--side-by-side")
    message = assert_clean_error(result)
    assert "umsn weights import" in message and "--model FILE" in message


def test_no_inputs_at_all_is_a_usage_error(tmp_path, tiny_checkpoint):
    result = deblur(tiny_checkpoint, "-o", tmp_path / "out")
    assert "--example" in assert_clean_error(result, 2)


def test_torchscript_needs_no_cache_folder(tmp_path, tiny_checkpoint, monkeypatch):
    """The graph is compiled in memory: an unusable cache folder costs nothing."""
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("UMSN_CACHE", str(not_a_folder))
    source = save(face(), tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, source, "-o", out, backend="torchscript")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr and not_a_folder.read_text() == ""
    assert files(out) == ["a.png"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "no-such-weights"], "unknown model"),
        (["--backend", "cuda"], "cannot run here"),
        (["--backend", "torchscript", "--device", "cuda:7"], "cannot run here"),
    ],
)
def test_impossible_models_backends_and_devices_are_usage_errors(tmp_path, args, needle):
    """Exit 2, one line naming the fix, never "reinstall umsn"."""
    source = save(face(), tmp_path / "a.png")
    result = run("deblur", source, "-o", tmp_path / "out", *args)
    message = assert_clean_error(result, 2)
    assert needle in message and "reinstall" not in message


def test_sigterm_stops_cleanly_with_143_and_leaves_no_partial_files(tmp_path, tiny_checkpoint):
    """A scheduler's stop is handled like Ctrl-C: temp files removed, one line, exit 143."""
    import signal
    import subprocess
    import sys
    import time

    inputs = tmp_path / "in"
    for i in range(300):
        save(face(256), inputs / f"f{i:03d}.png")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "umsn_cli", "deblur", str(inputs), "-o", str(out),
         "--model", str(tiny_checkpoint), "--backend", "cpu", "--batch-size", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert not leftovers(out)
    assert len(files(out)) < 300  # it stopped part-way


def test_a_missing_path_fails_alone_and_the_batch_goes_on(tmp_path, tiny_checkpoint):
    good = save(face(), tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, tmp_path / "typo.png", good, "-o", out)
    assert result.exit_code == 1, result.output
    assert "typo.png: no such file or directory" in result.stderr
    assert files(out) == ["a.png"]
    only_missing = deblur(tiny_checkpoint, tmp_path / "typo.png", "-o", tmp_path / "o2")
    assert_clean_error(only_missing, 2)


def _exif_photo(path: Path, orientation: int = 1) -> Path:
    """A JPEG with EXIF (camera model, orientation), DPI and 4:2:0 chroma, like a camera's."""
    image = face((200, 160))
    exif = Image.Exif()
    exif[0x0110] = "umsn test camera"  # Model
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=80, subsampling=2, exif=exif.tobytes(), dpi=(300, 300))
    return path


def test_a_photo_without_faces_is_copied_byte_for_byte(tmp_path, tiny_checkpoint):
    wall = tmp_path / "in" / "wall.jpg"
    wall.parent.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(wall, quality=85)
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, wall, "-o", out, "--mode", "photo")
    assert result.exit_code == 0, result.output
    assert (out / "wall.jpg").read_bytes() == wall.read_bytes()


def test_rewritten_jpegs_keep_exif_dpi_and_the_source_quantisation(tmp_path, tiny_checkpoint):
    source = _exif_photo(tmp_path / "in" / "cam.jpg", orientation=6)  # stored turned
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, source, "-o", out, "--mode", "aligned")
    assert result.exit_code == 0, result.output
    with Image.open(source) as before, Image.open(out / "cam.jpg") as after:
        assert after.getexif()[0x0110] == "umsn test camera"
        assert after.getexif().get(0x0112, 1) == 1  # written upright: orientation reset
        assert after.size == before.size[::-1]
        assert after.info["dpi"] == pytest.approx((300, 300))
        assert after.quantization == before.quantization
        from PIL import JpegImagePlugin

        assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before)


def test_ext_that_drops_alpha_or_16_bits_says_so(tmp_path, tiny_checkpoint):
    rgba = save(face(mode="RGBA"), tmp_path / "in" / "a.png")
    deep = tmp_path / "in" / "b.png"
    import png as pypng

    pixels = (np.asarray(face(), dtype=np.uint16) * 257).reshape(128, -1)
    with deep.open("wb") as fh:
        pypng.Writer(128, 128, greyscale=False, bitdepth=16).write(fh, pixels)
    result = deblur(tiny_checkpoint, rgba, deep, "-o", tmp_path / "out", "--ext", "jpg", "-v")
    assert result.exit_code == 0, result.output
    assert "a.png: .jpg has no alpha channel" in result.stderr
    assert "b.png: .jpg holds 8 bits per channel" in result.stderr
    quiet = deblur(tiny_checkpoint, rgba, "-o", tmp_path / "out2", "-v")  # PNG keeps both
    assert "no alpha channel" not in quiet.stderr


def test_skip_existing_resumes_an_interrupted_batch(tmp_path, tiny_checkpoint):
    inputs = [save(face(), tmp_path / "in" / f"f{i}.png") for i in range(3)]
    out = tmp_path / "out"
    assert deblur(tiny_checkpoint, inputs[0], "-o", out).exit_code == 0
    done_before = (out / "f0.png").read_bytes()
    (out / ".f1.png.abcd.tmp.png").write_bytes(b"half")  # a killed run's leftover
    again = deblur(tiny_checkpoint, tmp_path / "in", "-o", out, "--skip-existing")
    assert again.exit_code == 0, again.output
    assert "2 done, 0 failed, 1 skipped (already done)" in again.stderr
    assert (out / "f0.png").read_bytes() == done_before
    assert {"f0.png", "f1.png", "f2.png"} <= set(files(out))
    plain = deblur(tiny_checkpoint, tmp_path / "in", "-o", out)
    assert plain.exit_code == 1  # without the flag, an existing output is a failure
    both = deblur(tiny_checkpoint, inputs[0], "-o", out, "--skip-existing", "--overwrite")
    assert_clean_error(both, 2)


def test_skip_existing_skips_only_outputs_that_decode(tmp_path, tiny_checkpoint):
    inputs = [save(face(), tmp_path / "in" / f"f{i}.png") for i in range(2)]
    out = tmp_path / "out"
    assert deblur(tiny_checkpoint, inputs[0], "-o", out).exit_code == 0
    (out / "f1.png").write_bytes(b"")  # a name alone: no finished output
    again = deblur(tiny_checkpoint, tmp_path / "in", "-o", out, "--skip-existing")
    assert again.exit_code == 1
    failed = [line for line in again.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "f1.png exists but does not decode" in failed[0]
    assert "0 done, 1 failed, 1 skipped" in again.stderr
    assert (out / "f1.png").read_bytes() == b""  # left for the user to look at


def test_shards_split_a_batch_without_overlap(tmp_path, tiny_checkpoint):
    for i in range(7):
        save(face(), tmp_path / "in" / f"f{i}.png")
    seen = []
    for k in (1, 2, 3):
        out = tmp_path / f"out{k}"
        result = deblur(tiny_checkpoint, tmp_path / "in", "-o", out, "--shard", f"{k}/3")
        assert result.exit_code == 0, result.output
        seen += files(out)
    assert sorted(seen) == [f"f{i}.png" for i in range(7)]
    for bad in ("0/3", "4/3", "a/b", "3"):
        result = deblur(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "x", "--shard", bad)
        assert "--shard" in assert_clean_error(result, 2)


def test_piped_stdout_lists_the_files_written_and_quiet_silences_the_rest(
    tmp_path, tiny_checkpoint
):
    a = save(face(), tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, a, "-o", out, "--side-by-side", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(out / "a.png"), str(out / "a_compare.png")]
    assert result.stderr == ""  # -q: no summary, no backend line
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"no image")
    failed = deblur(tiny_checkpoint, broken, a, "-o", tmp_path / "o2", "-q")
    assert failed.exit_code == 1 and "broken.png" in failed.stderr


def test_help_shows_flags_as_flags_and_offers_completion():
    for command in (["deblur", "--help"], ["weights", "list", "--help"], ["--help"]):
        result = run(*command)
        assert result.exit_code == 0
        assert "<bool>" not in result.output
    top = run("--help").output
    assert "--install-completion" in top
    assert "--overwrite " in run("deblur", "--help").output


def test_stdin_to_stdout_pipes_one_image(tmp_path, tiny_checkpoint):
    import io as _io

    source = save(face(), tmp_path / "a.jpg", quality=90)
    data = source.read_bytes()
    result = CliRunner().invoke(
        app,
        ["deblur", "-", "-o", "-", "--model", str(tiny_checkpoint), "--backend", "cpu"],
        input=data,
    )
    assert result.exit_code == 0, result.stderr
    with Image.open(_io.BytesIO(result.stdout_bytes)) as out:
        assert out.format == "JPEG" and out.size == (128, 128)
    assert "deblur: 1 done" in result.stderr
    from_file = run("deblur", source, "-o", "-", "--model", tiny_checkpoint, "--ext", "png")
    assert from_file.stdout_bytes.startswith(b"\x89PNG")
    empty = CliRunner().invoke(app, ["deblur", "-", "-o", tmp_path / "o"], input=b"")
    assert "standard input is empty" in assert_clean_error(empty, 2)
    many = run("deblur", source, source, "-o", "-")
    assert "exactly one input" in assert_clean_error(many, 2)
    extra = run("deblur", source, "-o", "-", "--side-by-side")
    assert_clean_error(extra, 2)


def test_same_stem_different_types_are_both_restored(tmp_path, tiny_checkpoint):
    src = tmp_path / "in"
    save(face(128), src / "a.png")
    save(face(128), src / "a.jpg", quality=90)
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, src, "-o", out)
    assert result.exit_code == 0, result.output
    assert files(out) == ["a.jpg", "a.png"]
    forced = deblur(tiny_checkpoint, src, "-o", tmp_path / "o2", "--ext", "png")
    assert "would both be written" in assert_clean_error(forced, 2)


def test_a_bug_in_inference_is_not_reported_as_a_memory_problem(
    tmp_path, tiny_checkpoint, monkeypatch
):
    from umsn_cli.api import Restorer

    def bug(self, images):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x2 and 3x4)")

    monkeypatch.setattr(Restorer, "deblur_batch", bug)
    save(face(128), tmp_path / "in" / "a.png")
    result = deblur(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "out")
    assert result.exit_code != 0
    assert "--batch-size 1" not in result.output
    assert isinstance(result.exception, RuntimeError)  # surfaces as the bug it is


def test_flip_ensemble_is_the_apis(tmp_path, tiny_checkpoint):
    from umsn_cli.api import deblur as api_deblur
    from umsn_cli.api import load_restorer

    src = save(face(128), tmp_path / "a.png")
    result = run("deblur", src, "-o", tmp_path / "o", "--model", tiny_checkpoint, "-b", "cpu",
                 "--flip-ensemble")  # fmt: skip
    assert result.exit_code == 0, result.output
    load_restorer.cache_clear()
    ensemble = api_deblur(face(128), model=str(tiny_checkpoint), backend="cpu", flip_ensemble=True)
    single = api_deblur(face(128), model=str(tiny_checkpoint), backend="cpu")
    assert np.array_equal(pixels(tmp_path / "o" / "a.png"), ensemble)
    assert not np.array_equal(ensemble, single)
