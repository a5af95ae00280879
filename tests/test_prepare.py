"""``umsn prepare``: photos → aligned training faces with pseudo-labels, read by training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import save
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from umsn_cli.cli import app
from umsn_cli.contract import InputContract
from umsn_cli.prepare import CLASS_LABELS, CROP, sharpness, stored_side

SIDE = stored_side(InputContract())

pytest.importorskip("yuface")


def photo(path: Path, crop=(0, 300, 100, 420)) -> Path:
    """The astronaut portrait, a photo with one face in it (public domain)."""
    top, bottom, left, right = crop
    return save(Image.fromarray(data.astronaut()[top:bottom, left:right]), path)


def prepare(*args) -> object:
    return CliRunner().invoke(app, ["prepare", *map(str, args)])


def test_a_photo_becomes_an_aligned_labelled_training_face(tmp_path, tiny_checkpoint):
    source = photo(tmp_path / "in" / "astronaut.png")
    before = source.read_bytes()
    out = tmp_path / "faces"
    result = prepare(source, "-o", out, "--model", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert "1 faces from 1 photos" in result.output
    image = np.asarray(Image.open(out / "images" / "astronaut.png"))
    labels = np.asarray(Image.open(out / "masks" / "astronaut.png"))
    assert image.shape == (SIDE, SIDE, 3) and labels.shape == (SIDE, SIDE)
    assert set(np.unique(labels)) <= set(CLASS_LABELS.tolist())
    record = json.loads((out / "prepare.json").read_text())
    assert record["crop"] == pytest.approx(CROP) and "S-Net" in record["labels"]
    line = json.loads((out / "prepare.jsonl").read_text())
    assert line["faces"] == ["images/astronaut.png"] and line["outside"][0] < 0.15
    assert source.read_bytes() == before  # the input is never written
    # The face is framed like the canonical one: its eyes where the template has them.
    TEMPLATE = InputContract().template
    from umsn_cli.photo.detect import detect_faces

    found = detect_faces(image.astype(np.float32) / 255)
    offset = (SIDE - 128) / 2
    assert np.abs(found[0].landmarks[:2] - (TEMPLATE[:2] + offset)).max() < 4


def test_a_large_photo_is_shrunk_before_framing(tmp_path):
    """A face far larger than the canonical window (here 4× the portrait) takes the
    Lanczos shrink path and still comes out framed like the canonical face."""
    big = Image.fromarray(data.astronaut()[0:300, 100:420]).resize((1280, 1200))
    source = save(big, tmp_path / "in" / "big.png")
    out = tmp_path / "faces"
    result = prepare(source, "-o", out, "--no-labels")
    assert result.exit_code == 0, result.output
    image = np.asarray(Image.open(out / "images" / "big.png"))
    assert image.shape == (SIDE, SIDE, 3)
    from umsn_cli.photo.detect import detect_faces

    found = detect_faces(image.astype(np.float32) / 255)
    offset = (SIDE - 128) / 2
    assert np.abs(found[0].landmarks[:2] - (InputContract().template[:2] + offset)).max() < 4


def test_skipped_faces_say_why_and_the_batch_goes_on(tmp_path):
    tight = photo(tmp_path / "in" / "tight.png", crop=(70, 170, 175, 270))  # face fills it
    empty = save(Image.new("RGB", (200, 200), (90, 120, 160)), tmp_path / "in" / "wall.png")
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    good = photo(tmp_path / "in" / "good.png")
    out = tmp_path / "faces"
    result = prepare(tight, empty, broken, good, "-o", out, "--no-labels", "-v")
    assert result.exit_code == 1  # one unreadable file
    assert "broken.jpg" in result.output
    assert "canonical window leaves the photo" in result.output
    assert "no face found" in result.output
    assert sorted(p.name for p in (out / "images").iterdir()) == ["good.png"]
    assert not (out / "masks").exists()


def test_soft_faces_are_rejected(tmp_path):
    source = photo(tmp_path / "in" / "a.png")
    blurred = Image.open(source).resize((60, 60)).resize((100, 120), Image.Resampling.BILINEAR)
    soft = save(blurred, tmp_path / "in" / "soft.png")
    result = prepare(soft, "-o", tmp_path / "out", "--no-labels", "--min-face", "10", "-v")
    assert "too soft" in result.output or "no face found" in result.output
    assert sharpness(np.zeros((10, 10, 3), np.float32)) == 0


def test_bad_options_are_usage_errors(tmp_path):
    result = prepare(photo(tmp_path / "a.png"), "-o", tmp_path / "o", "--max-outside", "2")
    assert result.exit_code == 2 and "--max-outside" in result.output


def test_training_reads_prepared_faces_with_celebamask_ones(tmp_path, tiny_checkpoint):
    """A prepared folder joins the training faces: same stored size and window."""
    from test_train import make_dataset

    from umsn_cli.faces import concat_faces, load_faces, load_prepared

    out = tmp_path / "faces"
    assert (
        prepare(photo(tmp_path / "in" / "p.png"), "-o", out, "--model", tiny_checkpoint).exit_code
        == 0
    )
    prepared = load_prepared(out)
    dataset = make_dataset(tmp_path / "data")
    celeba = load_faces(dataset["data"], dataset["masks"], crop=0.75)
    both = concat_faces([celeba, prepared])
    assert len(both) == len(celeba) + 1 and both.masks.shape[0] == len(both)
    assert both.images.shape[1:] == (SIDE, SIDE, 3)
