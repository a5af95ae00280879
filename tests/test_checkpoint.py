"""The checkpoint format: exact round trips, and safe refusal of anything else."""

from __future__ import annotations

import hashlib
import pathlib
import pickle

import pytest
import torch

from umsn_cli.errors import WeightsError
from umsn_cli.nn import build_model
from umsn_cli.weights import load_checkpoint, save_checkpoint, sha256_file
from umsn_cli.weights.checkpoint import FORMAT, FORMAT_VERSION


def test_round_trip_gives_identical_outputs(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config).eval()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, {"epoch": 3, "note": "hi"})
    loaded, meta = load_checkpoint(path)
    assert meta == {"epoch": 3, "note": "hi"}
    assert loaded.config == tiny_config
    assert not loaded.training
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for expected, actual in zip(model(images), loaded(images), strict=True):
            assert torch.equal(expected, actual)
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temp file left


@pytest.mark.parametrize("storage", ["float16", "int8"])
def test_smaller_storage_loads_back_as_float32_close_to_the_original(
    tiny_config, tmp_path, storage
):
    torch.manual_seed(0)
    model = build_model(tiny_config).eval()
    full = save_checkpoint(tmp_path / "full.pt", model)
    small = save_checkpoint(tmp_path / f"{storage}.pt", model, storage=storage)
    stored = torch.load(small, weights_only=True)
    loaded, _ = load_checkpoint(small)

    # int8 files are format_version 2, so that an older umsn refuses rather than misloads them.
    assert stored["format_version"] == (2 if storage == "int8" else FORMAT_VERSION)
    assert small.stat().st_size < full.stat().st_size
    original, restored = model.state_dict(), loaded.state_dict()
    assert all(v.dtype == original[k].dtype for k, v in restored.items())
    for key, weight in original.items():
        if not weight.is_floating_point():
            continue
        if storage == "int8" and weight.dim() >= 2:
            assert stored["state_dict"][key].dtype == torch.int8
            # Each output channel is off by at most half of its own step (its max / 127).
            step = weight.abs().flatten(1).amax(dim=1) / 127
            error = (restored[key] - weight).abs().flatten(1).amax(dim=1)
            assert torch.all(error <= step / 2 + 1e-7), key
        else:
            assert stored["state_dict"][key].dtype == torch.float16
            torch.testing.assert_close(restored[key], weight.half().float())
    images = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)[0], model(images)[0], atol=0.02, rtol=0)


def test_an_int8_tensor_without_its_scale_or_a_stray_scale_is_refused(tiny_config, tmp_path):
    path = save_checkpoint(tmp_path / "q.pt", build_model(tiny_config), storage="int8")
    scale = next(
        k for k in torch.load(path, weights_only=True)["state_dict"] if k.endswith(":scale")
    )
    _resave(path, lambda d: d["state_dict"].pop(scale))
    with pytest.raises(WeightsError, match="int8 values and scales do not match"):
        load_checkpoint(path)  # int8 values would load unscaled without a word
    path = save_checkpoint(tmp_path / "q.pt", build_model(tiny_config), storage="int8")
    _resave(path, lambda d: d["state_dict"].update({"generator.nothing:scale": torch.ones(1)}))
    with pytest.raises(WeightsError, match=r"generator\.nothing: int8 values and scales"):
        load_checkpoint(path)
    path = save_checkpoint(tmp_path / "q.pt", build_model(tiny_config), storage="int8")
    _resave(path, lambda d: d["state_dict"].update({scale: "not a tensor"}))
    with pytest.raises(WeightsError, match="int8 values and scales do not match"):
        load_checkpoint(path)


def test_an_unknown_storage_is_refused(tiny_config, tmp_path):
    with pytest.raises(ValueError, match="storage must be one of"):
        save_checkpoint(tmp_path / "m.pt", build_model(tiny_config), storage="int4")
    assert not any(tmp_path.iterdir())


def test_save_replaces_an_existing_file(tiny_config, tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(b"old")
    save_checkpoint(path, build_model(tiny_config))
    load_checkpoint(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


class _RunsCode:
    """Unpickling this would create ``marker``: proof that code ran."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize(
    "write",
    [
        lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=2)),
        lambda obj, path: path.write_bytes(pickle.dumps(obj)),
        torch.save,
    ],
    ids=["pickle-protocol-2", "pickle-default", "torch.save"],
)
@pytest.mark.parametrize("reader", ["weights", "training checkpoint"])
def test_malicious_pickle_is_refused_as_code_not_as_damage(tmp_path, write, reader):
    from umsn_cli.train.checkpoint import read_train_state

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "meta": _RunsCode(marker)}
    write(payload, path)
    load = load_checkpoint if reader == "weights" else read_train_state
    with pytest.raises(WeightsError, match="holds Python code, not only weights") as info:
        load(path)
    message = str(info.value)
    assert "nothing in it ran" in message and "corrupt" not in message
    assert "weights_only" not in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"this is not a checkpoint" * 20, "corrupt or truncated"),
        (b"", "corrupt or truncated"),
    ],
)
def test_garbage_is_refused(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=match):
        load_checkpoint(path)


def test_truncated_checkpoint_is_refused(tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    tiny_checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_checkpoint(tiny_checkpoint)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def _resave(path: pathlib.Path, edit) -> None:
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(format="other"), "not a umsn checkpoint"),
        (lambda d: d.update(format_version=3), "format_version 3"),
        (lambda d: d.update(extra=1), "unexpected keys"),
        (lambda d: d["config"].update(bogus=1), "invalid model config"),
        (lambda d: d["state_dict"].popitem(), "do not fit"),
        (lambda d: d.update(state_dict=[1, 2]), "must be dicts"),
    ],
    ids=["format", "version", "extra-key", "config", "state-dict-keys", "state-dict-type"],
)
def test_malformed_checkpoints_are_refused(tiny_checkpoint, edit, match):
    _resave(tiny_checkpoint, edit)
    with pytest.raises(WeightsError, match=match) as info:
        load_checkpoint(tiny_checkpoint)
    assert "\n" not in str(info.value)


def test_plain_state_dict_is_refused(tiny_config, tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model(tiny_config).state_dict(), path)
    with pytest.raises(WeightsError, match="not a umsn checkpoint"):
        load_checkpoint(path)


def test_sha256_file_streams_the_whole_file(tmp_path):
    path = tmp_path / "f"
    data = bytes(range(256)) * 10_000  # several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
