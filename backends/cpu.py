"""The CPU fallback: eager PyTorch, bf16 autocast where the CPU computes bf16 natively.

With the bundled umsn-lite weights, bf16 autocast scores the same as fp32 (1600
Shen-protocol images of the val faces: 24.828 against 24.827 dB, every image within
±0.05 dB) and on a 2-core AMX machine runs 1.2–2.3× faster (torchscript, batch 16,
128²: 41–48 against 60–63 ms per face; see docs/history.md). Without native bf16
(AVX512-BF16 or AMX-BF16) PyTorch emulates it, slower than fp32, so there "auto" picks
fp32. ``--precision fp32`` always opts out.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from umsn_cli.backends.eager import EagerBackend

#: CPU flags (as Linux names them) that mean bf16 arithmetic in hardware.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists a bf16 instruction set on its ``flags`` lines."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and NATIVE_BF16_FLAGS & set(value.split()):
            return True
    return False


@functools.cache
def cpuinfo_fields() -> dict[str, str]:
    """The first processor's /proc/cpuinfo fields ("model name", "flags", …): what
    decides which backend and precision run fastest; empty where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


@functools.cache
def has_native_bf16() -> bool:
    """This CPU's answer; False where there is no /proc/cpuinfo (macOS, Windows)."""
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


class CPUBackend(EagerBackend):
    name = "cpu"
    priority = 10

    @classmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        if device is not None and torch.device(device).type != "cpu":
            return f"it runs on the CPU only, not on {device!r}"
        return None

    @classmethod
    def auto_dtype(cls, device: torch.device) -> torch.dtype:
        return torch.bfloat16 if has_native_bf16() else torch.float32
