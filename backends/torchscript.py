"""TorchScript: the model traced and frozen once per weights, then cached on disk.

Freezing folds the weights into the graph as constants and lets the JIT fuse
operations; on a 2-core CPU that made umsn-lite about 30% faster than eager in
fp32 (see the CHANGELOG for the figures). Compiling takes a few seconds, so the
frozen graph is saved in the cache folder the caller lends (``cache_dir``; umsn's
is :func:`umsn_cli.paths.graph_cache_dir`), keyed by the weights' sha256, the torch
version and the device type, and reused by later runs. Without a folder it is
compiled on every construction.

``torch.jit`` is deprecated upstream in favour of ``torch.export``/``torch.compile``;
it still works in torch 2.x and its deprecation warnings are silenced here.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from umsn_cli.backends.cpu import CPUBackend
from umsn_cli.backends.eager import EagerBackend
from umsn_cli.files import sha256_file, temporary_file, write_text
from umsn_cli.nn import UMSN

log = logging.getLogger(__name__)


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
    priority = 20  # faster than eager on the CPU

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
        self.model = self._load_or_compile()  # type: ignore[assignment]

    @property
    def cache_path(self) -> Path | None:
        """The compiled graph's file in the lent cache folder (None without one)."""
        if self.cache_dir is None:
            return None
        version = torch.__version__.replace("+", "_")
        return self.cache_dir / f"{self.weights_key[:32]}-{self.device.type}-torch{version}.pt"

    def _load_or_compile(self) -> torch.jit.ScriptModule:
        path = self.cache_path
        if path is None:
            return self._compile()
        if path.is_file() and not cache_is_intact(path):
            log.info("compiled model cache %s does not match its hash; compiling afresh", path)
            path.unlink(missing_ok=True)
        if path.is_file():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return torch.jit.load(str(path), map_location=self.device)
            except (RuntimeError, OSError, ValueError):
                path.unlink(missing_ok=True)  # stale or corrupt: compile afresh
        compiled = self._compile()
        try:
            _save_atomically(compiled, path)
        except OSError as exc:  # the cache only saves time: without it, compile each run
            log.warning(
                "cannot cache the compiled model in %s (%s); it is compiled again on every "
                "run: set UMSN_CACHE to a writable folder",
                path.parent,
                exc.strerror or exc,
            )
        return compiled

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


def _hash_file(path: Path) -> Path:
    """The sidecar holding a cached graph's sha256 and size, written after the graph."""
    return path.with_name(path.name + ".sha256")


def cache_is_intact(path: Path) -> bool:
    """Whether a cached graph still has the hash and size recorded when it was saved.

    A flipped byte inside a TorchScript archive can load fine and compute something
    else, so loading alone proves nothing; a graph without its record is not trusted.
    """
    try:
        digest, size = _hash_file(path).read_text().split()
        return path.stat().st_size == int(size) and sha256_file(path) == digest
    except (OSError, ValueError):
        return False


def cached_graphs(folder: Path) -> list[Path]:
    """Every compiled graph in a cache folder (for ``umsn weights verify``)."""
    return sorted(folder.glob("*.pt")) if folder.is_dir() else []


def _save_atomically(module: torch.jit.ScriptModule, path: Path) -> None:
    """The graph, then its hash record (a graph without a record is never trusted)."""
    with temporary_file(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(module, str(tmp))
        record = f"{sha256_file(tmp)} {tmp.stat().st_size}\n"
    write_text(_hash_file(path), record)
