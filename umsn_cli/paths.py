"""Where umsn keeps files between runs.

Everything lives under one cache root (platformdirs' user cache dir, or
``$UMSN_CACHE``) so that one variable moves or isolates all of it: downloaded and
imported weights, and which backend ``--backend auto`` measured fastest. Compiled
TorchScript graphs are no longer kept there (see :mod:`umsn_cli.backends.torchscript`);
``umsn weights verify`` removes those that older versions left.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    override = os.environ.get("UMSN_CACHE")
    return Path(override).expanduser() if override else Path(user_cache_dir("umsn"))


def graph_cache_dir() -> Path:
    """Where umsn up to 0.1.0.dev0 kept compiled TorchScript graphs (now only cleaned)."""
    return cache_root() / "torchscript"


def choices_file() -> Path:
    """Which backend ``--backend auto`` measured fastest, per machine, model and batch."""
    return cache_root() / "backend-choices.json"
