"""umsn: deblur face photos with UMSN (Yasarla, Perazzi and Patel, IEEE TIP 2020).

The public Python API is re-exported here lazily, so that ``import umsn_cli`` and
``umsn --help`` stay fast (torch is imported only when a model is needed).
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("umsn")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_LAZY = {
    "deblur": "umsn_cli.api",
    "restore": "umsn_cli.api",
    "segment": "umsn_cli.api",
    "load_restorer": "umsn_cli.restorer",
    "Restorer": "umsn_cli.restorer",
}

__all__ = ["Restorer", "__version__", "deblur", "load_restorer", "restore", "segment"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'umsn_cli' has no attribute {name!r}")
