"""Aligned-face mode: into the model at 128², back out at the source's size and detail."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from umsn_cli.aligned import probs_at_source_size, restored_at_source_size, to_model_input


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A float32 H×W×3 image in [0, 1] with fine detail (noise) on a smooth ramp."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.2, 0.8, width, dtype=np.float32)[None, :, None]
    noise = rng.uniform(-0.15, 0.15, (height, width, 3)).astype(np.float32)
    return np.clip(ramp + noise, 0, 1).astype(np.float32)


def test_model_input_at_model_size():
    same = photo(128, 128)
    x = to_model_input(same, 128)
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(same).permute(2, 0, 1))  # no resampling at 128²
    for height, width in ((256, 256), (90, 200)):
        y = to_model_input(photo(height, width), 128)
        assert y.shape == (3, 128, 128) and y.min() >= 0 and y.max() <= 1


def test_at_model_size_the_result_is_the_model_output():
    rgb = photo(128, 128)
    restored = torch.rand(3, 128, 128)
    out = restored_at_source_size(restored, to_model_input(rgb, 128), rgb)
    assert out.shape == (128, 128, 3)
    assert np.array_equal(out, restored.permute(1, 2, 0).numpy())


@pytest.mark.parametrize(("height", "width"), [(256, 256), (300, 200), (100, 100)])
def test_no_change_by_the_model_gives_the_source_back(height, width):
    rgb = photo(height, width)
    model_input = to_model_input(rgb, 128)
    out = restored_at_source_size(model_input, model_input, rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert np.array_equal(out, rgb)  # the source's own detail is kept, bit for bit


def test_the_models_change_is_added_to_the_source():
    rgb = photo(256, 256)
    model_input = to_model_input(rgb, 128)
    out = restored_at_source_size(model_input + 0.05, model_input, rgb)
    np.testing.assert_allclose(out, np.clip(rgb + 0.05, 0, 1), atol=1e-5)
    # Not the upsampled 128² image: the fine (noise) detail of the source survives.
    upsampled = torch.nn.functional.interpolate(
        (model_input + 0.05)[None], size=(256, 256), mode="bicubic", align_corners=False
    )[0].permute(1, 2, 0)
    assert np.abs(out - upsampled.clamp(0, 1).numpy()).mean() > 0.03


def test_read_only_sources_are_neither_changed_nor_warned_about():
    grey = np.broadcast_to(photo(200, 200)[..., :1], (200, 200, 3))  # as grey images are read
    assert not grey.flags.writeable
    before = grey.copy()
    model_input = to_model_input(grey, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = restored_at_source_size(torch.zeros_like(model_input), model_input, grey)
    assert out.shape == (200, 200, 3) and out.min() >= 0
    assert np.array_equal(grey, before)


def test_probabilities_at_source_size():
    probs = torch.rand(4, 128, 128)
    same = probs_at_source_size(probs, 128, 128)
    assert same.dtype == np.float32 and np.array_equal(same, probs.numpy())
    for height, width in ((256, 256), (150, 90)):
        out = probs_at_source_size(probs, height, width)
        assert out.shape == (4, height, width) and out.dtype == np.float32
        assert out.min() >= 0.0 and out.max() <= 1.0
    flat = probs_at_source_size(torch.full((4, 128, 128), 0.25), 300, 170)
    np.testing.assert_allclose(flat, 0.25, atol=1e-6)
