"""An exponential moving average of the weights being trained (Polyak averaging).

At the learning rates of a long cosine schedule the weights of any one step jitter
around where the loss is low; their running average sits nearer it. So validation,
``best.pt`` and ``--export`` use the average, while the optimiser keeps stepping the raw
weights (``last.pt`` holds both, and a resumed run continues both exactly).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The average of ``module``'s trainable parameters, updated after each step.

    The decay warms up as ``(1 + n) / (10 + n)`` over the first updates (capped at
    ``decay``), so the average of a young run is not dominated by its random start.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.decay = decay
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.restart()

    def restart(self) -> None:
        """Average from the module's current weights on."""
        self.average = [p.detach().float().clone() for p in self.params]
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        raw = [p.detach().float() for p in self.params]
        torch._foreach_lerp_(self.average, raw, 1 - decay)
        self.updates += 1

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights in the module for the block; the raw ones back after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.average, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(self.params, raw, strict=True):
                    p.copy_(r)

    def state_dict(self) -> dict[str, Any]:
        weights = dict(zip(self.names, (a.clone() for a in self.average), strict=True))
        return {"decay": self.decay, "updates": self.updates, "weights": weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue a saved average (its update count; the decay is this run's)."""
        weights = state["weights"]
        if sorted(weights) != sorted(self.names):
            raise ValueError("the saved weight average does not fit these parameters")
        self.average = [weights[n].float().clone() for n in self.names]
        self.updates = int(state["updates"])

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Continue the average a training checkpoint saved; one from before averaging
        began (none saved) starts a new one from the weights just loaded."""
        if checkpoint.get("ema"):
            self.load_state_dict(checkpoint["ema"])
        else:
            self.restart()
