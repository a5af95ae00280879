"""Helpers shared by the CLI tests: face-like inputs and looking at output folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data


def face(size: int | tuple[int, int] = 128, mode: str = "RGB") -> Image.Image:
    """The astronaut's face, cropped like an aligned face and resized to ``size``."""
    width, height = (size, size) if isinstance(size, int) else size
    crop = Image.fromarray(data.astronaut()[20:236, 156:372])
    return crop.resize((width, height), Image.Resampling.LANCZOS).convert(mode)


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def files(folder: Path) -> list[str]:
    """Every file below ``folder``, as sorted relative POSIX paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def leftovers(folder: Path) -> list[Path]:
    """Hidden or temporary files an interrupted or failed write could leave behind."""
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


def assert_same_training_state(a: Path, b: Path, step: int) -> None:
    """Two runs' ``last.pt`` hold the same step, weights and every rank's sampler RNG."""
    import torch

    sa = torch.load(a / "last.pt", weights_only=True)
    sb = torch.load(b / "last.pt", weights_only=True)
    assert sa["step"] == sb["step"] == step
    assert sa["stage"].keys() == sb["stage"].keys()
    for k in sa["stage"]:
        assert torch.equal(sa["stage"][k], sb["stage"][k]), k
    for ra, rb in zip(sa["sampler_rng"], sb["sampler_rng"], strict=True):
        assert torch.equal(ra, rb)
    assert ("ema" in sa) == ("ema" in sb)
    if "ema" in sa:  # the weight average continues exactly too
        assert sa["ema"]["updates"] == sb["ema"]["updates"] == step
        for k, v in sa["ema"]["weights"].items():
            assert torch.equal(v, sb["ema"]["weights"][k]), k


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)
