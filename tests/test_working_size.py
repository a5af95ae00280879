"""``--max-face-size``: big faces restored at their own scale (128, 256 or 512 px)."""

from __future__ import annotations

import numpy as np
import pytest
from cli_helpers import face, save
from test_cli_deblur import assert_clean_error, deblur

from umsn_cli.errors import UsageError
from umsn_cli.images import from_array
from umsn_cli.restorer import Restorer


def crop(side: int):
    return from_array(np.asarray(face(side), dtype=np.float32) / 255)


@pytest.mark.parametrize(
    ("most", "side", "size"),
    [(128, 100, 128), (128, 600, 128), (256, 200, 128), (256, 300, 256), (256, 600, 256),
     (512, 600, 512), (512, 511, 256)],
)  # fmt: skip
def test_the_working_size_is_the_largest_within_the_face_and_the_cap(
    tiny_checkpoint, most, side, size
):
    restorer = Restorer.load(str(tiny_checkpoint), backend="cpu", max_face_size=most)
    assert restorer.working_size(crop(side)) == size


def test_crops_of_several_sizes_come_back_in_order_at_their_own_size(tiny_checkpoint, monkeypatch):
    restorer = Restorer.load(str(tiny_checkpoint), backend="cpu", max_face_size=256)
    seen = []
    real = restorer.backend.deblur
    monkeypatch.setattr(restorer.backend, "deblur", lambda x: seen.append(x.shape) or real(x))
    sides = [300, 128, 260, 90]
    results = restorer.deblur_batch([crop(s) for s in sides])
    assert [r.rgb.shape[:2] for r in results] == [(s, s) for s in sides]
    assert sorted(shape[-1] for shape in seen) == [128, 256]  # one pass per working size
    assert {shape[0] for shape in seen} == {2}
    alone = restorer.deblur_batch([crop(260)])[0]
    assert np.allclose(alone.rgb, results[2].rgb, atol=1e-5)


def test_a_size_that_is_not_offered_is_refused(tmp_path, tiny_checkpoint):
    with pytest.raises(UsageError, match="--max-face-size 300"):
        Restorer.load(str(tiny_checkpoint), backend="cpu", max_face_size=300)
    src = save(face(128), tmp_path / "a.png")
    result = deblur(tiny_checkpoint, src, "-o", tmp_path / "out", "--max-face-size", "300")
    assert "choose one of 128, 256, 512" in assert_clean_error(result, 2)
    assert "using backend" not in result.output
