"""Scoring a restorer on the Shen et al. protocol: every face × a seeded bank of kernels.

The protocol (spec §9): each sharp face is blurred with 10 kernels at each of the 8
sizes 13, 15, …, 27. The original kernels were never published, so the bank is drawn
from a seed anyone can regenerate (:func:`umsn_cli.blur.kernels.shen_bank`). Noise is
seeded per (face, kernel) too: the same seed always gives the same 80 blurry copies.
Scores follow the conventions in :mod:`umsn_cli.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from umsn_cli.blur import add_noise, blur_batch
from umsn_cli.blur.kernels import shen_bank
from umsn_cli.metrics import masked_psnr, psnr, ssim

Restore = Callable[[torch.Tensor], torch.Tensor]  # N×3×H×W in [0, 1] → same


@dataclass
class Scores:
    """Sums of per-image scores, so sets and sizes can be merged and averaged."""

    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        """Record one score; NaN (a class absent from the face) is left out."""
        if not np.isnan(value):
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums}


def evaluate_shen(
    restore: Restore,
    sharp: torch.Tensor,
    masks: torch.Tensor | None = None,
    *,
    seed: int = 0,
    noise: float = 0.01,
    per_size: int = 10,
    batch: int = 40,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, dict[str, float]]:
    """Mean scores per kernel size (and under key 0, over all sizes).

    ``sharp``: N×3×H×W faces in [0, 1]; ``masks``: their soft class masks, which add
    masked PSNR per class (``psnr_m1`` … ``psnr_m4``) for the restored and blurry faces.
    ``per_size`` < 10 uses only the first kernels of each size (a quicker subset).
    """
    bank = [(i, size, k) for i, size, k in shen_bank(seed) if i <= per_size]
    by_size: dict[int, Scores] = {}
    total = len(bank) * len(sharp)
    done = 0
    for index, size, kernel in bank:
        kernels = torch.from_numpy(kernel)[None]
        scores = by_size.setdefault(size, Scores())
        for start in range(0, len(sharp), batch):
            faces = sharp[start : start + batch]
            generator = torch.Generator().manual_seed(seed * 1_000_003 + size * 100 + index)
            blurry = blur_batch(faces, kernels.expand(len(faces), -1, -1))
            blurry = add_noise(blurry, noise, generator)
            with torch.no_grad():
                restored = restore(blurry).float().clamp(0, 1)
            for j in range(len(faces)):
                r, b, s = (t[j].permute(1, 2, 0).numpy() for t in (restored, blurry, faces))
                scores.add("psnr", psnr(r, s))
                scores.add("ssim", ssim(r, s))
                scores.add("psnr_blurry", psnr(b, s))
                scores.add("ssim_blurry", ssim(b, s))
                if masks is not None:
                    m = masks[start + j].numpy()
                    for c in range(m.shape[0]):
                        scores.add(f"psnr_m{c + 1}", masked_psnr(r, s, m[c]))
                        scores.add(f"psnr_blurry_m{c + 1}", masked_psnr(b, s, m[c]))
            done += len(faces)
            if progress:
                progress(done, total)
    result = {size: s.means() for size, s in sorted(by_size.items())}
    overall = Scores()
    for s in by_size.values():
        for k in s.sums:
            overall.sums[k] = overall.sums.get(k, 0.0) + s.sums[k]
            overall.counts[k] = overall.counts.get(k, 0) + s.counts[k]
    result[0] = overall.means()
    return result
