"""Finding backends (entry points) and choosing one (``--backend NAME|auto``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import torch

from umsn_cli.backends.base import Backend, check_precision, check_precision_on
from umsn_cli.errors import BackendUnavailableError, UsageError
from umsn_cli.nn import UMSN

ENTRY_POINT_GROUP = "umsn.backends"


def discover_backends() -> dict[str, type[Backend]]:
    """All registered backends by name, whether or not they can run here.

    A plugin that fails to import is reported as unavailable rather than breaking
    every command.
    """
    found: dict[str, type[Backend]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break umsn
            found[ep.name] = _broken_plugin(ep.name, f"{ep.value} failed to import: {exc}")
            continue
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            found[ep.name] = _broken_plugin(ep.name, f"{ep.value} is not a umsn Backend")
            continue
        found[ep.name] = cls
    return dict(sorted(found.items()))


def choose_backend(name: str, device: str | None = None, precision: str = "auto") -> type[Backend]:
    r"""The backend class for ``name``; "auto" is the available one of highest priority.

    A backend asked for by name that cannot run is an error, never a silent fallback.
    Malformed settings are :class:`UsageError`\ s rather than errors from inside torch.
    """
    check_settings(device, precision)
    cls = _pick(name, discover_backends(), device, precision)
    check_precision_on(device or cls.default_device(), precision)
    return cls


def auto_candidates(device: str | None = None, precision: str = "auto") -> list[type[Backend]]:
    """What ``auto`` chooses among: the backends that can run ``precision`` on the device
    the one of highest priority runs on, highest priority first."""
    usable = [c for c in discover_backends().values() if _runs(c, device, precision)]
    usable.sort(key=lambda c: -c.priority)
    if not usable:
        return []
    kind = torch.device(device or usable[0].default_device()).type
    return [c for c in usable if c.unavailable_reason(device or kind) is None]


def _runs(cls: type[Backend], device: str | None, precision: str) -> bool:
    return cls.unavailable_reason(device) is None and cls.precision_reason(precision) is None


def _pick(
    name: str, backends: dict[str, type[Backend]], device: str | None, precision: str
) -> type[Backend]:
    if name == "auto":
        usable = [c for c in backends.values() if _runs(c, device, precision)]
        if not usable:
            where = f" for device {device!r}" if device else ""
            raise BackendUnavailableError(
                f"no inference backend can run{where}; choose another --device (e.g. cpu)"
            )
        return max(usable, key=lambda c: c.priority)
    if name not in backends:
        known = ", ".join(["auto", *backends])
        raise UsageError(f"unknown backend {name!r}; choose one of: {known}")
    cls = backends[name]
    reason = cls.unavailable_reason(device)
    if reason is not None:
        raise BackendUnavailableError(
            f"backend {name!r} cannot run here: {reason}; choose another with --backend "
            "(or --backend auto)"
        )
    if (reason := cls.precision_reason(precision)) is not None:
        raise UsageError(reason)
    return cls


def check_settings(device: str | None, precision: str) -> None:
    check_precision(precision)
    if device is not None:
        try:
            torch.device(device)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise UsageError(
                f"{device!r} is not a torch device; give e.g. cpu, cuda or cuda:0"
            ) from exc


def create_backend(
    name: str,
    model: UMSN,
    *,
    weights_key: str,
    device: str | None = None,
    precision: str = "auto",
    cache_dir: Path | None = None,
) -> Backend:
    cls = choose_backend(name, device, precision)
    return cls(
        model, weights_key=weights_key, device=device, precision=precision, cache_dir=cache_dir
    )


def _broken_plugin(name: str, reason: str) -> type[Backend]:
    class Broken(Backend):
        @classmethod
        def unavailable_reason(cls, device: str | None = None) -> str | None:
            return reason

        def deblur(self, images):  # pragma: no cover - never constructed
            raise NotImplementedError

        def segment(self, images):  # pragma: no cover - never constructed
            raise NotImplementedError

    Broken.name = name
    Broken.priority = -1
    return Broken
