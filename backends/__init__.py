"""Inference backends: one interface, discovered as plugins.

A backend takes a built :class:`~umsn_cli.nn.UMSN` model and runs tensors through
it (N×3×H×W float in [0, 1]); it never reads files or parses flags. Backends are
found through the entry-point group ``umsn.backends`` (the built-in ones are declared
in umsn's own ``pyproject.toml``), so a new backend is a new module plus one
entry-point line, and a third-party package can add its own without touching umsn.

This folder is installed as ``umsn_cli.backends``.
"""

from __future__ import annotations

from umsn_cli.backends.base import Backend, BackendInfo
from umsn_cli.backends.registry import ENTRY_POINT_GROUP, create_backend, discover_backends

__all__ = ["ENTRY_POINT_GROUP", "Backend", "BackendInfo", "create_backend", "discover_backends"]
