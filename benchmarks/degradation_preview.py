"""docs/training.md's picture of the training degradation mix, on a public-domain face.

Training runs write the same picture of their own faces (``OUT/degradations.png``);
those faces may not be redistributed, so the page's copy shows the astronaut
portrait from scikit-image (public domain), cropped to the canonical framing.

    python benchmarks/degradation_preview.py [--mix real] [-o docs/degradations.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from umsn_cli.blur.degrade import MIXES, motion_bank, preview
from umsn_cli.images import save_rgb8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", default="real", choices=sorted(MIXES))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/degradations.png"))
    args = parser.parse_args()
    face = Image.fromarray(data.astronaut()[10:250, 145:385]).resize((128, 128))
    pixels = np.asarray(face, dtype=np.float32) / 255
    sharp = torch.from_numpy(np.stack([pixels, pixels[:, ::-1].copy()])).permute(0, 3, 1, 2)
    mix = MIXES[args.mix]
    picture = preview(sharp, mix, motion_bank(mix, 500, args.seed), seed=args.seed)
    save_rgb8(args.output, picture, overwrite=True)
    print(f"wrote {args.output} ({picture.shape[1]}×{picture.shape[0]})")


if __name__ == "__main__":
    main()
