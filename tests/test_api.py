"""The Python API: results come back in the caller's type, size, channels and dtype."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from umsn_cli import Restorer, deblur, load_restorer, segment
from umsn_cli.api import Restored
from umsn_cli.cli import app
from umsn_cli.errors import BackendUnavailableError, UsageError, WeightsError


@pytest.fixture(autouse=True)
def _fresh_restorers():
    """``load_restorer`` caches by model path; every test's checkpoint is a new file."""
    load_restorer.cache_clear()
    yield
    load_restorer.cache_clear()


@pytest.fixture
def model(tiny_checkpoint) -> dict[str, str]:
    return {"model": str(tiny_checkpoint), "backend": "cpu"}


def face(size: int | tuple[int, int] = 128) -> np.ndarray:
    width, height = (size, size) if isinstance(size, int) else size
    crop = Image.fromarray(data.astronaut()[20:236, 156:372])
    return np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS))


@pytest.mark.parametrize("size", [(128, 128), (200, 150)])
def test_uint8_rgb_in_uint8_rgb_out(model, size):
    image = face(size)
    out = deblur(image, **model)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.array_equal(out, image)  # the (random) model did something


def test_float_in_float_out(model):
    image = face(128).astype(np.float32) / 255
    out = deblur(image, **model)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Same result as the uint8 path, before the 8-bit rounding.
    as_bytes = deblur(face(128), **model)
    assert np.abs(np.rint(out * 255) - as_bytes).max() <= 1


def test_grey_array_in_grey_array_out(model):
    grey = np.asarray(Image.fromarray(face((96, 80))).convert("L"))
    out = deblur(grey, **model)
    assert out.dtype == np.uint8 and out.shape == (80, 96)


def test_uint16_and_rgba_arrays_keep_depth_and_alpha(model):
    rgba = np.dstack([face(128), np.linspace(0, 255, 128 * 128).reshape(128, 128)]).astype(np.uint8)
    out = deblur(rgba, **model)
    assert out.shape == (128, 128, 4) and np.array_equal(out[..., 3], rgba[..., 3])
    deep = face(128).astype(np.uint16) * 257
    out16 = deblur(deep, **model)
    assert out16.dtype == np.uint16 and out16.shape == deep.shape


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_pil_in_pil_out(model, mode):
    image = Image.fromarray(face((144, 112))).convert(mode)
    out = deblur(image, **model)
    assert isinstance(out, Image.Image)
    assert out.size == image.size and out.mode == mode
    if mode == "RGBA":
        assert np.array_equal(np.asarray(out)[..., 3], np.asarray(image)[..., 3])


@pytest.mark.parametrize("shape", [(128, 128, 3), (90, 120, 3), (64, 48)])
def test_segment_returns_probabilities(model, shape):
    image = face((shape[1], shape[0]))
    if len(shape) == 2:
        image = np.asarray(Image.fromarray(image).convert("L"))
    probs = segment(image, **model)
    assert probs.shape == (4, *shape[:2]) and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0


def test_same_result_as_the_cli(tmp_path, tiny_checkpoint, model):
    image = face(160)
    Image.fromarray(image).save(tmp_path / "f.png")
    result = CliRunner().invoke(
        app,
        [
            *("deblur", str(tmp_path / "f.png"), "-o", str(tmp_path / "out")),
            *("--model", str(tiny_checkpoint), "--backend", "cpu"),
        ],
    )
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "f.png") as written:
        assert np.array_equal(np.asarray(written), deblur(image, **model))


def test_restorer_batches_and_cache(tiny_checkpoint, model):
    from umsn_cli.images import from_array

    restorer = Restorer.load(str(tiny_checkpoint), backend="cpu")
    assert restorer.input_size == 128 and str(restorer.info).startswith("backend=cpu")
    images = [from_array(face(128)), from_array(face((100, 140)))]
    results = restorer.deblur_batch(images)
    assert all(isinstance(r, Restored) for r in results)
    assert [r.rgb.shape for r in results] == [(128, 128, 3), (140, 100, 3)]
    assert [r.probs.shape for r in results] == [(4, 128, 128), (4, 140, 100)]
    seg = restorer.segment_batch(images)
    np.testing.assert_allclose(seg[1], results[1].probs, atol=1e-6)

    assert load_restorer(str(tiny_checkpoint), "cpu") is load_restorer(str(tiny_checkpoint), "cpu")


def test_bad_input_is_a_usage_error(model):
    with pytest.raises(UsageError, match="not an image"):
        deblur(np.zeros((8, 8, 2), dtype=np.uint8), **model)
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        deblur(np.full((8, 8, 3), 2.0, dtype=np.float32), **model)
    with pytest.raises(UsageError, match="dtype"):
        segment(np.zeros((8, 8, 3), dtype=np.int64), **model)


def test_bad_settings_are_refused_before_the_weights(tmp_path, tiny_checkpoint):
    missing = str(tmp_path / "missing.pt")
    with pytest.raises(WeightsError):
        Restorer.load(missing, backend="cpu")
    # Settings are checked first: no download, no model load, a typed error.
    with pytest.raises(UsageError, match="unknown backend"):
        Restorer.load(missing, backend="nope")
    with pytest.raises(UsageError, match="precision"):
        Restorer.load(missing, backend="cpu", precision="fp64")
    with pytest.raises(UsageError, match="torch device"):
        Restorer.load(missing, backend="cpu", device="tpu:zero")
    with pytest.raises(BackendUnavailableError, match="'cpu'"):
        Restorer.load(str(tiny_checkpoint), backend="cpu", device="meta")


def test_a_whole_photo_gets_photo_mode_like_the_cli(tmp_path, tiny_checkpoint, model):
    """deblur() on a photo finds, restores and pastes its faces, as `umsn deblur` does."""
    from photo_helpers import paste_face, scene

    from umsn_cli import restore

    photo = np.rint(paste_face(scene(), 200, 120, 200) * 255).astype(np.uint8)
    result = restore(photo, **model)
    assert result.mode == "photo" and len(result.faces) == 1
    left, top, _, _ = result.faces[0]
    assert 200 <= left < 300 and 120 <= top < 260
    assert result.image.shape == photo.shape
    source = tmp_path / "photo.png"
    Image.fromarray(photo).save(source)
    cli = CliRunner().invoke(app, ["deblur", str(source), "-o", str(tmp_path / "out"), *(
        "--model", model["model"], "--backend", "cpu")])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "photo.png")),
                                  result.image)  # fmt: skip
    crop = deblur(face(128), **model, mode="aligned")
    assert crop.shape == (128, 128, 3)
    with pytest.raises(UsageError, match="mode"):
        deblur(face(128), **model, mode="nope")


def test_the_flip_ensemble_averages_the_face_and_its_mirror(tiny_checkpoint, model):
    from umsn_cli.aligned import to_model_input
    from umsn_cli.images import from_array

    image = from_array(face(128))
    # strength 1: the whole correction, so the result is the networks' average itself.
    plain = Restorer.load(str(tiny_checkpoint), backend="cpu", strength=1.0)
    both = Restorer.load(str(tiny_checkpoint), backend="cpu", flip_ensemble=True, strength=1.0)
    x = to_model_input(image.rgb, 128)[None]
    restored, _ = plain.backend.deblur(x)
    mirrored, _ = plain.backend.deblur(x.flip(-1))
    expected = ((restored + mirrored.flip(-1)) / 2)[0].permute(1, 2, 0).numpy()
    result = both.deblur_batch([image])[0].rgb
    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert not np.allclose(result, plain.deblur_batch([image])[0].rgb, atol=1e-3)
    # The API and the CLI option reach the same Restorer setting.
    out = deblur(face(128), **model, flip_ensemble=True, strength=1)
    assert np.abs(out.astype(int) - np.rint(expected * 255)).max() <= 1
