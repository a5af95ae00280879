"""The Shen-protocol evaluation: bank, per-size scores, per-class scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_helpers import face

from umsn_cli.blur import SHEN_SIZES
from umsn_cli.blur.kernels import shen_bank
from umsn_cli.evaluation import evaluate_shen


@pytest.fixture
def faces() -> torch.Tensor:
    images = [np.asarray(face(32)), np.asarray(face(32))[::-1].copy()]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def test_shen_bank_is_ten_kernels_per_size_and_seeded():
    bank = shen_bank(3)
    assert [size for _, size, _ in bank] == [s for s in SHEN_SIZES for _ in range(10)]
    assert [i for i, _, _ in bank[:10]] == list(range(1, 11))
    again = shen_bank(3)
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(bank, again, strict=True))
    assert not np.array_equal(bank[0][2], shen_bank(4)[0][2])


def test_identity_restorer_scores_like_the_blurry_input(faces):
    result = evaluate_shen(lambda x: x, faces, seed=0, noise=0.01, per_size=1)
    assert sorted(result) == [0, *SHEN_SIZES]
    for scores in result.values():
        assert scores["psnr"] == pytest.approx(scores["psnr_blurry"])
        assert scores["ssim"] == pytest.approx(scores["ssim_blurry"])
    # Larger kernels blur more: the blurry PSNR falls from the smallest to the largest size.
    assert result[SHEN_SIZES[0]]["psnr_blurry"] > result[SHEN_SIZES[-1]]["psnr_blurry"]


def test_a_restorer_that_returns_the_sharp_face_scores_higher(faces):
    sharp_by_batch = {}

    def oracle(blurry: torch.Tensor) -> torch.Tensor:
        return sharp_by_batch["faces"][: len(blurry)]

    sharp_by_batch["faces"] = faces
    result = evaluate_shen(oracle, faces, seed=0, noise=0.0, per_size=1)
    assert result[0]["psnr"] == float("inf")  # identical 8-bit images
    assert result[0]["ssim"] == pytest.approx(1.0)


def test_masks_add_per_class_scores(faces):
    masks = torch.zeros(2, 4, 32, 32)
    masks[:, 0, :, :16] = 1
    masks[:, 1, :, 16:] = 1
    result = evaluate_shen(lambda x: x, faces, masks, seed=0, per_size=1)
    overall = result[0]
    assert overall["psnr_m1"] == pytest.approx(overall["psnr_blurry_m1"])
    # Empty classes are left out rather than scored as NaN or infinity.
    assert "psnr_m3" not in overall and "psnr_m4" not in overall
