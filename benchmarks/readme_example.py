"""The README's before/after picture: the public-domain astronaut, blurred four ways.

Rows: the built-in example of ``umsn deblur --example`` (an 11-px straight motion
blur), then seeded camera-shake kernels of the Shen et al. generator: 17 and 25 px
(the bank's sizes) and a severe 35 px, each with noise σ = 0.01. Columns: blurry |
each model given with ``--model`` | sharp, upscaled 2× (nearest) so the detail
shows. The PSNR of every panel against the sharp face is printed, for the caption.

    python benchmarks/readme_example.py --model umsn-lite --model bnet-fast \
        [-o docs/example.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from umsn_cli.api import Restorer
from umsn_cli.blur import add_noise, blur_image, random_kernels
from umsn_cli.examples import example_blurry, example_face
from umsn_cli.images import from_array, quantise, save_rgb8
from umsn_cli.metrics import psnr

GAP = 4  # white pixels between panels


def blurred_rows(sharp: np.ndarray) -> list[tuple[str, np.ndarray]]:
    rows = [("built-in example, 11 px motion", example_blurry())]
    # The 35 px kernel has a seed of its own: the 17 and 25 px ones stay as they were.
    kernels = [*random_kernels([17, 25], seed=3), *random_kernels([35], seed=4)]
    for size, kernel in zip((17, 25, 35), kernels, strict=True):
        blurry = torch.from_numpy(blur_image(sharp, kernel)).permute(2, 0, 1)[None]
        noisy = add_noise(blurry, 0.01, torch.Generator().manual_seed(size))
        rows.append((f"{size} px camera shake", noisy[0].permute(1, 2, 0).clamp(0, 1).numpy()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="repeatable")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/example.png"))
    args = parser.parse_args()
    sharp = example_face()
    load = lambda m: Restorer.load(m, backend="cpu", precision="fp32", offline=True)  # noqa: E731
    restorers = [load(m) for m in args.model]
    rows = []
    print("| blur | blurry | " + " | ".join(args.model) + " |")
    print("|---" * (2 + len(args.model)) + "|")
    for name, blurry in blurred_rows(sharp):
        restored = [r.deblur_batch([from_array(blurry)])[0].rgb for r in restorers]
        panels = [blurry, *restored, sharp]
        scores = [f"{psnr(p, sharp):.2f} dB" for p in panels[:-1]]
        print(f"| {name} | " + " | ".join(scores) + " |")
        gap = np.ones((sharp.shape[0], GAP, 3), np.float32)
        row = np.concatenate([x for p in panels for x in (p, gap)][:-1], axis=1)
        rows.append(row)
        rows.append(np.ones((GAP, row.shape[1], 3), np.float32))
    picture = np.concatenate(rows[:-1], axis=0)
    picture = picture.repeat(2, axis=0).repeat(2, axis=1)  # nearest 2×: pixels stay pixels
    save_rgb8(args.output, quantise(picture), overwrite=True)
    print(f"→ {args.output} (columns: blurry | {' | '.join(args.model)} | sharp)")


if __name__ == "__main__":
    main()
