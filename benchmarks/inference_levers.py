"""What inference-time tricks add to a model: the gain on blurred faces, the cost on sharp ones.

Each face of ``--val`` (canonical framing) is scored twice: blurred by the seeded
Shen bank (``--per-size`` kernels at each size 13–27) and not blurred at all (the
same noise σ only), at the best shift within ±``--align`` px. A trick that deblurs
more but damages a face that was already sharp hurts users whose photos were fine.

- ``flip``: the face and its mirror restored and averaged (``umsn deblur --flip-ensemble``);
- ``passes N``: the restored face deblurred again, N passes in all;
- ``residual A``: input + A · (restored − input), a stronger (A > 1) correction.

Every variant but ``flip`` reuses the one restored face of each input; ``flip`` is
the library's own ``flip_ensemble``, so it measures exactly what the option does.

    python benchmarks/inference_levers.py --model bnet-fast-xl \\
        --val ../shared/data/celebamask-mini/val --per-size 1
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from umsn_cli.benchmark.datasets import synthesized
from umsn_cli.benchmark.quality import RestorerModel, score

Deblur = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


class Cached:
    """A model's deblur, remembered per input image, so variants share restorations."""

    def __init__(self, deblur: Deblur) -> None:
        self.inner = deblur
        self.seen: dict[str, np.ndarray] = {}

    def __call__(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        keys = [hashlib.sha1(np.ascontiguousarray(f).tobytes()).hexdigest() for f in faces]
        todo = [i for i, k in enumerate(keys) if k not in self.seen]
        if todo:
            for i, out in zip(todo, self.inner([faces[i] for i in todo]), strict=True):
                self.seen[keys[i]] = np.clip(out, 0, 1).astype(np.float32)
        return [self.seen[k] for k in keys]


class Variant:
    """A benchmark model (no S-Net) that restores with ``deblur``."""

    segment = None
    measured = None

    def __init__(self, deblur: Deblur) -> None:
        self.deblur = deblur


def variants(once: Cached, flip: Deblur) -> dict[str, Deblur]:
    def passes(n: int) -> Deblur:
        def run(faces: Sequence[np.ndarray]) -> list[np.ndarray]:
            for _ in range(n):
                faces = once(faces)
            return list(faces)

        return run

    def residual(a: float) -> Deblur:
        return lambda faces: [
            np.clip(f + a * (r - f), 0, 1) for f, r in zip(faces, once(faces), strict=True)
        ]

    return {
        "one pass": passes(1),
        "flip": flip,
        "passes 2": passes(2),
        "passes 3": passes(3),
        "residual 1.15": residual(1.15),
        "residual 1.3": residual(1.3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bnet-fast-xl", help="weights id or file")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--val", type=Path, required=True, help="folder of sharp faces")
    parser.add_argument("--crop", type=float, default=0.75)
    parser.add_argument("--per-size", type=int, default=1, help="kernels per size (≤ 10)")
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--align", type=int, default=5)
    parser.add_argument("--limit", type=int, help="only the first N faces")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    from umsn_cli.api import Restorer

    def load(flip_ensemble: bool) -> RestorerModel:
        restorer = Restorer.load(args.model, backend=args.backend, flip_ensemble=flip_ensemble)
        return RestorerModel(restorer)

    once, flip = Cached(load(False).deblur), load(True).deblur
    delta = np.zeros((3, 3), np.float32)
    delta[1, 1] = 1
    blurs = {"blurred": None, "sharp": [("sharp", delta)]}
    print(f"{args.model}, PSNR at the best shift within ±{args.align} px (gain over the input)")
    print("| variant | blurred faces | sharp faces |")
    print("|---|---|---|")
    for name, deblur in variants(once, flip).items():
        cells = []
        for kernels in blurs.values():
            test = synthesized(args.val, kernels, seed=0, noise=args.noise,
                               per_size=args.per_size, crop=args.crop, size=128,
                               limit=args.limit)  # fmt: skip
            report = score(test, Variant(deblur), model_name=name, backend="", align=args.align)
            o = report.overall()
            cells.append(f"{o['psnr']:.2f} ({o['psnr'] - o['psnr_blurry']:+.2f})")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
