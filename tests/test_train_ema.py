"""The weight average: what it averages, that validation and --export use it, resume."""

from __future__ import annotations

import pytest
import torch
from test_train import FAST, log_lines, make_dataset, ok, train
from torch import nn

from umsn_cli.train.ema import WeightAverage


@pytest.fixture(autouse=True)
def _tiny_fast_model(monkeypatch: pytest.MonkeyPatch, tiny_fast_config) -> None:
    from umsn_cli.nn.config import CONFIGS, plain

    monkeypatch.setitem(CONFIGS, "test-tiny-fast", tiny_fast_config)
    monkeypatch.setitem(CONFIGS, "bnet-test-tiny-fast", plain(tiny_fast_config))


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path / "data")


def test_the_average_follows_the_weights_and_swaps_in_and_out():
    layer = nn.Linear(3, 2)
    frozen = nn.Linear(3, 1).requires_grad_(False)
    module = nn.ModuleDict({"layer": layer, "frozen": frozen})
    average = WeightAverage(module, decay=0.5)
    assert average.names == ["layer.weight", "layer.bias"]  # trainable parameters only
    start = layer.weight.detach().clone()
    with torch.no_grad():
        layer.weight.add_(1.0)
    average.update()  # warm-up decay min(0.5, 1/10): mostly the new weights
    expected = start + 1.0 * (1 - 0.1)
    torch.testing.assert_close(average.average[0], expected)
    for _ in range(200):
        average.update()
    torch.testing.assert_close(average.average[0], layer.weight.detach())  # converges

    with torch.no_grad():
        layer.weight.add_(5.0)
    raw = layer.weight.detach().clone()
    with average.applied():
        torch.testing.assert_close(layer.weight.detach(), raw - 5.0)
    assert torch.equal(layer.weight.detach(), raw)  # the raw weights are back

    saved = average.state_dict()
    again = WeightAverage(module, decay=0.5)
    again.load_state_dict(saved)
    assert again.updates == 201 and torch.equal(again.average[0], average.average[0])
    with pytest.raises(ValueError, match="does not fit"):
        WeightAverage(nn.Linear(2, 2), 0.5).load_state_dict(saved)


def test_validation_and_export_use_the_average(tmp_path, dataset):
    from umsn_cli.train.checkpoint import validated_weights
    from umsn_cli.weights.checkpoint import load_checkpoint

    common = ["--data", dataset["data"], "--masks", dataset["masks"], *FAST,
              "--arch", "test-tiny-fast", "--lr", "3e-3", "--warmup", "1"]  # fmt: skip
    ok(train("snet", *common, "--steps", "2", "--out", tmp_path / "snet"))
    out = tmp_path / "b"
    ok(train("bnet", *common, "--steps", "6", "--ema", "0.9", "--val-data", dataset["val"],
             "--out", out, "--snet", tmp_path / "snet" / "last.pt",
             "--export", tmp_path / "w.pt"))  # fmt: skip
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["ema"]["updates"] == 6 and state["ema"]["decay"] == 0.9
    name = next(k for k in state["ema"]["weights"] if k.startswith("generator."))
    raw, averaged = state["stage"][name], state["ema"]["weights"][name]
    assert not torch.allclose(raw, averaged)  # six steps at a high rate: they differ
    assert torch.equal(validated_weights(state)[name], averaged)
    model, _ = load_checkpoint(tmp_path / "w.pt")
    shipped = model.state_dict()[name]  # the same names: generator.…
    torch.testing.assert_close(shipped, averaged, rtol=1e-3, atol=1e-4)  # float16 storage
    assert any(line.get("note", "").startswith("validating the weight average")
               for line in log_lines(out))  # fmt: skip


def test_a_run_without_an_average_resumes_with_one(tmp_path, dataset):
    common = ["--data", dataset["data"], "--masks", dataset["masks"], *FAST,
              "--arch", "test-tiny-fast"]  # fmt: skip
    out = tmp_path / "s"
    ok(train("snet", *common, "--steps", "2", "--ema", "0", "--out", out))
    assert "ema" not in torch.load(out / "last.pt", weights_only=True)
    ok(train("snet", "--out", out, "--resume", "--steps", "4", "--ema", "0.99"))
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["ema"]["updates"] == 2 and state["config"]["ema"] == 0.99

    # A checkpoint written before umsn had the setting resumes with its default.
    del state["config"]["ema"], state["ema"]
    torch.save(state, out / "last.pt")
    ok(train("snet", "--out", out, "--resume", "--steps", "6"))
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["ema"]["updates"] == 2 and state["config"]["ema"] == 0.999
    bad = train("snet", *common, "--steps", "2", "--ema", "1", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "--ema" in bad.output
