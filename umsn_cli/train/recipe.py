"""Recipes: the whole chain of training runs that made a weights file, as a TOML file.

``recipes/<weights id>.toml`` holds, in order, every ``umsn train`` invocation and
the export that made those weights, so that ``umsn train --recipe FILE`` replays the
chain and a stopped replay goes on where it stopped. A recipe looks like::

    weights = "bnet-fast-xl.wild-v9"          # the id the chain ends in
    about = "what it is, and what it measured"

    [vars]                                    # {name} in any string below
    CELEB = "../shared/data/celebamask-mini"

    [settings.common]                         # settings shared by steps that `use` it
    data = "{CELEB}/train/images"

    [[step]]                                  # one `umsn train` invocation
    train = "bnet"                            # the stage
    out = "runs/v9/bnet"
    use = ["common"]
    settings = { steps = 6000, lr = 8e-5 }   # TrainConfig fields, as the flags name them
    stop_at = 3000                            # optional: stop there (--stop-at)
    resume = true                             # optional: continue `out` with new settings

    [[step]]                                  # another umsn command, e.g. the data
    umsn = ["prepare", "photos/", "-r", "-o", "data/wild"]
    makes = "data/wild/prepare.json"          # done when this exists

    [[step]]                                  # the export that makes the weights
    export = "runs/v9/bnet"
    to = "bnet-fast-xl.wild-v9.pt"
    tag = "wild-v9"
    storage = "int8"
    snet = "bnet-fast-xl"

A step that starts from another's weights names its run folder, or a published
weights id (``init = "bnet-fast-xl.wild-v9"``): ancestors are named, not dug out of
git history. Whether a step is done is read from its folder: a run whose ``last.pt``
reached the step's end is done, a run short of it is resumed, an export whose file
exists is done, and so is a command whose ``makes`` exists.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from umsn_cli.errors import UsageError
from umsn_cli.train.config import TrainConfig, option_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the CI runs 3.11
    import tomli as tomllib

_STEP_KEYS = {"train", "out", "use", "settings", "stop_at", "resume"}
_EXPORT_KEYS = {"export", "to", "tag", "storage", "snet"}
_COMMAND_KEYS = {"umsn", "makes"}


@dataclass(frozen=True)
class TrainStep:
    """One ``umsn train`` invocation."""

    stage: str
    out: str
    settings: dict[str, Any]  # TrainConfig fields; `stop_at` included
    resume: bool = False

    @property
    def end(self) -> int | None:
        """The step this invocation stops at (None: a resumed run's own --steps)."""
        return self.settings.get("stop_at") or self.settings.get("steps")


@dataclass(frozen=True)
class ExportStep:
    """``--export`` of a finished run: the weights file and its manifest entry."""

    run: str
    to: str
    tag: str
    storage: str
    snet: str | None


@dataclass(frozen=True)
class CommandStep:
    """Another ``umsn`` command (``prepare`` the training faces): done once ``makes`` exists."""

    args: tuple[str, ...]
    makes: str


Step = TrainStep | ExportStep | CommandStep


@dataclass(frozen=True)
class Recipe:
    weights: str
    about: str
    steps: tuple[Step, ...]


def load_recipe(path: Path) -> Recipe:
    """Read and check a recipe; every mistake is a :class:`UsageError` naming the step."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the recipe ({exc})") from exc
    if not isinstance(raw.get("weights"), str) or not raw.get("step"):
        raise UsageError(f'{path}: a recipe needs `weights = "<id>"` and [[step]] tables')
    variables = {k: str(v) for k, v in raw.get("vars", {}).items()}
    groups = _filled(raw.get("settings", {}), variables)
    steps = tuple(
        _step(_filled(step, variables), groups, f"{path}, step {i}")
        for i, step in enumerate(raw["step"], start=1)
    )
    return Recipe(raw["weights"], raw.get("about", ""), steps)


def _step(raw: dict[str, Any], groups: dict[str, Any], where: str) -> Step:
    if "umsn" in raw:
        _check_keys(raw, _COMMAND_KEYS, where)
        if not isinstance(raw["umsn"], list) or "makes" not in raw:
            raise UsageError(f"{where}: a command step needs `umsn = [arguments]` and `makes`")
        return CommandStep(tuple(str(a) for a in raw["umsn"]), raw["makes"])
    if "export" in raw:
        _check_keys(raw, _EXPORT_KEYS, where)
        if "to" not in raw or "tag" not in raw:
            raise UsageError(f"{where}: an export step needs `to` and `tag`")
        return ExportStep(raw["export"], raw["to"], raw["tag"], raw.get("storage", "float16"),
                          raw.get("snet"))  # fmt: skip
    _check_keys(raw, _STEP_KEYS, where)
    if "train" not in raw or "out" not in raw:
        raise UsageError(f'{where}: a step needs `train = "<stage>"` and `out`, or `export`')
    settings: dict[str, Any] = {}
    for name in raw.get("use", []):
        if name not in groups:
            raise UsageError(f"{where}: no [settings.{name}] to use")
        settings |= groups[name]
    settings |= raw.get("settings", {})
    settings["stop_at"] = raw.get("stop_at", 0)
    known = {f.name for f in fields(TrainConfig)} - {"stage", "out"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(f"{where}: unknown training settings {unknown}")
    resume = bool(raw.get("resume", False))
    if not resume:  # checked whole now, so a typo fails before hours of earlier steps
        config = TrainConfig.from_dict({"stage": raw["train"], "out": raw["out"], **settings})
        settings["steps"] = config.steps
    return TrainStep(raw["train"], raw["out"], settings, resume)


def _check_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown keys {unknown}; a step takes {sorted(allowed)}")


def _filled(value: Any, variables: dict[str, str]) -> Any:
    """``value`` with ``{name}`` replaced by ``variables`` in every string inside it."""
    if isinstance(value, str):
        try:
            return value.format_map(variables)
        except KeyError as exc:
            raise UsageError(f"recipe: {{{exc.args[0]}}} is not in [vars]") from exc
    if isinstance(value, list):
        return [_filled(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, variables) for k, v in value.items()}
    return value


def status(step: Step) -> str:
    """``done``, ``resume at step N`` or ``to run``, read from the step's folder or file."""
    if isinstance(step, ExportStep | CommandStep):
        made = step.to if isinstance(step, ExportStep) else step.makes
        return "done" if Path(made).exists() else "to run"
    last = Path(step.out) / "last.pt"
    if not last.is_file():
        return "to run"
    from umsn_cli.train.checkpoint import read_train_state

    state = read_train_state(last)
    end = step.end or state["config"]["steps"]
    return "done" if state["step"] >= end else f"resume at step {state['step']}"


def command_line(step: Step) -> str:
    """The ``umsn`` command line that runs ``step`` by hand."""
    if isinstance(step, CommandStep):
        return " ".join(["umsn", *step.args])
    if isinstance(step, ExportStep):
        snet = f" --snet {step.snet}" if step.snet else ""
        return (
            f"umsn train -o {step.run} --resume --export {step.to} --tag {step.tag} "
            f"--storage {step.storage}{snet}"
        )
    options = {f.name: f for f in fields(TrainConfig)}
    parts = ["umsn train", step.stage, "-o", step.out] + (["--resume"] if step.resume else [])
    for name, value in step.settings.items():
        field = options[name]
        if value == field.default and name != "steps":
            continue
        flag = option_names(field)[0]
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list | tuple):
            parts += [f"{flag} {v}" for v in value]
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)
