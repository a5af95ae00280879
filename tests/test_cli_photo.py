"""``umsn deblur`` on whole photos: modes, per-face outputs, faces not found."""

from __future__ import annotations

import numpy as np
from cli_helpers import face, files, pixels, save
from photo_helpers import paste_face, scene
from PIL import Image
from test_cli_deblur import assert_clean_error, deblur


def save_photo(array: np.ndarray, path):
    return save(Image.fromarray(np.rint(array * 255).astype(np.uint8)), path)


def test_a_photo_is_restored_in_place_and_keeps_its_size(tmp_path, tiny_checkpoint):
    src = save_photo(paste_face(scene(), 300, 100, 160, angle=10), tmp_path / "p.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--verbose")
    assert result.exit_code == 0, result.output
    assert "treated as a photo (--mode auto)" in result.stderr
    assert "1 face(s) restored" in result.stderr
    before, after = pixels(src), pixels(tmp_path / "out" / "p.png")
    assert after.shape == before.shape
    assert np.array_equal(after[:, :200], before[:, :200])  # far from the face: untouched
    assert not np.array_equal(after, before)


def test_save_faces_and_masks_write_each_face(tmp_path, tiny_checkpoint):
    photo = paste_face(paste_face(scene(), 40, 60, 150), 420, 200, 150)
    src = save_photo(photo, tmp_path / "two.png")
    out = tmp_path / "out"
    result = deblur(tiny_checkpoint, src, "-o", out, "--mode", "photo", "--save-faces",
                    "--save-masks", "--side-by-side")  # fmt: skip
    assert result.exit_code == 0, result.output
    names = files(out)
    assert "two.png" in names and "two_compare.png" in names
    for k in (1, 2):
        for kind in ("before", "after", "overlay"):
            assert f"two_face{k}_{kind}.png" in names
    assert "two_overlay.png" not in names  # a photo's masks are per face
    with Image.open(out / "two_face1_before.png") as crop:
        assert crop.size[0] == crop.size[1] >= 128


def test_a_photo_without_faces_is_copied_with_a_warning(tmp_path, tiny_checkpoint):
    src = save_photo(scene(), tmp_path / "empty.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--mode", "photo")
    assert result.exit_code == 0, result.output
    assert "no face found: left unchanged" in result.stderr
    assert np.array_equal(pixels(tmp_path / "out" / "empty.png"), pixels(src))


def test_aligned_crops_stay_aligned_in_auto_mode(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "crop.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--verbose", "--save-masks")
    assert result.exit_code == 0, result.output
    assert "treated as an aligned crop" in result.stderr
    assert "crop_overlay.png" in files(tmp_path / "out")


def test_only_center_face_and_max_faces(tmp_path, tiny_checkpoint):
    photo = paste_face(paste_face(scene(), 20, 20, 140), 250, 170, 140)
    src = save_photo(photo, tmp_path / "p.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "a", "--mode", "photo",
                    "--only-center-face", "--save-faces")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [n for n in files(tmp_path / "a") if "_face" in n] == [
        "p_face1_after.png",
        "p_face1_before.png",
    ]
    before = pixels(src)
    after = pixels(tmp_path / "a" / "p.png")
    assert np.array_equal(after[:160, :160], before[:160, :160])  # the corner face: untouched


def test_bad_mode_is_a_usage_error(tmp_path, tiny_checkpoint):
    src = save(face(128), tmp_path / "a.png")
    message = assert_clean_error(
        deblur(tiny_checkpoint, src, "-o", tmp_path / "o", "--mode", "x"), 2
    )
    assert "--mode" in message
