"""The umsn checkpoint format: weights plus the config that rebuilds their network.

A checkpoint is a ``torch.save``-d dict::

    {"format": "umsn-weights", "format_version": 1,
     "config": ModelConfig.to_dict(), "state_dict": {...tensors...}, "meta": {...}}

It holds only tensors and plain containers, so it loads with
``torch.load(weights_only=True)``: opening a checkpoint can never run code, even when
it came from a stranger. Because the config travels inside, a checkpoint always
rebuilds exactly the network it was trained as.

torch is imported inside the functions that need it, so that importing this module
(the weights cache does) stays cheap.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umsn_cli.errors import WeightsError, one_line
from umsn_cli.files import temporary_file

if TYPE_CHECKING:
    from umsn_cli.nn import UMSN

FORMAT = "umsn-weights"
FORMAT_VERSION = 1

_KEYS = {"format", "format_version", "config", "state_dict", "meta"}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: UMSN,
    meta: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> Path:
    """Write ``model`` as a checkpoint; a crash never leaves a half-written file
    (:func:`umsn_cli.files.temporary_file`: readers see the old file or the new one).

    ``half`` stores floating-point tensors as float16: half the file, for weights that
    ship inside the package. Loading casts them back to the model's float32; fp16 keeps
    more mantissa bits than the bf16 the CPU computes in, so results do not change.
    """
    import torch

    path = Path(path)

    def stored(t: torch.Tensor) -> torch.Tensor:
        # Detached CPU copies, so a model trained on a GPU loads anywhere.
        t = t.detach().cpu()
        return t.half() if half and t.is_floating_point() else t

    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": {k: stored(v) for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }
    with temporary_file(path) as tmp:
        torch.save(data, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[UMSN, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, in eval mode on the CPU, and its meta.

    Only ``torch.load(..., weights_only=True)`` touches the file. Anything that is not
    a well-formed umsn checkpoint raises :class:`WeightsError` with one line saying why.
    """
    from umsn_cli.nn import build_model
    from umsn_cli.nn.config import ModelConfig

    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightsError(
            f"{path} is a torch file but not a umsn checkpoint (no 'format': {FORMAT!r}); "
            "save models with umsn_cli.weights.save_checkpoint"
        )
    if data.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path} has checkpoint format_version {data.get('format_version')!r}, but this "
            f"umsn reads {FORMAT_VERSION}; upgrade umsn or re-save the checkpoint"
        )
    if set(data) != _KEYS:
        extra, missing = sorted(set(data) - _KEYS), sorted(_KEYS - set(data))
        raise WeightsError(
            f"{path} is a damaged umsn checkpoint (unexpected keys {extra}, missing {missing}); "
            "re-save it with save_checkpoint"
        )
    state_dict, meta = data["state_dict"], data["meta"]
    if not isinstance(state_dict, dict) or not isinstance(meta, dict):
        raise WeightsError(
            f"{path}: 'state_dict' and 'meta' must be dicts; re-save it with save_checkpoint"
        )
    try:
        config = ModelConfig.from_dict(data["config"])
        model = build_model(config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(
            f"{path} has an invalid model config ({one_line(exc)}); it was written by an "
            "incompatible umsn, re-save it with this version"
        ) from exc
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{path}: the weights do not fit config {config.name!r} ({one_line(exc)}); "
            "the file is damaged or was edited, re-export it"
        ) from exc
    return model.eval(), meta


def _read(path: Path) -> Any:
    """``torch.load`` in safe mode, with every failure turned into one actionable line."""
    import torch

    try:
        with warnings.catch_warnings():
            # Legacy (non-zip) pickles trigger a protocol notice that is noise to a user.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        problem = "does not exist" if missing else f"cannot be read ({exc.strerror or exc})"
        raise WeightsError(f"checkpoint {path} {problem}; check the path") from exc
    except pickle.UnpicklingError as exc:
        # Safe loading refuses any global it does not know: name it, it shows the intent.
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if refused:
            raise WeightsError(
                f"{path} is not a umsn checkpoint: it holds pickled Python objects "
                f"({refused[1]}) that safe loading refuses to run; do not load it otherwise"
            ) from exc
        raise _corrupt(path) from exc
    except Exception as exc:
        # torch reports a damaged file as RuntimeError, KeyError, EOFError, ... by format.
        raise _corrupt(path) from exc


def _corrupt(path: Path) -> WeightsError:
    return WeightsError(
        f"{path} is not a umsn checkpoint, or it is corrupt or truncated; "
        "download or export it again"
    )
