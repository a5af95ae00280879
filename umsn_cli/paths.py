"""Where umsn keeps files between runs.

Everything lives under one cache root (platformdirs' user cache dir, or
``$UMSN_CACHE``) so that one variable moves or isolates all of it: downloaded and
imported weights, and compiled TorchScript graphs.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    override = os.environ.get("UMSN_CACHE")
    return Path(override).expanduser() if override else Path(user_cache_dir("umsn"))


def graph_cache_dir() -> Path:
    """Where compiled TorchScript graphs are kept (handed to the backend that makes them)."""
    return cache_root() / "torchscript"
