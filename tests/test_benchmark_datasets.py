"""Test-set layouts ``umsn benchmark`` reads, each built here in miniature."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import face, save
from PIL import Image

from umsn_cli.benchmark.datasets import HELEN_TO_UMSN, data_root, find_named, open_dataset
from umsn_cli.errors import DatasetMissingError, UsageError


def shen_layout(root, name="Test_data_Helen", tag="Helen", faces=("f1", "f2"), sizes=(13, 27)):
    """Shen et al.'s layout: final_<tag>_blur/<id>_kerNN_blur_kK.png + final_<tag>_gt/<id>.png."""
    folder = root / name
    for i, stem in enumerate(faces):
        sharp = face(32).rotate(10 * i)
        save(sharp, folder / f"final_{tag}_gt" / f"{stem}.png")
        for k in (1, 2):
            for size in sizes:
                blurry = sharp.resize((8, 8)).resize((32, 32))
                save(blurry, folder / f"final_{tag}_blur" / f"{stem}_ker{k:02d}_blur_k{size}.png")
    return folder


def test_named_sets_are_found_under_the_data_root(tmp_path):
    shen_layout(tmp_path)
    test = open_dataset("helen", root=tmp_path)
    pairs = list(test.pairs)
    assert test.count == len(pairs) == 8
    assert {p.size for p in pairs} == {13, 27}
    assert {p.face for p in pairs} == {"f1", "f2"}
    assert pairs[0].id == "f1_ker01_blur_k13"
    assert pairs[0].blurry.shape == pairs[0].sharp.shape == (32, 32, 3)
    assert not test.has_labels and pairs[0].masks is None
    assert "kernel sizes 13–27" in test.protocol


def test_data_root_comes_from_the_flag_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UMSN_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert data_root(None) == tmp_path / "env"
    monkeypatch.delenv("UMSN_DATA")
    assert data_root(None) is None


@pytest.mark.parametrize("name", ["helen", "celeba", "pubfig"])
def test_a_missing_named_set_says_where_it_comes_from(tmp_path, name):
    with pytest.raises(DatasetMissingError) as info:
        find_named(name, tmp_path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message
    assert str(tmp_path) in message and "cannot be downloaded" in message
    assert ("Shen et al." if name != "pubfig" else "Song et al.") in message
    assert ("_kerNN_blur_kK" if name != "pubfig" else "gt/<name>.png") in message


def test_pubfig_style_pairs_match_by_name_without_kernel_sizes(tmp_path):
    for stem in ("a", "b", "c"):
        save(face(24), tmp_path / "PubFig" / "gt" / f"{stem}.png")
        save(face(24).resize((6, 6)).resize((24, 24)), tmp_path / "PubFig" / "blur" / f"{stem}.png")
    test = open_dataset("pubfig", root=tmp_path)
    pairs = list(test.pairs)
    assert [p.id for p in pairs] == ["a", "b", "c"]
    assert all(p.size is None for p in pairs)


def test_helen_labels_become_the_four_classes(tmp_path):
    folder = shen_layout(tmp_path, faces=("f1",), sizes=(13,))
    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[:, 8:16] = 1  # skin
    labels[:, 16:24] = 6  # nose: a feature
    labels[:, 24:] = 10  # hair
    save(Image.fromarray(labels), folder / "labels" / "f1.png")
    test = open_dataset("helen", root=tmp_path)
    pair = next(test.pairs)
    assert test.has_labels
    assert pair.masks.shape == (4, 32, 32)
    assert [pair.masks[c, 0, col] for c, col in ((0, 0), (1, 8), (2, 16), (3, 24))] == [1] * 4
    assert list(HELEN_TO_UMSN) == [0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3]


def test_a_folder_with_blur_and_gt_subfolders_is_read_as_pairs(tmp_path):
    folder = shen_layout(tmp_path, name="mine", tag="x", faces=("f1",))
    test = open_dataset(str(folder))
    assert test.name == "mine" and test.count == 4


def test_blurred_files_without_ground_truth_are_an_error(tmp_path):
    folder = shen_layout(tmp_path, faces=("f1",), sizes=(13,))
    (folder / "final_Helen_gt" / "f1.png").unlink()
    save(face(32), folder / "final_Helen_gt" / "other.png")
    with pytest.raises(UsageError, match="no ground truth"):
        open_dataset("helen", root=tmp_path)


def test_unreadable_pairs_are_skipped_and_reported(tmp_path):
    folder = shen_layout(tmp_path, faces=("f1", "f2"), sizes=(13,))
    save(face(20), folder / "final_Helen_gt" / "f1.png")  # not the size of its blurry copies
    (folder / "final_Helen_blur" / "f2_ker02_blur_k13.png").write_bytes(b"not a png")
    test = open_dataset("helen", root=tmp_path)
    pairs = list(test.pairs)
    assert [p.id for p in pairs] == ["f2_ker01_blur_k13"]
    reasons = dict(test.skipped)
    assert len(reasons) == 3
    assert "same size" in reasons[str(folder / "final_Helen_blur" / "f1_ker01_blur_k13.png")]
    assert "not an image" in reasons[str(folder / "final_Helen_blur" / "f2_ker02_blur_k13.png")]


def test_sharp_faces_are_blurred_with_the_seeded_shen_protocol(tmp_path):
    for stem in ("a", "b"):
        save(face(64), tmp_path / "faces" / f"{stem}.jpg")
    test = open_dataset(str(tmp_path / "faces"), per_size=2, seed=1, noise=0.0)
    pairs = list(test.pairs)
    assert test.count == len(pairs) == 2 * 2 * 8
    assert pairs[0].sharp.shape == (128, 128, 3)  # framed like the model's input
    assert "Shen et al. protocol: 2 seeded kernels (seed 1)" in test.protocol
    assert not test.has_labels
    blurrier = next(p for p in pairs if p.size == 27)
    assert np.abs(blurrier.blurry - blurrier.sharp).mean() > 0.005


def test_sharp_faces_with_celebamask_labels_carry_masks(tmp_path):
    save(face(64), tmp_path / "set" / "images" / "a.jpg")
    labels = np.zeros((64, 64), dtype=np.uint8)
    labels[16:48, 16:48] = 1  # skin
    save(Image.fromarray(labels, mode="L"), tmp_path / "set" / "masks" / "a.png")
    test = open_dataset(str(tmp_path / "set"), per_size=1, limit=1)
    pair = next(test.pairs)
    assert test.has_labels and pair.masks.shape == (4, 128, 128)
    assert pair.masks[1, 64, 64] == pytest.approx(1.0) and pair.masks[0, 2, 2] == pytest.approx(1.0)


def test_given_kernels_replace_the_bank(tmp_path):
    save(face(64), tmp_path / "faces" / "a.png")
    box = np.ones((5, 5), dtype=np.float32) / 25
    test = open_dataset(str(tmp_path / "faces"), kernels=[("box5", box)])
    (pair,) = list(test.pairs)
    assert pair.id == "a_box5" and pair.size == 5


def test_neither_a_name_nor_a_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="neither a named test set"):
        open_dataset(str(tmp_path / "nope"))
