"""Seeded kernel sets for the ends of the blur range that the Shen protocol leaves out.

The Shen protocol scores shake of 13–27 px. Users' faces are also nearly sharp, mildly
shaken or shaken hard, and a restorer must not soften the first nor give up on the
last. This writes one folder of ``.npy`` kernels per band, for
``umsn benchmark --kernels DIR``:

- ``identity``: the 3×3 delta (an unblurred face, noise only);
- ``mild``: camera shake with turns and dwell, 5–11 px (three kernels a size);
- ``severe``: the same shake at 33–45 px (two kernels a size), the README's 35 px row
  among them.

The kernels come from a seed that no training run uses, but from the same trajectory
family as the ``real`` and ``wide`` training mixes: scores on them flatter a network
trained on those mixes, as the Shen bank's do.

    python benchmarks/blur_bands.py -o runs/bands
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from umsn_cli.blur.degrade import shake_kernels

#: Band name → (kernel sizes, kernels per size).
BANDS: dict[str, tuple[tuple[int, ...], int]] = {
    "mild": ((5, 7, 9, 11), 3),
    "severe": ((33, 35, 37, 41, 45), 2),
}
SEED = 20261207


def band_kernels(sizes: tuple[int, ...], per_size: int, seed: int) -> list[np.ndarray]:
    """``per_size`` shake kernels of each size, as the ``real`` mix draws them."""
    rng = np.random.default_rng(seed)
    return shake_kernels([s for s in sizes for _ in range(per_size)], rng, turns=1.0, dwell=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/bands"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1
    bands = {"identity": [delta]}
    for index, (name, (sizes, per_size)) in enumerate(BANDS.items()):
        bands[name] = band_kernels(sizes, per_size, args.seed + index)
    for name, kernels in bands.items():
        folder = args.output / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, kernel in enumerate(kernels):
            np.save(
                folder / f"{name}-{kernel.shape[0]:02d}px-{i:02d}.npy", kernel.astype(np.float32)
            )
        print(f"{folder}: {len(kernels)} kernels")


if __name__ == "__main__":
    main()
