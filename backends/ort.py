"""ONNX Runtime on the CPU: the model exported to ONNX in memory and run by a runtime
made for inference (the optional extra ``umsn[onnx]``).

ONNX Runtime fuses and reorders the graph for the CPU it finds, which on some CPUs
beats eager PyTorch in fp32. It has no bf16 autocast on the CPU, so it runs fp32 only:
where the CPU computes bf16 natively, eager bf16 is usually faster, and ``--backend
auto`` decides between them by timing both (:mod:`umsn_cli.backends.measure`).

The export uses torch's TorchScript-based exporter, deprecated upstream but about 9×
quicker than the ``torch.export`` one (3 s against 26 s for ``bnet-fast-xl`` on one
busy AVX512 core) with the same graph for these convolutional networks. As with the
TorchScript backend, the graph is built per run and never kept on disk, so nothing in
a user-writable folder is ever run.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from umsn_cli.backends.base import Backend
from umsn_cli.nn import UMSN

#: The ONNX operator set exported: supported by every onnxruntime since 1.12.
OPSET = 17
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


class _Segment(nn.Module):
    """The S-Net alone, as a graph of its own (exported only when asked for)."""

    def __init__(self, model: UMSN) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.segment(images)


class ONNXRuntimeBackend(Backend):
    name = "onnx"
    priority = 3  # below eager and TorchScript: auto takes it only by measuring it faster
    precisions: ClassVar[tuple[str, ...]] = ("auto", "fp32")

    @classmethod
    def unavailable_reason(cls, device: str | None = None) -> str | None:
        if device is not None and torch.device(device).type != "cpu":
            return f"it runs on the CPU only, not on {device!r}"
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            return f"{' and '.join(missing)} not installed; pip install 'umsn[onnx]'"
        return None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model.float().cpu()
        self._sessions: dict[str, object] = {"deblur": self._session(self.model, 2)}

    def _session(self, module: nn.Module, outputs: int):
        """An inference session for ``module``, exported for any batch size and image size."""
        import onnxruntime  # the optional extra; unavailable_reason checked it is there

        size = self.model.config.input_size
        example = torch.rand(2, 3, size, size)
        names = [f"out{i}" for i in range(outputs)]
        graph = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice
            torch.onnx.export(
                module, (example,), graph, dynamo=False, opset_version=OPSET,
                input_names=["images"], output_names=names,
                dynamic_axes={"images": _DYNAMIC} | dict.fromkeys(names, _DYNAMIC),
            )  # fmt: skip
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as torch: OMP_NUM_THREADS
        options.inter_op_num_threads = 1
        return onnxruntime.InferenceSession(
            graph.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def _run(self, entry: str, images: torch.Tensor) -> list[torch.Tensor]:
        if entry not in self._sessions:
            self._sessions[entry] = self._session(_Segment(self.model), 1)
        x = np.ascontiguousarray(images.detach().cpu().float().numpy())
        outputs = self._sessions[entry].run(None, {"images": x})  # type: ignore[attr-defined]
        return [torch.from_numpy(out) for out in outputs]

    def deblur(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored, masks = self._run("deblur", images)
        return restored, masks

    def segment(self, images: torch.Tensor) -> torch.Tensor:
        return self._run("segment", images)[0]
