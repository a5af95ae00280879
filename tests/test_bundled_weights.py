"""The weights bundled in the package: the default, and they really restore a face.

These tests load the real bundled checkpoint, so they skip (with the reason) in a
checkout whose manifest has no bundled default yet.
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import files, pixels
from typer.testing import CliRunner

from umsn_cli.cli import app
from umsn_cli.examples import example_blurry, example_face
from umsn_cli.metrics import psnr
from umsn_cli.weights import store
from umsn_cli.weights.manifest import DEFAULT_MODEL, load_manifest


def _bundled_default():
    for entry in load_manifest().for_config(DEFAULT_MODEL):
        path = store.bundled_path(entry)
        if entry.default and path is not None and path.is_file():
            return entry
    return None


DEFAULT = _bundled_default()
pytestmark = pytest.mark.skipif(DEFAULT is None, reason=f"no bundled {DEFAULT_MODEL} weights")


def test_the_bundled_weights_are_what_the_default_model_means():
    assert load_manifest().get(DEFAULT_MODEL) == DEFAULT
    assert DEFAULT.task == "deblur" and "non-commercial" in DEFAULT.data_terms
    assert DEFAULT.metrics, "the manifest must say how good the weights are"


def test_every_bundled_file_is_listed_and_all_together_fit_45_mb():
    """The package carries its weights: they must stay small enough to install anywhere
    (the maintainers' budget, 45 MB: the default, the paper's method, the small ones)."""
    listed = {store.bundled_path(e) for e in load_manifest().entries if e.bundled}
    shipped = set(store.bundled_path(DEFAULT).parent.glob("*.pt"))
    assert shipped == listed  # a retired file is removed, not left behind
    assert sum(p.stat().st_size for p in shipped) <= 45 * 10**6


def test_quick_start_restores_the_example_face(tmp_path):
    """The README quick start, offline, with no --model: the face comes back sharper."""
    result = CliRunner().invoke(
        app, ["deblur", "--example", "-o", str(tmp_path / "out"), "--side-by-side", "--offline"]
    )
    assert result.exit_code == 0, result.output
    assert files(tmp_path / "out") == ["astronaut_blurred.png", "astronaut_blurred_compare.png"]
    restored = pixels(tmp_path / "out" / "astronaut_blurred.png").astype(np.float32) / 255
    sharp, blurry = example_face(), example_blurry()
    assert psnr(restored, sharp) > psnr(blurry, sharp) + 1.0


def test_segment_finds_the_face_in_the_example(tmp_path):
    result = CliRunner().invoke(app, ["segment", "--example", "-o", str(tmp_path), "--offline"])
    assert result.exit_code == 0, result.output
    labels = pixels(tmp_path / "astronaut_blurred_labels.png")
    centre = labels[40:90, 40:90]  # the middle of the face: skin and features, no background
    assert np.mean((centre == 1) | (centre == 2)) > 0.8


def test_a_blurred_face_in_a_photo_comes_back_closer_to_the_sharp_one():
    from photo_helpers import paste_face, scene

    from umsn_cli.api import Restorer
    from umsn_cli.blur import blur_image
    from umsn_cli.examples import motion_kernel
    from umsn_cli.photo.pipeline import restore_photo

    sharp = paste_face(scene(640, 480), 240, 120, 200)
    blurry = sharp.copy()
    region = (slice(100, 340), slice(220, 460))
    blurry[region] = blur_image(sharp[region], motion_kernel(11, 30.0)).clip(0, 1)
    result = restore_photo(blurry, Restorer.load(offline=True))
    assert len(result.faces) == 1
    face = (slice(150, 300), slice(270, 420))
    assert psnr(result.rgb[face], sharp[face]) > psnr(blurry[face], sharp[face])
    assert np.array_equal(result.rgb[:, :150], blurry[:, :150])  # far from the face


def test_the_default_judges_the_sharp_example_sharp_and_the_blurred_one_blurred():
    """--strength auto with the real weights: the blurred example gets the whole
    correction, the sharp face only the sharp faces' share, and comes back closer to
    itself than at strength 1."""
    from umsn_cli.images import from_array
    from umsn_cli.restorer import Restorer
    from umsn_cli.strength import SHARP_STRENGTH

    sharp, blurry = example_face(), example_blurry()
    auto = Restorer.load(DEFAULT.id, backend="cpu", offline=True)
    full = Restorer.load(DEFAULT.id, backend="cpu", offline=True, strength=1.0)
    kept, restored = auto.deblur_batch([from_array(sharp), from_array(blurry)])
    assert kept.sharp and kept.strength == pytest.approx(SHARP_STRENGTH)
    assert not restored.sharp and restored.strength == 1.0
    softened = full.deblur_batch([from_array(sharp)])[0]
    assert psnr(kept.rgb, sharp) > psnr(softened.rgb, sharp) + 1.0
