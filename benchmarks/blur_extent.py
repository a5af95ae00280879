"""How well can the blur of a face be measured before it is restored? An A/B of two
estimates of the blur extent in pixels, calibrated on one set of faces, scored on another.

    python benchmarks/blur_extent.py \\
        --calibrate ../shared/data/celebamask-mini/train/images --calibrate-count 100 \\
        --val ../shared/data/celebamask-mini/val/images --json runs/eval/blur-extent.json

Every face (the 128² aligned framing, ``--crop``) is blurred once at each extent of
:data:`EXTENTS` (1 px: not blurred; the others a seeded random camera-shake kernel of
that size, as the training mix draws them) with noise σ 0.01. Three estimates:

- ``ratio``: :func:`umsn_cli.strength.detail_ratio` alone, what ``--strength auto``
  judges by (the Laplacian energy of the half-size grey input over that of its
  restoration);
- ``correction``: the same ratio at four scales (the grey image pooled by 2, 4, 8, 16:
  :data:`umsn_cli.strength.SCALES`),
  the network's own view of what it restored at each;
- ``input``: no network, the input alone: how the detail falls from each scale to the
  next (blur takes fine detail before coarse; the ratio cancels how much the face has);
- ``both``: the features of ``correction`` and ``input`` together.

Each is mapped to pixels by a least-squares fit of the log extent on its log features,
on the calibration faces. On the validation faces the script reports the error of the
predicted extent (mean absolute, per band, median relative), its rank correlation with
the true extent, and how well it separates unblurred faces from blurred ones (ROC
AUC). The JSON holds each fit's weights, the form ``umsn_cli/strength.py`` keeps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from umsn_cli.blur import add_noise, blur_image, random_kernels
from umsn_cli.faces import load_faces
from umsn_cli.restorer import Restorer
from umsn_cli.strength import detail_ratio, log_detail

#: The true extents, in px of a 128² face: unblurred, mild, Shen et al.'s, severe.
EXTENTS = (1, 3, 5, 7, 9, 11, 13, 17, 21, 25, 29, 33, 37, 41, 45)
BANDS = {"unblurred": (1, 1), "mild 3–11": (3, 11), "Shen 13–27": (13, 27),
         "severe 29–45": (29, 45)}  # fmt: skip
NOISE = 0.01
BATCH = 16


def blurred_set(
    folder: Path, count: int, crop: float, seed: int
) -> tuple[torch.Tensor, np.ndarray]:
    """Each face at every extent: N·E×3×128×128 inputs and their true extents."""
    faces, _ = load_faces(folder, None, crop=crop, size=128).canonical()
    faces = faces[:count].permute(0, 2, 3, 1).numpy()
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    images, extents = [], []
    for face in faces:
        kernels = random_kernels([e for e in EXTENTS if e > 1], rng)
        for extent, kernel in zip(EXTENTS, [None, *kernels], strict=True):
            image = face if kernel is None else blur_image(face, kernel)
            images.append(torch.from_numpy(np.ascontiguousarray(image, np.float32)))
            extents.append(extent)
    batch = add_noise(torch.stack(images).permute(0, 3, 1, 2), NOISE, generator)
    return batch, np.array(extents, float)


def features(restorer: Restorer, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Each estimate's inputs for every image, the network run at strength 1:

    - ``ratio``: the shipped :func:`detail_ratio` alone (one number, at half size);
    - ``correction``: the log detail of the input over the restoration's, at every scale;
    - ``input``: the input alone, the log detail of each scale over the next coarser
      one (how much detail the face has cancels) and the finest scale's log detail.
    """
    ratios, restored_detail = [], []
    for start in range(0, len(images), BATCH):
        chunk = images[start : start + BATCH]
        restored, _ = restorer.backend.deblur(chunk)
        ratios.append(detail_ratio(chunk, restored.float()))
        restored_detail.append(log_detail(restored.float()))
    before, after = log_detail(images), torch.cat(restored_detail)
    steps = before[:, :-1] - before[:, 1:]
    correction = (before - after).numpy()
    alone = torch.cat([steps, before[:, :1]], dim=1).numpy()
    return {
        "ratio": torch.cat(ratios).log()[:, None].numpy(),
        "correction": correction,
        "input": alone,
        "both": np.concatenate([correction, alone], axis=1),
    }


def fit(values: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """Least squares of log extent on the features and a constant: the weights."""
    design = np.concatenate([values, np.ones((len(values), 1))], axis=1)
    weights, *_ = np.linalg.lstsq(design, np.log(extents), rcond=None)
    return weights


def predict(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The extent in px, within the calibrated range."""
    logs = values @ weights[:-1] + weights[-1]
    return np.clip(np.exp(logs), EXTENTS[0], EXTENTS[-1])


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half: the ROC AUC."""
    above = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(above + ties / 2)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks = lambda x: np.argsort(np.argsort(x)).astype(float)  # noqa: E731
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def score(values: np.ndarray, extents: np.ndarray, weights: np.ndarray) -> dict:
    predicted = predict(values, weights)
    error = np.abs(predicted - extents)
    bands = {name: round(float(error[(extents >= lo) & (extents <= hi)].mean()), 2)
             for name, (lo, hi) in BANDS.items()}  # fmt: skip
    sharp = predicted[extents == 1]
    return {
        "mean_abs_error_px": round(float(error.mean()), 2),
        "median_relative_error": round(float(np.median(error / extents)), 3),
        "mean_abs_error_px_by_band": bands,
        "spearman": round(spearman(predicted, extents), 3),
        # A sharp face should be predicted less blurred than a blurred one.
        "auc_unblurred_vs_3px": round(auc(predicted[extents == 3], sharp), 3),
        "auc_unblurred_vs_5px_and_more": round(auc(predicted[extents >= 5], sharp), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", type=Path, required=True, help="sharp aligned faces")
    parser.add_argument("--calibrate-count", type=int, default=150)
    parser.add_argument("--val", type=Path, required=True, help="other sharp aligned faces")
    parser.add_argument("--crop", type=float, default=0.75)
    parser.add_argument("--model", default="bnet-fast-xl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    restorer = Restorer.load(args.model, offline=True)
    calibration = blurred_set(args.calibrate, args.calibrate_count, args.crop, args.seed)
    validation = blurred_set(args.val, 10**6, args.crop, args.seed + 1)
    fitted = features(restorer, calibration[0])
    measured = features(restorer, validation[0])
    results: dict = {
        "model": args.model,
        "extents": list(EXTENTS),
        "noise": NOISE,
        "calibration_faces": len(calibration[1]) // len(EXTENTS),
        "validation_faces": len(validation[1]) // len(EXTENTS),
        "estimates": {},
    }
    for name in fitted:
        weights = fit(fitted[name], calibration[1])
        result = score(measured[name], validation[1], weights)
        result["weights"] = [round(float(w), 5) for w in weights]
        results["estimates"][name] = result
        print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'weights'})}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
