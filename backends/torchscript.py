"""TorchScript: the model traced and frozen in memory when the backend is built.

Freezing folds the weights into the graph as constants and lets the JIT fuse
operations; on some CPUs that runs faster than eager (AMX: 20 ms against 27 ms per
face), on others slower (AVX2 at batch 16: 2.9× slower), which is why ``--backend
auto`` takes eager on the CPU and this backend runs when it is named.

The graph is never kept on disk. A cached graph runs whatever it holds, and a folder
the user can write is a folder anyone with the user's rights can plant a graph in,
together with any record of its hash kept beside it; compiling instead takes about a
second (1.4 s for ``bnet-fast-xl`` on one busy AVX512 core, 0.2 s to load a cached
one), paid once per run, not per face.

``torch.jit`` is deprecated upstream in favour of ``torch.export``/``torch.compile``;
it still works in torch 2.x and its deprecation warnings are silenced here.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from umsn_cli.backends.cpu import CPUBackend
from umsn_cli.backends.eager import EagerBackend
from umsn_cli.nn import UMSN


class _Entry(nn.Module):
    """The two methods we trace: ``forward`` (deblur) and ``segment``."""

    def __init__(self, model: UMSN) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(images)

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.segment(images)


class TorchScriptBackend(EagerBackend):
    name = "torchscript"
    priority = 5  # below eager (cpu, 10): faster only on some CPUs, and it compiles first

    @classmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        kind = torch.device(device).type if device else "cpu"
        if kind not in ("cpu", "cuda"):
            return f"it runs on the CPU or CUDA GPUs, not on {device!r}"
        if kind == "cuda" and not torch.cuda.is_available():
            return "no CUDA GPU is visible to PyTorch (torch.cuda.is_available() is False)"
        return None

    @classmethod
    def auto_dtype(cls, device: torch.device) -> torch.dtype:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return CPUBackend.auto_dtype(device)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The frozen graph replaces the module; runtime autocast applies to it as to eager code.
        self.model = self._compile()  # type: ignore[assignment]

    def _compile(self) -> torch.jit.ScriptModule:
        size = self.model.config.input_size
        example = torch.rand(1, 3, size, size, device=self.device)
        example = example.contiguous(memory_format=torch.channels_last)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer notices
            traced = torch.jit.trace_module(
                _Entry(self.model).eval(),
                {"forward": example, "segment": example},
                check_trace=False,  # parity with eager is checked by the test suite
            )
            return torch.jit.freeze(traced, preserved_attrs=["segment"])
