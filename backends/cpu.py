"""The CPU fallback: eager PyTorch, fp32 by default, bf16 autocast on request.

Measured on a 2-core AVX512-BF16 machine (umsn-lite, 128², batch 16): bf16 autocast
is about twice as fast as fp32, but with random weights its output differs from fp32
by up to 0.045 (mean 0.005) on a [0, 1] scale, over the 2e-2 we accept as "equal
quality" (the InstanceNorms of the generator amplify bf16 rounding). So "auto" stays
fp32 until trained weights show bf16 within that bound; ``--precision bf16`` opts in.
"""

from __future__ import annotations

import torch

from umsn_cli.backends.eager import EagerBackend


class CPUBackend(EagerBackend):
    name = "cpu"
    priority = 10

    @classmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        if device is not None and torch.device(device).type != "cpu":
            return f"it runs on the CPU only, not on {device!r}"
        return None
