"""Eager PyTorch on an NVIDIA GPU, with bf16 (or fp16 on older GPUs) autocast."""

from __future__ import annotations

import torch

from umsn_cli.backends.eager import EagerBackend


class CUDABackend(EagerBackend):
    name = "cuda"
    priority = 100  # a GPU, when there is one, beats every CPU backend

    @classmethod
    def default_device(cls) -> str:
        return "cuda"

    @classmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        if device is not None and torch.device(device).type != "cuda":
            return f"it runs on CUDA GPUs only, not on {device!r}"
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
        index = torch.device(device).index if device else None
        if index is not None and index >= torch.cuda.device_count():
            return f"there is no GPU {index} (found {torch.cuda.device_count()})"
        return None

    @classmethod
    def auto_dtype(cls, device: torch.device) -> torch.dtype:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
