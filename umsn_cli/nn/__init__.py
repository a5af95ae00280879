"""The UMSN networks (docs/method.md): plain PyTorch modules, no I/O.

The configurations are plain data and import no torch, so that what only reads them
(``umsn weights list``, the manifest) starts in a fraction of a second; the modules
are imported on first use of their names.
"""

from importlib import import_module
from typing import Any

from umsn_cli.nn.config import CONFIGS, BNetConfig, FNetConfig, ModelConfig, SNetConfig, get_config

#: The torch modules this package exports, by the module that defines each.
_LAZY = {
    "BNet": "bnet",
    "ConfidenceNet": "confidence",
    "FNet": "fnet",
    "Generator": "generator",
    "NUM_CLASSES": "snet",
    "SNet": "snet",
    "UMSN": "umsn",
    "build_model": "umsn",
    "count_parameters": "umsn",
    "inference_parameters": "umsn",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"umsn_cli.nn.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONFIGS",
    "NUM_CLASSES",
    "UMSN",
    "BNet",
    "BNetConfig",
    "ConfidenceNet",
    "FNet",
    "FNetConfig",
    "Generator",
    "ModelConfig",
    "SNet",
    "SNetConfig",
    "build_model",
    "count_parameters",
    "get_config",
    "inference_parameters",
]
