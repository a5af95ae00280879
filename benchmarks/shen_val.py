"""Compare deblurring models on the Shen et al. protocol, per kernel size and per class.

Deblurring quality (``--val``): each sharp face (canonical framing) × the seeded bank
of kernels at each size 13, 15, …, 27, noise σ = ``--noise``. Per-class quality (the
paper's Table I, ``--labelled``): the same protocol on the held-out labelled training
faces (never trained on), masked PSNR per class with the true labels. Models are
weights (``--model``: an id, a checkpoint file) or training runs (``--run``: any
generator stage, e.g. the plain B-Net ablation), which ``umsn benchmark`` cannot load.
Prints one Markdown table with a column per model; ``--json`` keeps every number.

    python benchmarks/shen_val.py --model umsn-lite --run runs/lite/bnet \\
        --val ../shared/data/celebamask-mini/val/images \\
        --labelled ../shared/data/celebamask-mini/train --json shen.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from umsn_cli.benchmark.datasets import TestSet, blurred_faces
from umsn_cli.benchmark.quality import Model, RestorerModel, score
from umsn_cli.faces import load_faces, split_holdout
from umsn_cli.nn import get_config
from umsn_cli.train.checkpoint import load_stage_weights, read_train_state
from umsn_cli.train.config import TrainConfig
from umsn_cli.train.stages import GeneratorStage, build_stage


class RunModel:
    """The generator of a training run (last.pt) as a benchmark model, without S-Net."""

    segment = None
    measured = None

    def __init__(self, run: Path) -> None:
        state = read_train_state(run / "last.pt")
        cfg = TrainConfig.from_dict({**state["config"], "perceptual": False})
        stage = build_stage(cfg, get_config(cfg.model))
        if not isinstance(stage, GeneratorStage):
            raise SystemExit(f"{run}: a {cfg.stage} run does not deblur")
        load_stage_weights(stage, state["stage"], str(run))
        self.stage = stage.eval()

    def deblur(self, faces: Sequence[np.ndarray]) -> list[np.ndarray]:
        x = torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2)
        restored = self.stage.restore01(x).float().clamp(0, 1)
        return list(restored.permute(0, 2, 3, 1).numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="weights id or file")
    parser.add_argument("--run", action="append", default=[], type=Path, help="training run")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--val", type=Path, help="folder of sharp faces (no labels needed)")
    parser.add_argument("--labelled", type=Path, help="folder with images/ and masks/")
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--crop", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--per-size", type=int, default=10, help="kernels per size (≤ 10)")
    parser.add_argument("--align", type=int, default=5, help="best shift within ±PX (0: plain)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    from umsn_cli.api import Restorer

    models: dict[str, Model] = {
        m: RestorerModel(Restorer.load(m, backend=args.backend)) for m in args.model
    }
    models |= {str(r): RunModel(r) for r in args.run}
    sets: dict[str, Callable[[], TestSet]] = {}
    protocol = {"seed": args.seed, "noise": args.noise, "per_size": args.per_size}
    if args.val:
        sets["val"] = lambda: blurred_faces("val", load_faces(args.val, crop=args.crop), **protocol)
    if args.labelled:
        faces = load_faces(args.labelled / "images", args.labelled / "masks", args.crop)
        _, holdout = split_holdout(faces, args.holdout, seed=0)
        sets["classes"] = lambda: blurred_faces("held-out", holdout, **protocol)
    results: dict[str, dict] = {}
    for name, model in models.items():
        results[name] = {}
        for key, make in sets.items():
            start = time.perf_counter()
            report = score(
                make(), model, model_name=name, backend=args.backend, keep=0, align=args.align
            )
            results[name][key] = {"all": report.overall()} | {
                str(size): s for size, s in report.by_size().items()
            }
            print(f"{name}: {key} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def markdown(results: dict[str, dict]) -> str:
    lines = []
    names = list(results)
    first = results[names[0]]
    if "val" in first:
        lines += ["| kernel size | blurry PSNR / SSIM | " + " | ".join(names) + " |"]
        lines += ["|---" * (len(names) + 2) + "|"]
        for size in [s for s in first["val"] if s != "all"] + ["all"]:
            base = first["val"][size]
            cells = [f"{base['psnr_blurry']:.2f} / {base['ssim_blurry']:.3f}"]
            for n in names:
                v = results[n]["val"][size]
                gain = v["psnr"] - v["psnr_blurry"]
                cells.append(f"{v['psnr']:.2f} / {v['ssim']:.3f} ({gain:+.2f} dB)")
            lines.append(f"| {size} | " + " | ".join(cells) + " |")
    if "classes" in first:
        lines += ["", "| class PSNR (held-out) | blurry | " + " | ".join(names) + " |"]
        lines += ["|---" * (len(names) + 2) + "|"]
        for key, label in (("", "whole face"), ("_m1", "m1 background"), ("_m2", "m2 skin"),
                           ("_m3", "m3 features"), ("_m4", "m4 hair")):  # fmt: skip
            all_ = first["classes"]["all"]
            cells = [f"{all_['psnr_blurry' + key]:.2f}"]
            cells += [f"{results[n]['classes']['all']['psnr' + key]:.2f}" for n in names]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
