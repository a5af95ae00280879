"""S-Net F-score per class and confusion matrix, for weights, on held-out labelled faces.

The faces are the ones ``umsn train`` holds out (``--holdout``, same split), at the
canonical framing, sharp and blurred with the fixed validation kernels of training
(noise ``--noise``): the same numbers ``umsn train snet`` logs, measured here for any
weights file or id, plus where each class's pixels go.

    python benchmarks/snet_scores.py --model umsn-lite \\
        --labelled ../shared/data/celebamask-mini/train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from umsn_cli.faces import load_faces, split_holdout
from umsn_cli.metrics import FScore
from umsn_cli.train.validation import in_batches, make_validation_set
from umsn_cli.visualize import CLASS_NAMES
from umsn_cli.weights.checkpoint import load_checkpoint
from umsn_cli.weights.store import resolve_model_ref


def confusion(predicted: np.ndarray, target: np.ndarray, classes: int = 4) -> np.ndarray:
    """Row-normalised confusion matrix in %: row = true class, column = predicted."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (target.ravel(), predicted.ravel()), 1)
    return 100 * counts / np.maximum(counts.sum(1, keepdims=True), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="umsn-lite", help="weights id or file")
    parser.add_argument("--labelled", type=Path, required=True, help="images/ and masks/")
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--crop", type=float, default=0.75)
    parser.add_argument("--noise", type=float, default=0.01)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    path, _ = resolve_model_ref(args.model, offline=True)
    network, _ = load_checkpoint(path)
    network.eval()
    faces = load_faces(args.labelled / "images", args.labelled / "masks", args.crop)
    _, held_out = split_holdout(faces, args.holdout, seed=0)
    val = make_validation_set(held_out, args.noise)
    assert val.masks is not None
    target = val.masks.argmax(1).numpy()
    names = [f"m{c + 1} {name}" for c, name in enumerate(CLASS_NAMES)]
    print(f"S-Net of {args.model} on {len(held_out)} held-out faces of {args.labelled}\n")
    for label, images in (("blurred", val.blurry), ("sharp", val.sharp)):
        predicted = in_batches(network.segment, images).argmax(1).numpy()
        score = FScore(len(names))
        score.update(predicted, target)
        print(f"**{label}**\n")
        print("| true \\ predicted | " + " | ".join(names) + " | F-score |")
        print("|---" * (len(names) + 2) + "|")
        rows = confusion(predicted, target, len(names))
        for name, row, f in zip(names, rows, score.scores(), strict=True):
            print(f"| {name} | " + " | ".join(f"{v:.1f}%" for v in row) + f" | {f:.3f} |")
        print()


if __name__ == "__main__":
    main()
