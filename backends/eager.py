"""Eager PyTorch execution with optional autocast: shared by the cpu and cuda backends."""

from __future__ import annotations

from collections.abc import Callable

import torch

from umsn_cli.backends.base import Backend


class EagerBackend(Backend):
    """Runs the model as it is, under ``torch.autocast`` when a lower precision is chosen.

    Autocast (rather than casting the weights) keeps normalisation and reductions in
    fp32, which is what keeps bf16 output within 2e-2 of fp32.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model.to(self.device)

    def _run(self, fn: Callable[[torch.Tensor], object], images: torch.Tensor):
        x = images.to(self.device, torch.float32)
        lower = self.dtype != torch.float32
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=self.dtype, enabled=lower),
        ):
            return fn(x)

    def deblur(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored, masks = self._run(self.model, images)
        return restored.float().cpu(), masks.float().cpu()

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        return self._run(self.model.segment, images).float().cpu()
