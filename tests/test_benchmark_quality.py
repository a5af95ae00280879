"""Scoring a model on a test set: the Shen bank, per-size and per-class scores, rankings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from cli_helpers import face

from umsn_cli.benchmark.datasets import Pair, TestSet, blurred_faces
from umsn_cli.benchmark.quality import score
from umsn_cli.blur import SHEN_SIZES
from umsn_cli.blur.kernels import shen_bank
from umsn_cli.faces import FaceSet


def faces(with_masks: bool = False) -> FaceSet:
    images = np.stack([np.asarray(face(32)), np.asarray(face(32))[::-1].copy()])
    masks = None
    if with_masks:
        masks = np.zeros((2, 4, 32, 32), dtype=np.uint8)
        masks[:, 0, :, :16] = 255  # left half background, right half skin
        masks[:, 1, :, 16:] = 255
    return FaceSet(["a", "b"], images, masks, window=1.0)


class Unchanged:
    """Returns its input: it must score exactly like the blurry input."""

    measured = None

    def __init__(self) -> None:
        self.segmented = 0

    def deblur(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [x.copy() for x in images]

    def segment(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.segmented += len(images)
        probs = np.zeros((4, *images[0].shape[:2]), dtype=np.float32)
        probs[2] = 1  # everything "features"
        return [probs for _ in images]


class Oracle(Unchanged):
    """Knows the sharp face of every blurry one it is given."""

    def __init__(self, pairs: list[Pair]) -> None:
        super().__init__()
        self.sharp = {p.blurry.tobytes(): p.sharp for p in pairs}

    def deblur(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.sharp[x.tobytes()] for x in images]


def run(test: TestSet, model, **options):
    return score(test, model, model_name="m", backend="cpu", **options)


def test_shen_bank_is_ten_kernels_per_size_and_seeded():
    bank = shen_bank(3)
    assert [size for _, size, _ in bank] == [s for s in SHEN_SIZES for _ in range(10)]
    assert [i for i, _, _ in bank[:10]] == list(range(1, 11))
    again = shen_bank(3)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(bank, again, strict=True))
    assert not np.array_equal(bank[0][2], shen_bank(4)[0][2])


def test_blurred_faces_are_the_same_for_the_same_seed():
    a = list(blurred_faces("t", faces(), per_size=1, seed=5).pairs)
    b = list(blurred_faces("t", faces(), per_size=1, seed=5).pairs)
    c = list(blurred_faces("t", faces(), per_size=1, seed=6).pairs)
    assert [p.id for p in a] == [f"{s}_ker01_blur_k{k}" for k in SHEN_SIZES for s in "ab"]
    assert all(np.array_equal(x.blurry, y.blurry) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].blurry, c[0].blurry)


def test_an_unchanged_image_scores_like_the_blurry_input():
    report = run(blurred_faces("t", faces(), per_size=1, noise=0.01), Unchanged())
    assert sorted(report.by_size()) == list(SHEN_SIZES)
    assert len(report.cases) == 2 * len(SHEN_SIZES)
    for scores in [report.overall(), *report.by_size().values()]:
        assert scores["psnr"] == pytest.approx(scores["psnr_blurry"])
        assert scores["ssim"] == pytest.approx(scores["ssim_blurry"])
    sizes = report.by_size()
    # Larger kernels blur more: the blurry PSNR falls from the smallest to the largest size.
    assert sizes[SHEN_SIZES[0]]["psnr_blurry"] > sizes[SHEN_SIZES[-1]]["psnr_blurry"]


def test_the_sharp_face_scores_perfectly_and_ranks_best():
    test = blurred_faces("t", faces(), per_size=1, noise=0.0)
    oracle = Oracle(list(blurred_faces("t", faces(), per_size=1, noise=0.0).pairs))
    report = run(test, oracle, keep=2)
    assert report.overall()["psnr"] == math.inf
    assert report.overall()["ssim"] == pytest.approx(1.0)
    assert report.to_dict()["overall"]["psnr"] is None  # JSON has no infinity
    assert len(report.best) == len(report.worst) == 2
    assert all(c.images is not None for c in report.best + report.worst)


def test_best_and_worst_are_ranked_by_psnr_gain():
    report = run(blurred_faces("t", faces(), per_size=2, noise=0.01), Unchanged(), keep=3)
    gains = sorted(c.gain for c in report.cases)
    assert [c.gain for c in report.best] == gains[::-1][:3]
    assert [c.gain for c in report.worst] == gains[:3]


def test_true_labels_give_class_scores_without_segmenting():
    model = Unchanged()
    report = run(blurred_faces("t", faces(with_masks=True), per_size=1), model)
    overall = report.overall()
    assert report.mask_source == "labels" and model.segmented == 0
    assert overall["psnr_m1"] == pytest.approx(overall["psnr_blurry_m1"])
    assert overall["ssim_m2"] == pytest.approx(overall["ssim_blurry_m2"])
    # Empty classes are left out rather than scored as NaN or infinity.
    assert "psnr_m3" not in overall and "psnr_m4" not in overall


def test_without_labels_snet_segments_each_sharp_face_once():
    model = Unchanged()
    report = run(blurred_faces("t", faces(), per_size=2), model)
    assert report.mask_source == "S-Net on the sharp face"
    assert model.segmented == 2  # two faces, 16 blurry copies each
    assert "psnr_m3" in report.overall() and "psnr_m1" not in report.overall()


def test_a_model_without_snet_gets_no_class_scores():
    model = Unchanged()
    model.segment = None
    report = run(blurred_faces("t", faces(), per_size=1), model)
    assert report.mask_source == "none"
    assert not any("_m" in k for k in report.overall())


def test_identity_distance_is_scored_for_restored_and_blurry():
    class Distance:
        def distance(self, restored: np.ndarray, sharp: np.ndarray) -> float:
            return float(np.abs(restored - sharp).mean())

    report = run(blurred_faces("t", faces(), per_size=1), Unchanged(), identity=Distance())
    overall = report.overall()
    assert (
        overall["identity"] == pytest.approx(overall["identity_blurry"]) and overall["identity"] > 0
    )


class Shifted(Oracle):
    """Returns the sharp face moved by (2, -1) pixels: perfect up to where it sits."""

    def deblur(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.roll(s, (2, -1), axis=(0, 1)) for s in super().deblur(images)]


def test_aligned_scores_forgive_a_shift_and_keep_the_plain_beside():
    def test():
        return blurred_faces("t", faces(with_masks=True), per_size=1, noise=0.0)

    model = Shifted(list(test().pairs))
    aligned = run(test(), model, align=3).overall()
    assert aligned["psnr"] == math.inf and aligned["ssim"] == pytest.approx(1.0)
    assert aligned["shift"] == 3  # |2| + |-1|
    assert math.isfinite(aligned["psnr_plain"]) and aligned["psnr_plain"] < 30
    assert aligned["psnr_m2"] == math.inf  # the class scores use the same shift
    plain = run(test(), model, align=0).overall()
    assert plain["psnr"] == pytest.approx(aligned["psnr_plain"])
    assert "psnr_plain" not in plain
    # Too small a window cannot find the shift: the score stays finite.
    assert math.isfinite(run(test(), model, align=1).overall()["psnr"])
    report = run(test(), model, align=3)
    assert report.to_dict()["align"] == 3


def test_the_blurry_input_is_aligned_too():
    """The baseline gets the same benefit, so the gain stays honest."""
    test = blurred_faces("t", faces(), per_size=1, noise=0.01)
    scores = run(test, Unchanged(), align=4).overall()
    assert scores["psnr"] == pytest.approx(scores["psnr_blurry"])
    assert scores["psnr_blurry"] >= scores["psnr_plain_blurry"] - 1e-9


def test_colour_shift_is_the_largest_channel_move_of_the_face_in_levels():
    from umsn_cli.benchmark.quality import colour_shift

    sharp = np.random.default_rng(0).uniform(0.2, 0.8, (32, 32, 3))
    face = np.zeros((32, 32))
    face[8:24, 8:24] = 1
    tinted = sharp.copy()
    tinted[8:24, 8:24, 2] += 3 / 255  # the face 3 levels bluer
    tinted[:8, :, 0] += 0.5  # the background redder: not the face
    assert colour_shift(sharp, sharp, face) == 0.0
    assert colour_shift(tinted, sharp, face) == pytest.approx(3.0)
    assert np.isnan(colour_shift(tinted, sharp, np.zeros((32, 32))))
