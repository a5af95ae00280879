"""``--strength``: how much of the network's correction each face gets, judged per face."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import face, pixels, save
from PIL import Image
from test_cli_deblur import assert_clean_error, deblur

from umsn_cli import restorer as restorer_module
from umsn_cli.blur import blur_image, random_kernels
from umsn_cli.errors import UsageError
from umsn_cli.images import from_array
from umsn_cli.restorer import Restorer
from umsn_cli.strength import (
    BLURRED_RATIO,
    SHARP_RATIO,
    SHARP_STRENGTH,
    auto_strength,
    blend,
    detail_ratio,
    parse_strength,
)


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]


def test_the_detail_ratio_tells_a_blurred_input_from_a_sharp_one():
    sharp = np.asarray(face(128), dtype=np.float32) / 255
    blurred = blur_image(sharp, random_kernels([13], seed=1)[0]).astype(np.float32)
    softened = blur_image(sharp, np.full((3, 3), 1 / 9)).astype(np.float32)
    # A network that sharpens a blurred face, or leaves a sharp one as it was / softer.
    restored_blur = detail_ratio(_tensor(blurred), _tensor(sharp))
    untouched = detail_ratio(_tensor(sharp), _tensor(sharp))
    smoothed = detail_ratio(_tensor(sharp), _tensor(softened))
    assert float(restored_blur) < BLURRED_RATIO
    assert float(untouched) == pytest.approx(1.0)
    assert float(smoothed) > SHARP_RATIO
    both = detail_ratio(torch.cat([_tensor(blurred), _tensor(sharp)]),
                        torch.cat([_tensor(sharp), _tensor(sharp)]))  # fmt: skip
    assert both.shape == (2,) and float(both[0]) == pytest.approx(float(restored_blur), rel=1e-5)


def test_the_default_model_measures_the_blur_in_pixels():
    """The blur extent of a face the fit never saw (the astronaut, noise σ 0.01) grows
    with the kernel and lands within half of it, in px of the image as given."""
    from umsn_cli.blur import add_noise

    restorer = Restorer.load("bnet-fast-xl", backend="cpu", offline=True)
    sharp = np.asarray(face(128), dtype=np.float32) / 255
    sizes = [1, 5, 9, 13, 21, 29]
    generator = torch.Generator().manual_seed(0)
    images = []
    for size in sizes:
        blurred = sharp if size == 1 else blur_image(sharp, random_kernels([size], seed=3)[0])
        noisy = add_noise(torch.from_numpy(np.ascontiguousarray(blurred)), 0.01, generator)
        images.append(from_array(noisy.numpy()))
    measured = [r.blur_px for r in restorer.deblur_batch(images)]
    assert measured == sorted(measured), measured
    assert measured[0] < 2
    for size, px in zip(sizes[1:], measured[1:], strict=True):
        assert size / 2 < px < size * 1.5, (size, px)


def test_auto_strength_gives_blurred_faces_everything_and_sharp_ones_a_little():
    ratios = torch.tensor([0.2, BLURRED_RATIO, (BLURRED_RATIO + SHARP_RATIO) / 2, SHARP_RATIO, 1.5])
    strength = auto_strength(ratios).tolist()
    assert strength[:2] == [1.0, 1.0]
    assert strength[2] == pytest.approx((1 + SHARP_STRENGTH) / 2)
    assert strength[3:] == pytest.approx([SHARP_STRENGTH, SHARP_STRENGTH])


def test_blend_takes_each_image_its_share_of_the_change():
    before, after = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mixed = blend(before, after, torch.tensor([0.0, 0.25]))
    assert float(mixed[0].max()) == 0.0 and torch.allclose(mixed[1], torch.full((3, 4, 4), 0.25))


@pytest.mark.parametrize("value", ["2", "-0.1", "strong", "nan"])
def test_strength_is_auto_or_a_number_from_0_to_1(value):
    assert parse_strength("auto") is None and parse_strength("0.5") == 0.5
    assert parse_strength("0") == 0.0 and parse_strength("1") == 1.0
    with pytest.raises(UsageError, match="auto or a number from 0 to 1"):
        parse_strength(value)


def test_strength_0_gives_the_input_back_and_1_the_network_output(tiny_checkpoint):
    image = from_array(np.asarray(face(128), dtype=np.float32) / 255)
    none = Restorer.load(str(tiny_checkpoint), backend="cpu", strength=0.0)
    full = Restorer.load(str(tiny_checkpoint), backend="cpu", strength=1.0)
    kept = none.deblur_batch([image])[0]
    np.testing.assert_allclose(kept.rgb, image.rgb, atol=1e-6)
    assert kept.strength == 0.0
    network, _ = full.backend.deblur(_tensor(image.rgb))
    expected = network[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(full.deblur_batch([image])[0].rgb, expected, atol=1e-5)


def test_skip_sharp_leaves_a_face_judged_sharp_as_it_was(tmp_path, tiny_checkpoint, monkeypatch):
    """The judgement is the network's: a random tiny one cannot make it, so it is set."""
    monkeypatch.setattr(restorer_module, "judge", lambda before, after: (torch.ones(1),) * 2)
    src = save(face(128), tmp_path / "in" / "a.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--skip-sharp", "-v")
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(tmp_path / "out" / "a.png"), pixels(src))
    assert "detail ratio 1.00 (sharp), blur about 1 px: strength 0.00" in result.stderr
    assert "1 face(s) judged sharp left as they were" in result.stderr
    # Without --skip-sharp the same face gets the sharp faces' share of the correction.
    auto = deblur(tiny_checkpoint, src, "-o", tmp_path / "auto", "-v")
    assert f"strength {SHARP_STRENGTH:.2f}" in auto.stderr and "judged sharp" not in auto.stderr


def test_a_strength_out_of_range_is_refused_before_the_model_loads(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    message = assert_clean_error(deblur(tiny_checkpoint, src, "-o", tmp_path / "o",
                                        "--strength", "1.5"), 2)  # fmt: skip
    assert "--strength 1.5: give auto or a number from 0 to 1" in message
    assert not (tmp_path / "o").exists()


def test_the_report_says_which_face_was_judged_what(tmp_path, tiny_checkpoint, monkeypatch):
    """--report: per file (crops and photos) the faces, their judgement and strength."""
    from photo_helpers import paste_face, scene

    # The crop blurred by 10 px of the network's 128² (20 px of its 256² file); the
    # photo's face sharp, 1 px of the network's crop; a spare.
    judged = iter([(0.3, 10.0), (1.0, 1.0), (0.3, 10.0)])
    monkeypatch.setattr(
        restorer_module,
        "judge",
        lambda before, after: tuple(torch.tensor([v]) for v in next(judged)),
    )
    save(face(256), tmp_path / "in" / "crop.png")
    photo = paste_face(scene(), 200, 100, 160)
    save(Image.fromarray((photo * 255).astype(np.uint8)), tmp_path / "in" / "photo.png")
    result = deblur(tiny_checkpoint, tmp_path / "in", "-o", tmp_path / "out",
                    "--report", tmp_path / "r" / "report.json", "--batch-size", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["strength"] == "auto" and report["failed"] == []
    files = {Path(f["file"]).name: f for f in report["files"]}
    assert files["crop.png"]["mode"] == "aligned"
    assert files["crop.png"]["faces"] == [
        {"box": None, "detail_ratio": 0.3, "judged": "blurred", "blur_px": 20.0, "strength": 1.0}
    ]
    (seen,) = files["photo.png"]["faces"]
    assert files["photo.png"]["mode"] == "photo" and seen["judged"] == "sharp"
    assert seen["strength"] == pytest.approx(SHARP_STRENGTH, abs=1e-4)
    assert 150 < seen["box"][0] < 260
    # The detected face is about 70 px wide in the photo and about 100 px in the 128²
    # crop: 1 px of the crop is about 0.7 px of the photo, where the report counts.
    assert 0.5 < seen["blur_px"] < 0.9


def test_a_report_in_a_folder_that_cannot_be_written_is_refused_first(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    message = assert_clean_error(deblur(tiny_checkpoint, src, "-o", tmp_path / "o",
                                        "--report", blocker / "r.json"), 2)  # fmt: skip
    assert "file" in message
    assert not (tmp_path / "o").exists()
