"""Identity distance with dlib's face-recognition embeddings (the optional ``[eval]`` extra).

The face is the public-domain astronaut portrait (Eileen Collins) shipped with
scikit-image, cropped square around the face as an aligned crop would be.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

from umsn_cli.benchmark import identity
from umsn_cli.benchmark.identity import (
    SAME_PERSON_THRESHOLD,
    IdentityEmbedder,
    identity_unavailable_reason,
)
from umsn_cli.errors import MissingExtraError

_REASON = identity_unavailable_reason()
needs_dlib = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


def _crop(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """A square crop resized to 128×128 (the test faces' size), float in [0, 1]."""
    crop = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(crop.resize((128, 128), Image.BICUBIC), np.float64) / 255


def _blurred(rgb: np.ndarray, radius: float) -> np.ndarray:
    image = Image.fromarray((rgb * 255).round().astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), np.float64) / 255


@pytest.fixture(scope="module")
def embedder() -> IdentityEmbedder:
    return IdentityEmbedder()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return _crop(data.astronaut(), 41, 140, 160)


def test_missing_models_give_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        identity.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_recognition_models" else real(name, *a),
    )
    # A stand-in dlib, so that the models are what is missing even where dlib is too.
    monkeypatch.setitem(sys.modules, "dlib", types.ModuleType("dlib"))
    reason = identity_unavailable_reason()
    assert reason is not None and "umsn[eval]" in reason and "face-recognition-models" in reason
    assert "\n" not in reason
    with pytest.raises(MissingExtraError, match=r"umsn\[eval\]"):
        IdentityEmbedder()


def test_missing_dlib_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    reason = identity_unavailable_reason()
    assert reason is not None and "dlib" in reason and "umsn[eval]" in reason


@needs_dlib
def test_the_astronaut_face_is_detected(embedder: IdentityEmbedder, face: np.ndarray) -> None:
    left, top, right, bottom = embedder.face_box(face)
    assert left < 64 < right and top < 64 < bottom
    assert embedder.face_box(face) != embedder.face_box(np.full_like(face, 0.5))


@needs_dlib
def test_without_a_detection_the_box_is_central(embedder: IdentityEmbedder) -> None:
    assert embedder.face_box(np.full((128, 96, 3), 0.5)) == (19, 35, 76, 92)


@needs_dlib
def test_embedding_is_a_128_d_float64_vector(embedder: IdentityEmbedder, face: np.ndarray) -> None:
    vector = embedder.embed(face)
    assert vector.shape == (128,) and vector.dtype == np.float64
    assert np.all(np.isfinite(vector)) and np.linalg.norm(vector) > 0.1


@needs_dlib
def test_distance_orders_noise_blur_and_another_face(
    embedder: IdentityEmbedder, face: np.ndarray
) -> None:
    noisy = np.clip(face + np.random.default_rng(0).normal(0, 0.02, face.shape), 0, 1)
    cat = _crop(data.chelsea(), 50, 170, 180)

    same = embedder.distance(face, face)
    slight = embedder.distance(noisy, face)
    heavy = embedder.distance(_blurred(face, 3), face)
    other = embedder.distance(cat, face)

    assert same < 1e-6
    assert 0 < slight < 0.3
    assert heavy > 2 * slight
    assert other > SAME_PERSON_THRESHOLD and other > heavy


@needs_dlib
def test_distance_uses_the_sharp_face_box_for_both_once(
    face: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = IdentityEmbedder()
    boxes: list[tuple[int, int, int, int]] = []
    real = embedder.face_box

    def face_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
        boxes.append(real(rgb))
        return boxes[-1]

    monkeypatch.setattr(embedder, "face_box", face_box)
    # A restored image with no face in it is still scored on the sharp face's box.
    first = embedder.distance(np.full_like(face, 0.5), face)
    assert boxes == [real(face)]
    # The sharp face's box and descriptor are reused for its other blurry copies.
    assert embedder.distance(np.full_like(face, 0.5), face.copy()) == first
    assert embedder.distance(face, face) < 1e-6
    assert len(boxes) == 1


@needs_dlib
def test_distance_refuses_images_of_different_sizes(
    embedder: IdentityEmbedder, face: np.ndarray
) -> None:
    with pytest.raises(ValueError, match="differ in size"):
        embedder.distance(face[:64], face)
