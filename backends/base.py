"""The backend interface every plugin implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from umsn_cli.choices import Precision, values
from umsn_cli.errors import UsageError
from umsn_cli.nn import UMSN

#: What ``precision`` may be (``Precision``'s values).
PRECISIONS = values(Precision)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> None:
    """The one check of a ``--precision`` value (a :class:`UsageError` listing the choices)."""
    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")


def check_precision_on(device: str | torch.device, precision: str) -> None:
    """fp16 is a GPU format: a CPU emulates it, about 40× slower than fp32 (measured on
    this project's machines), so asking for it there is a mistake to say, not to run."""
    if precision == "fp16" and torch.device(device).type == "cpu":
        raise UsageError(
            "--precision fp16 is for GPUs: the CPU emulates it, about 40× slower; use auto, "
            "bf16 or fp32 there"
        )


@dataclass(frozen=True)
class BackendInfo:
    """What ran: printed for ``--backend auto`` and recorded in benchmark reports."""

    name: str
    device: str
    dtype: str

    def __str__(self) -> str:
        return f"backend={self.name} device={self.device} dtype={self.dtype}"


class Backend(ABC):
    """Runs a UMSN model on batches of images.

    Subclasses set :attr:`name` and :attr:`priority` (``--backend auto`` takes the
    available backend with the highest priority), say why they cannot run in
    :meth:`unavailable_reason`, and implement :meth:`deblur` and :meth:`segment`.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 0
    #: The ``--precision`` values it runs (a runtime without bf16 autocast lists fewer).
    precisions: ClassVar[tuple[str, ...]] = PRECISIONS

    def __init__(
        self,
        model: UMSN,
        *,
        weights_key: str,
        device: str | None = None,
        precision: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        """``weights_key`` identifies the weights (their sha256); ``cache_dir`` is a
        folder a caller may lend for compiled artefacts. umsn lends none: what a
        user-writable folder holds can be replaced by anyone with the user's rights,
        so its own TorchScript backend compiles in memory. A backend never picks a
        folder of its own."""
        check_precision(precision)
        if (reason := self.precision_reason(precision)) is not None:
            raise UsageError(reason)
        self.model = model.eval()
        self.weights_key = weights_key
        self.cache_dir = cache_dir
        self.device = torch.device(device or self.default_device())
        self.dtype = _DTYPES[precision] if precision != "auto" else self.auto_dtype(self.device)

    @classmethod
    def default_device(cls) -> str:
        return "cpu"

    @classmethod
    @abstractmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        """None if this backend can run (on ``device``), else a short reason."""

    @classmethod
    def auto_dtype(cls, device: torch.device) -> torch.dtype:
        return torch.float32

    @classmethod
    def precision_reason(cls, precision: str) -> str | None:
        """None if this backend runs ``precision``, else why not and what to ask for."""
        if precision in cls.precisions:
            return None
        allowed = " or ".join(cls.precisions)
        return (
            f"backend {cls.name!r} runs --precision {allowed} only; "
            "give one of those or another --backend"
        )

    @abstractmethod
    def deblur(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored N×3×H×W, class probabilities N×4×H×W), float32 on the CPU, in [0, 1]."""

    @abstractmethod
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities N×4×H×W, float32 on the CPU, in [0, 1]."""

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(self.name, str(self.device), str(self.dtype).removeprefix("torch."))
