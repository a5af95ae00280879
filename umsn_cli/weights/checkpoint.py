"""The umsn checkpoint format: weights plus the config that rebuilds their network.

A checkpoint is a ``torch.save``-d dict::

    {"format": "umsn-weights", "format_version": 1,
     "config": ModelConfig.to_dict(), "state_dict": {...tensors...}, "meta": {...}}

Weights that ship may be stored smaller (``storage``): float16, or int8 with one
float32 scale per output channel of each weight matrix or convolution (the key plus
``SCALE_SUFFIX``; biases and other vectors stay float16). Files with int8 tensors are
``format_version`` 2, so an older umsn refuses them with "upgrade umsn" instead of
loading integers as weights; loading turns everything back into float32.

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

from umsn_cli.choices import Storage
from umsn_cli.errors import WeightsError, one_line
from umsn_cli.files import temporary_file

if TYPE_CHECKING:
    import torch

    from umsn_cli.nn import UMSN

FORMAT = "umsn-weights"
FORMAT_VERSION = 1
#: The version of files holding int8 tensors; this umsn reads both.
QUANTIZED_FORMAT_VERSION = 2
SCALE_SUFFIX = ":scale"
#: What ``save_checkpoint(storage=...)`` accepts: float32, and the ways an export may
#: store the weights it ships (:class:`umsn_cli.choices.Storage`).
STORAGES = ("float32", *(s.value for s in Storage))

_KEYS = {"format", "format_version", "config", "state_dict", "meta"}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: UMSN,
    meta: dict[str, Any] | None = None,
    *,
    storage: str = "float32",
) -> Path:
    """Write ``model`` as a checkpoint; a crash never leaves a half-written file
    (:func:`umsn_cli.files.temporary_file`: readers see the old file or the new one).

    ``storage`` "float16" halves the file, for weights that ship inside the package:
    fp16 keeps more mantissa bits than the bf16 the CPU computes in, so results do not
    change. "int8" quarters it: each output channel of a weight is scaled to ±127, an
    error of at most half a step of that channel's largest weight (measured on a
    ``bnet-fast-large`` network: −0.005 dB PSNR); it makes room for a deeper network in
    the bundle.
    """
    import torch

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, not {storage!r}")
    path = Path(path)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        # Detached CPU copies, so a model trained on a GPU loads anywhere.
        t = tensor.detach().cpu()
        if storage == "int8" and t.is_floating_point() and t.dim() >= 2:
            state[key], state[key + SCALE_SUFFIX] = _quantized(t)
        elif storage != "float32" and t.is_floating_point():
            state[key] = t.half()
        else:
            state[key] = t
    quantized = any(k.endswith(SCALE_SUFFIX) for k in state)
    data = {
        "format": FORMAT,
        "format_version": QUANTIZED_FORMAT_VERSION if quantized else FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": state,
        "meta": dict(meta or {}),
    }
    with temporary_file(path) as tmp:
        torch.save(data, tmp)
    return path


def _quantized(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel (dim 0): (int8 values, float32 scales)."""
    import torch

    t = t.float()
    scale = t.abs().amax(dim=tuple(range(1, t.dim())), keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel
    return torch.round(t / scale).clamp(-127, 127).to(torch.int8), scale


def _dequantized(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The state dict with every int8 tensor times its scale, in float32.

    ``load_state_dict`` would copy unscaled integers into the weights without a word,
    so an int8 tensor without its scale (or a scale without its tensor) is damage.
    """
    import torch

    out = {k: v for k, v in state.items() if not k.endswith(SCALE_SUFFIX)}
    scales = {k.removesuffix(SCALE_SUFFIX): v for k, v in state.items() if k.endswith(SCALE_SUFFIX)}
    quantized = {k for k, v in out.items() if getattr(v, "dtype", None) == torch.int8}
    unscaled = {
        k for k, v in scales.items() if not (isinstance(v, torch.Tensor) and v.is_floating_point())
    }
    unmatched = (quantized ^ set(scales)) | unscaled
    if unmatched:
        raise WeightsError(
            f"{path} is a damaged umsn checkpoint ({min(unmatched)}: int8 values and scales "
            "do not match); re-export it"
        )
    for key, scale in scales.items():
        out[key] = out[key].float() * scale
    return out


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
    readable = (FORMAT_VERSION, QUANTIZED_FORMAT_VERSION)
    if data.get("format_version") not in readable:
        raise WeightsError(
            f"{path} has checkpoint format_version {data.get('format_version')!r}, but this "
            f"umsn reads {' and '.join(map(str, readable))}; upgrade umsn or re-save the "
            "checkpoint"
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
        model.load_state_dict(_dequantized(state_dict, path), strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{path}: the weights do not fit config {config.name!r} ({one_line(exc)}); "
            "the file is damaged or was edited, re-export it"
        ) from exc
    return model.eval(), meta


def _read(path: Path) -> Any:
    """``torch.load`` in safe mode, with every failure turned into one actionable line."""
    try:
        return load_weights_only(path)
    except WeightsError:
        raise
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        problem = "does not exist" if missing else f"cannot be read ({exc.strerror or exc})"
        raise WeightsError(f"checkpoint {path} {problem}; check the path") from exc
    except Exception as exc:
        # torch reports a damaged file as RuntimeError, KeyError, EOFError, ... by format.
        raise _corrupt(path) from exc


def load_weights_only(path: str | os.PathLike[str]) -> Any:
    """``torch.load(weights_only=True)`` for every file umsn reads (weights and training
    checkpoints): a file that would import and call Python code raises a
    :class:`WeightsError` saying so; other failures propagate as torch raised them."""
    import torch

    try:
        with warnings.catch_warnings():
            # Legacy (non-zip) pickles trigger a protocol notice that is noise to a user.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_code(path, exc)
        if refused:
            raise refused from exc
        raise


def _refused_code(path: str | os.PathLike[str], exc: BaseException) -> WeightsError | None:
    """The error for a file that safe loading refused because it calls Python code (a
    pickle that imports and calls something), else None: damage stays damage.

    torch words the refusal with advice to load the file unsafely; a user needs to hear
    the opposite: the file is not weights, nothing in it ran, and it should stay unloaded.
    """
    text = str(exc)
    if "Weights only load failed" not in text and "Unsupported global" not in text:
        return None
    named = re.search(r"GLOBAL (\S+)", text)  # what it would have called, e.g. posix.system
    if named is None and not _pickle_calls(Path(path)):
        return None
    shown = f" ({named[1]})" if named else ""
    return WeightsError(
        f"{path} holds Python code, not only weights{shown}: it was refused and nothing in "
        "it ran; do not load it with other tools unless you trust where it came from"
    )


#: Modules a weights pickle may import from: the ones torch's own files name.
_DATA_MODULES = {"torch", "collections", "_codecs", "numpy"}


def _pickle_calls(path: Path) -> bool:
    """Whether the pickle in ``path`` (raw, or a torch zip's data.pkl) imports anything
    outside the modules weights files use, read with ``pickletools``, which parses the
    opcodes and runs none of them."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                data = archive.read(name)
        else:
            data = path.read_bytes()
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name == "GLOBAL":  # arg: "module name"
                module = str(arg).split(" ")[0]
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:  # the last two strings
                module = strings[-2]
            else:
                continue
            if module.split(".")[0] not in _DATA_MODULES:
                return True
    except Exception:  # not a readable pickle at all: damage, not code
        return False
    return False


def _corrupt(path: Path) -> WeightsError:
    return WeightsError(
        f"{path} is not a umsn checkpoint, or it is corrupt or truncated; "
        "download or export it again"
    )
