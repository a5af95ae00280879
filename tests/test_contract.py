"""The input contract travels with the weights: a model trained at another size or
framing is followed by deblur, photo mode and the benchmark with no code change."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import face, save
from photo_helpers import paste_face, scene
from PIL import Image
from test_cli_deblur import run

from umsn_cli.api import Restorer
from umsn_cli.contract import CANONICAL_LANDMARKS, InputContract
from umsn_cli.nn import ModelConfig, build_model
from umsn_cli.weights import load_checkpoint, save_checkpoint

#: Another size, and a looser framing: the landmarks drawn 10 % towards the centre.
OTHER = InputContract(
    size=96, landmarks=tuple((0.5 + 0.9 * (x - 0.5), 0.5 + 0.9 * (y - 0.5))
                             for x, y in CANONICAL_LANDMARKS))  # fmt: skip


@pytest.fixture
def other_checkpoint(tmp_path: Path, tiny_config: ModelConfig) -> Path:
    torch.manual_seed(0)
    model = build_model(replace(tiny_config, input=OTHER))
    return save_checkpoint(tmp_path / "other.pt", model)


def test_the_contract_is_saved_in_the_checkpoint(other_checkpoint, tiny_config):
    model, _ = load_checkpoint(other_checkpoint)
    assert model.config.input == OTHER and model.config.input_size == 96


def test_checkpoints_from_before_the_contract_load_with_the_canonical_one(tiny_config):
    data = tiny_config.to_dict()
    data.pop("input")
    data["input_size"] = 128
    assert ModelConfig.from_dict(json.loads(json.dumps(data))).input == InputContract()


def test_a_contract_refuses_what_this_umsn_cannot_feed():
    with pytest.raises(ValueError, match="value range"):
        InputContract(value_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="landmarks"):
        InputContract(landmarks=((0.5, 0.5),))


def test_deblur_of_aligned_crops_follows_the_size(tmp_path, other_checkpoint):
    save(face(96), tmp_path / "in" / "a.png")
    save(face(128), tmp_path / "in" / "b.png")
    result = run("deblur", tmp_path / "in", "-o", tmp_path / "out", "--model",
                 other_checkpoint, "--backend", "cpu", "--mode", "aligned", "-v")  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "b.png: 128×128 is not the model's 96×96" in output
    assert "a.png: 96×96" not in output  # the model's own size: no resize
    with Image.open(tmp_path / "out" / "a.png") as restored:
        assert restored.size == (96, 96)


def test_photo_mode_aligns_faces_to_the_contracts_landmarks(other_checkpoint):
    from umsn_cli.photo.pipeline import restore_photo

    restorer = Restorer.load(str(other_checkpoint), backend="cpu")
    assert restorer.contract == OTHER
    result = restore_photo(paste_face(scene(), 300, 100, 160), restorer)
    (restored,) = result.faces
    alignment = restored.alignment
    assert alignment.size >= 96
    landmarks = restored.face.landmarks
    mapped = landmarks @ alignment.matrix[:, :2].T + alignment.matrix[:, 2]
    expected = OTHER.template * alignment.size / OTHER.size
    canonical = InputContract().template * alignment.size / 128
    # The fit is least squares over 5 points: near the contract's places, not the default's.
    assert np.abs(mapped - expected).mean() < np.abs(mapped - canonical).mean()
    assert np.abs(mapped - expected).mean() < 0.05 * alignment.size


def test_the_benchmark_frames_faces_at_the_models_size(tmp_path, other_checkpoint, monkeypatch):
    from umsn_cli.benchmark import quality

    shapes = []
    score = quality.score

    def spy(test, *args, **kwargs):
        pairs = list(test.pairs)
        shapes.extend(p.sharp.shape for p in pairs)
        test.pairs = iter(pairs)
        return score(test, *args, **kwargs)

    monkeypatch.setattr(quality, "score", spy)
    save(face(128), tmp_path / "faces" / "a.png")
    result = run("benchmark", "--dataset", tmp_path / "faces", "--per-size", "1", "--model",
                 other_checkpoint, "--backend", "cpu", "--json", tmp_path / "r.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert shapes and all(s[:2] == (96, 96) for s in shapes), shapes[:1]


def test_a_manifest_entry_must_describe_the_checkpoints_contract(
    tmp_path, other_checkpoint, make_entry, monkeypatch
):
    """The manifest's input copy is checked against the checkpoint it names."""
    from umsn_cli.errors import WeightsError
    from umsn_cli.weights import store
    from umsn_cli.weights.manifest import InputSpec, Manifest

    body = other_checkpoint.read_bytes()
    monkeypatch.setenv("UMSN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "weights").mkdir(parents=True)
    (tmp_path / "cache" / "weights" / "umsn-lite.test-v1.pt").write_bytes(body)
    wrong = make_entry(body)  # says 128×128, the checkpoint was trained at 96×96
    monkeypatch.setattr(store, "load_manifest", lambda: Manifest((wrong,)))
    with pytest.raises(WeightsError, match="manifest says the weights take 128×128"):
        store.load_model("umsn-lite.test-v1", offline=True)
    right = make_entry(body, input=InputSpec((96, 96), OTHER.describe(), (0.0, 1.0)))
    monkeypatch.setattr(store, "load_manifest", lambda: Manifest((right,)))
    model, sha256 = store.load_model("umsn-lite.test-v1", offline=True)
    assert model.config.input == OTHER and sha256 == right.sha256
