"""Training the ``fast`` family, with prepared extra faces, the real blur mix, roll-back."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_train import FAST, log_lines, make_dataset, ok, train

from umsn_cli.errors import UsageError
from umsn_cli.train import loop


@pytest.fixture(autouse=True)
def _tiny_fast_model(monkeypatch: pytest.MonkeyPatch, tiny_fast_config) -> None:
    from umsn_cli.nn.config import CONFIGS

    monkeypatch.setitem(CONFIGS, "test-tiny-fast", tiny_fast_config)


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


FAST_MODEL = [*FAST, "--arch", "test-tiny-fast"]


def test_fast_family_trains_every_stage_and_exports(tmp_path, dataset):
    from umsn_cli.weights.checkpoint import load_checkpoint

    common = ["--data", dataset["data"], "--masks", dataset["masks"], "--steps", "2", *FAST_MODEL]
    ok(train("snet", *common, "--out", tmp_path / "snet"))
    ok(train("fnet", *common, "--class", "3", "--out", tmp_path / "fnet3"))
    out = tmp_path / "umsn"
    result = train(
        "umsn", *common, "--val-data", dataset["val"], "--snet", tmp_path / "snet" / "last.pt",
        "--out", out, "--export", tmp_path / "w.pt", "--degradation", "real",
    )  # fmt: skip
    ok(result)
    (val,) = [line for line in log_lines(out) if line["kind"] == "val" and line["step"] == 2]
    assert math.isfinite(val["psnr"]) and math.isfinite(val["psnr_aligned_blurry"])
    model, meta = load_checkpoint(tmp_path / "w.pt")
    assert model.config.family == "fast" and meta["training"]["degradation"] == "real"


def test_prepared_faces_join_training(tmp_path, dataset, monkeypatch):
    """--extra-data adds faces to the sampler, not to the hold-out."""
    import numpy as np
    from PIL import Image

    extra = tmp_path / "wild"
    (extra / "images").mkdir(parents=True)
    (extra / "masks").mkdir()
    for i in range(3):
        Image.fromarray(np.full((160, 160, 3), 40 * i, np.uint8)).save(
            extra / "images" / f"w{i}.png"
        )
        Image.fromarray(np.full((160, 160), 13, np.uint8)).save(extra / "masks" / f"w{i}.png")
    (extra / "prepare.json").write_text(json.dumps({"crop": 0.8}))
    seen = {}
    real_sampler = loop.Sampler

    def spy(faces, *args, **kwargs):
        seen["stems"] = list(faces.stems)
        return real_sampler(faces, *args, **kwargs)

    monkeypatch.setattr(loop, "Sampler", spy)
    out = tmp_path / "s"
    ok(train("snet", "--data", dataset["data"], "--masks", dataset["masks"], "--extra-data",
             extra, "--steps", "1", "--out", out, *FAST_MODEL))  # fmt: skip
    assert {"w0", "w1", "w2"} <= set(seen["stems"])
    assert len(seen["stems"]) == 6 - 2 + 3  # 2 held out of the labelled faces
    missing = train(
        "snet",
        "--data",
        dataset["data"],
        "--masks",
        dataset["masks"],
        "--extra-data",
        tmp_path,
        "--steps",
        "1",
        "--out",
        tmp_path / "x",
        *FAST_MODEL,
    )
    assert missing.exit_code == 2 and "prepare.json" in missing.output


def test_a_spike_rolls_back_to_the_last_checkpoint(tmp_path, dataset, monkeypatch):
    calls = {"n": 0}
    real = loop.SpikeGuard.is_bad

    def spiky(self, value):
        calls["n"] += 1
        return True if calls["n"] == 4 else real(self, value)  # step 4 "diverges"

    monkeypatch.setattr(loop.SpikeGuard, "is_bad", spiky)
    out = tmp_path / "s"
    ok(train("snet", "--data", dataset["data"], "--masks", dataset["masks"], "--steps", "5",
             "--out", out, *FAST_MODEL))  # fmt: skip
    lines = log_lines(out)
    (rollback,) = [line for line in lines if line["kind"] == "rollback"]
    assert rollback["step"] == 2 and rollback["at_step"] == 4
    steps = [line["step"] for line in lines if line["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5]  # step 3 is trained again; no step is logged twice
    lrs = {line["step"]: line["lr"] for line in lines if line["kind"] == "train"}
    from umsn_cli.train.config import TrainConfig

    cfg = TrainConfig.from_file(out / "config.json")
    assert lrs[2] == pytest.approx(loop.learning_rate(cfg, 1))
    assert lrs[3] == pytest.approx(loop.learning_rate(cfg, 2) / 2)  # halved after it
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 5


def test_nan_without_a_checkpoint_is_one_clear_error(tmp_path, dataset, monkeypatch):
    monkeypatch.setattr(loop.SpikeGuard, "is_bad", lambda self, value: True)
    result = train("snet", "--data", dataset["data"], "--masks", dataset["masks"], "--steps",
                   "3", "--out", tmp_path / "s", *FAST_MODEL)  # fmt: skip
    assert result.exit_code == 1
    assert "diverged at step 1" in result.output and "--lr" in result.output


def test_spike_guard():
    guard = loop.SpikeGuard()
    assert guard.is_bad(float("nan"))
    for _ in range(guard.settle):
        assert not guard.is_bad(1.0)
    assert not guard.is_bad(3.0)
    assert guard.is_bad(10.0)
    guard.reset()  # a roll-back keeps the reference: diverging again is caught at once
    assert guard.is_bad(10.0) and guard.rollbacks == 1


def test_grad_clip_logs_the_norm(tmp_path, dataset):
    out = tmp_path / "s"
    ok(train("snet", "--data", dataset["data"], "--masks", dataset["masks"], "--steps", "2",
             "--grad-clip", "0.5", "--out", out, *FAST_MODEL))  # fmt: skip
    norms = [line["grad_norm"] for line in log_lines(out) if line["kind"] == "train"]
    assert len(norms) == 2 and all(n > 0 for n in norms)


def test_a_bnet_run_exports_with_its_snet_as_bnet_fast(tmp_path, dataset, monkeypatch):
    """The plain B-Net ships as bnet-<family>: its generator ignores masks, S-Net stays."""
    import dataclasses

    from umsn_cli.nn.config import CONFIGS, plain
    from umsn_cli.weights.checkpoint import load_checkpoint

    monkeypatch.setitem(CONFIGS, "bnet-test-tiny-fast", plain(CONFIGS["test-tiny-fast"]))
    common = ["--data", dataset["data"], "--masks", dataset["masks"], "--steps", "2", *FAST_MODEL]
    ok(train("snet", *common, "--out", tmp_path / "snet"))
    out = tmp_path / "b"
    ok(train("bnet", *common, "--val-data", dataset["val"], "--out", out))
    refused = train("bnet", *common, "--val-data", dataset["val"], "--out", out, "--resume",
                    "--export", tmp_path / "w.pt")  # fmt: skip
    assert refused.exit_code == 2 and "--snet" in refused.output
    ok(train("bnet", *common, "--val-data", dataset["val"], "--out", out, "--resume",
             "--snet", tmp_path / "snet" / "last.pt", "--export", tmp_path / "w.pt"))  # fmt: skip
    model, _ = load_checkpoint(tmp_path / "w.pt")
    assert model.config == dataclasses.replace(
        CONFIGS["test-tiny-fast"], name="bnet-test-tiny-fast", guided=False
    )
    snet = torch.load(tmp_path / "snet" / "last.pt", weights_only=True)["stage"]
    for k, v in model.snet.state_dict().items():  # shipped as float16: its rounding
        torch.testing.assert_close(v, snet[f"snet.{k}"], rtol=1e-3, atol=1e-5)
    stored = torch.load(tmp_path / "w.pt", weights_only=True)["state_dict"]
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    entry = json.loads((tmp_path / "w.json").read_text())
    assert entry["id"] == "bnet-test-tiny-fast.celebamask-v1"


def test_a_checkpoint_of_another_format_version_is_refused(tmp_path, dataset):
    out = tmp_path / "s"
    common = ["--data", dataset["data"], "--masks", dataset["masks"], *FAST_MODEL]
    ok(train("snet", *common, "--steps", "2", "--out", out))
    state = torch.load(out / "last.pt", weights_only=True)
    state["format_version"] = 99
    torch.save(state, out / "last.pt")
    result = train("snet", *common, "--steps", "4", "--out", out, "--resume")
    assert result.exit_code == 1 and "format_version 99" in result.output


def _deeper(config):
    """``config`` with twice the residual blocks at every B-Net level, a NAFNet block
    after them in the body and a level below the body."""
    from dataclasses import replace

    blocks = tuple(2 * b for b in config.bnet.blocks)
    bnet = replace(config.bnet, blocks=blocks, naf=(0, 0, 1), deep=1)
    return replace(config, name="test-tiny-fast-deep", bnet=bnet)


def test_a_deeper_model_grown_from_a_run_computes_what_the_run_did(tiny_fast_config):
    """--init into more blocks and a deeper level: they start as the identity, nothing
    else changes."""
    from umsn_cli.nn import build_model
    from umsn_cli.train.checkpoint import load_stage_weights

    torch.manual_seed(0)
    shallow = build_model(tiny_fast_config).eval()
    with torch.no_grad():
        for p in shallow.parameters():  # trained-looking weights: no block is the identity
            p.add_(0.1 * torch.randn_like(p))
    deep = build_model(_deeper(tiny_fast_config)).eval()
    load_stage_weights(deep, shallow.state_dict(), "shallow.pt", grow=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(deep(x)[0], shallow(x)[0])
    assert not torch.equal(deep(x)[0], x)  # the comparison is not of two identities

    with pytest.raises(UsageError, match="do not fit"):  # resuming never grows
        load_stage_weights(deep, shallow.state_dict(), "shallow.pt")
    damaged = "generator.bnet.body.0.conv2.bias"
    partial = {k: v for k, v in shallow.state_dict().items() if k != damaged}
    with pytest.raises(UsageError, match=rf"missing \['{damaged}'\]"):
        load_stage_weights(deep, partial, "damaged.pt", grow=True)
    grown = deep.state_dict()
    half_deep = {k: v for k, v in grown.items() if not k.startswith("generator.bnet.deep.2.")}
    with pytest.raises(UsageError, match=r"generator\.bnet\.deep\.2"):
        load_stage_weights(deep, half_deep, "damaged.pt", grow=True)


def test_umsn_grown_from_a_plain_bnet_computes_what_the_bnet_did(tiny_fast_config):
    """--init of the umsn stage from a plain B-Net: the streams join at zero contribution."""
    from umsn_cli.nn import build_model
    from umsn_cli.nn.config import plain
    from umsn_cli.train.checkpoint import load_stage_weights

    torch.manual_seed(0)
    bnet = build_model(plain(tiny_fast_config)).eval()
    with torch.no_grad():
        for p in bnet.parameters():  # trained-looking weights: no block is the identity
            p.add_(0.1 * torch.randn_like(p))
    umsn = build_model(tiny_fast_config).eval()
    load_stage_weights(umsn, bnet.state_dict(), "bnet.pt", grow=True)
    x, masks = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32)
    restored = umsn.generator(x, masks)[0]
    torch.testing.assert_close(restored, bnet.generator(x)[0])
    assert not torch.allclose(restored, x)  # the comparison is not of two identities
    # The streams are live: the output's gradient reaches their fusion weights.
    restored.square().sum().backward()
    width = tiny_fast_config.bnet.widths[1]
    assert umsn.generator.bnet.fuse.weight.grad[:, width:].abs().sum() > 0

    with pytest.raises(UsageError, match="do not fit"):  # resuming never grows
        load_stage_weights(build_model(tiny_fast_config), bnet.state_dict(), "bnet.pt")


def test_the_umsn_stage_starts_from_a_bnet_run(tmp_path, dataset):
    common = ["--data", dataset["data"], "--masks", dataset["masks"], "--steps", "1", *FAST_MODEL]
    ok(train("snet", *common, "--out", tmp_path / "snet"))
    ok(train("bnet", *common, "--out", tmp_path / "bnet"))
    ok(train("umsn", *common, "--out", tmp_path / "umsn", "--init", tmp_path / "bnet" / "last.pt",
             "--snet", tmp_path / "snet" / "last.pt", "--lr", "0", "--min-lr", "0"))  # fmt: skip
    stage = torch.load(tmp_path / "umsn" / "last.pt", weights_only=True)["stage"]
    stem = stage["generator.bnet.stem.1.weight"]
    assert stem.shape[1] == 4 * 7 and not stem[:, 12:].any()  # the masks start unheard
    assert any(key.startswith("generator.fnets.3.") for key in stage)


def test_init_trains_a_deeper_model_from_a_shallower_run(
    tmp_path, dataset, monkeypatch, tiny_fast_config
):
    from umsn_cli.nn.config import CONFIGS

    monkeypatch.setitem(CONFIGS, "test-tiny-fast-deep", _deeper(tiny_fast_config))
    common = ["--data", dataset["data"], "--masks", dataset["masks"], "--steps", "1", *FAST]
    ok(train("bnet", *common, "--arch", "test-tiny-fast", "--out", tmp_path / "small"))
    result = train("bnet", *common, "--arch", "test-tiny-fast-deep", "--out", tmp_path / "deep",
                   "--init", tmp_path / "small" / "last.pt")  # fmt: skip
    ok(result)
    state = torch.load(tmp_path / "deep" / "last.pt", weights_only=True)
    assert any(".body.1." in key for key in state["stage"])  # the grown block is saved


def test_export_stores_int8_and_a_run_starts_from_it(tmp_path, dataset, monkeypatch):
    """--storage int8 quarters the shipped weights; the file still loads and seeds runs."""
    from umsn_cli.nn.config import CONFIGS, plain
    from umsn_cli.weights.checkpoint import load_checkpoint

    monkeypatch.setitem(CONFIGS, "bnet-test-tiny-fast", plain(CONFIGS["test-tiny-fast"]))
    common = ["--data", dataset["data"], "--masks", dataset["masks"], *FAST_MODEL]
    ok(train("snet", *common, "--steps", "2", "--out", tmp_path / "snet"))
    snet = ["--snet", tmp_path / "snet" / "last.pt"]
    ok(train("bnet", *common, "--steps", "2", "--out", tmp_path / "b", *snet,
             "--export", tmp_path / "w16.pt"))  # fmt: skip
    # --resume at the run's last step exports without training on.
    ok(train("bnet", "--out", tmp_path / "b", "--resume", "--steps", "2", *snet,
             "--export", tmp_path / "w8.pt", "--storage", "int8"))  # fmt: skip
    stored = torch.load(tmp_path / "w8.pt", weights_only=True)
    assert stored["meta"]["storage"] == "int8" and stored["format_version"] == 2
    assert stored["state_dict"]["generator.bnet.body.0.conv1.weight"].dtype == torch.int8
    entry = json.loads((tmp_path / "w8.json").read_text())
    assert entry["size"] == (tmp_path / "w8.pt").stat().st_size
    assert entry["size"] < (tmp_path / "w16.pt").stat().st_size
    int8, _ = load_checkpoint(tmp_path / "w8.pt")
    half, _ = load_checkpoint(tmp_path / "w16.pt")
    for k, v in half.generator.state_dict().items():
        torch.testing.assert_close(int8.generator.state_dict()[k], v, atol=0.01, rtol=0.02)

    # lr 0: a run started from the int8 file holds its dequantised weights.
    ok(train("bnet", *common, "--steps", "1", "--lr", "0", "--min-lr", "0", "--out",
             tmp_path / "again", "--init", tmp_path / "w8.pt", *snet))  # fmt: skip
    state = torch.load(tmp_path / "again" / "last.pt", weights_only=True)["stage"]
    for k, v in int8.generator.state_dict().items():
        assert torch.equal(state[f"generator.{k}"], v), k

    result = train("bnet", "--out", tmp_path / "b", "--resume", "--steps", "2", *snet,
                   "--export", tmp_path / "w4.pt", "--storage", "int4")  # fmt: skip
    assert result.exit_code != 0 and "int4" in result.output
    assert not (tmp_path / "w4.pt").exists()


def test_a_run_starts_from_exported_weights(tmp_path, dataset, monkeypatch):
    """--init and --snet take an exported weights file (e.g. the bundled default), so a
    run whose folder is lost goes on from the weights that shipped."""
    from umsn_cli.nn.config import CONFIGS, plain
    from umsn_cli.weights.checkpoint import load_checkpoint

    monkeypatch.setitem(CONFIGS, "bnet-test-tiny-fast", plain(CONFIGS["test-tiny-fast"]))
    common = ["--data", dataset["data"], "--masks", dataset["masks"], *FAST_MODEL]
    ok(train("snet", *common, "--steps", "2", "--out", tmp_path / "snet"))
    ok(
        train(
            "bnet",
            *common,
            "--steps",
            "2",
            "--val-data",
            dataset["val"],
            "--out",
            tmp_path / "b",
            "--snet",
            tmp_path / "snet",
            "--export",
            tmp_path / "w.pt",
        )
    )  # fmt: skip  (a run folder: its last.pt)
    shipped, _ = load_checkpoint(tmp_path / "w.pt")

    # lr 0: the new run's weights stay what it started from.
    ok(train("bnet", *common, "--steps", "1", "--lr", "0", "--min-lr", "0", "--out",
             tmp_path / "again", "--init", tmp_path / "w.pt", "--snet", tmp_path / "w.pt",
             "--export", tmp_path / "w2.pt"))  # fmt: skip
    state = torch.load(tmp_path / "again" / "last.pt", weights_only=True)["stage"]
    for k, v in shipped.generator.state_dict().items():
        assert torch.equal(state[f"generator.{k}"], v.float()), k
    again, _ = load_checkpoint(tmp_path / "w2.pt")  # its S-Net came from the export
    for k, v in shipped.snet.state_dict().items():
        assert torch.equal(again.snet.state_dict()[k], v), k

    junk = tmp_path / "junk.pt"
    torch.save({"format": "something else"}, junk)
    result = train("bnet", *common, "--steps", "1", "--out", tmp_path / "j", "--init", junk)
    assert result.exit_code == 1 and "exported weights" in result.output
    assert "Traceback" not in result.output


def test_weights_to_start_from_are_named_as_model_names_them(tmp_path):
    """--init, --snet and --fnet take a run folder, a file, or what --model takes (a
    weights id or config name), so recipes need no file dug out of git history."""
    from umsn_cli.errors import UnknownWeightsError
    from umsn_cli.train.checkpoint import weights_file
    from umsn_cli.weights.manifest import load_manifest
    from umsn_cli.weights.store import bundled_path

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UsageError, match="without a run's last"):
        weights_file(run)
    (run / "last.pt").write_bytes(b"x")
    assert weights_file(run) == run / "last.pt"
    assert weights_file(str(run / "last.pt")) == run / "last.pt"
    default = load_manifest().get("bnet-fast-xl")
    assert weights_file("bnet-fast-xl") == weights_file(default.id) == bundled_path(default)
    with pytest.raises(UnknownWeightsError, match="bnet-fast-xl"):
        weights_file("bnet-fast-xxl")
