"""``umsn train``: train S-Net, an F-Net, UMSN end to end, or the plain B-Net ablation.

Settings come from defaults, then ``--config FILE`` (JSON), then flags; the resolved
config is written to ``OUT/config.json`` and into every checkpoint, so a run can be
repeated with ``umsn train STAGE --config OUT/config.json``. Under torchrun
(``torchrun --nproc_per_node=N -m umsn_cli train …``) each process trains on its own
batches and gradients are averaged (DistributedDataParallel).
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from umsn_cli.choices import StageName, Storage
from umsn_cli.cli._common import (
    err_console,
    optional,
    out_console,
    with_parameters,
)
from umsn_cli.errors import UsageError
from umsn_cli.train.config import TrainConfig, option_names


def _command(
    stage: Annotated[
        StageName | None,
        typer.Argument(
            help="snet, fnet (with --class), umsn, or bnet (the plain B-Net ablation); "
            "none with --recipe."
        ),
    ] = None,
    recipe: Annotated[
        Path | None,
        optional("--recipe", help="Replay a recipe's chain of runs (recipes/*.toml), resuming."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="With --recipe: print the chain and stop.")
    ] = False,
    out: Annotated[
        Path | None, optional("--out", "-o", help="Run folder: checkpoints, log.jsonl, pictures.")
    ] = None,
    config: Annotated[Path | None, optional("--config", help="JSON settings (flags win).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue OUT/last.pt.")] = False,
    export: Annotated[
        Path | None, optional("--export", help="umsn/bnet: write the weights and manifest entry.")
    ] = None,
    tag: Annotated[str, typer.Option("--tag", help="The exported id's version.")] = "celebamask-v1",
    storage: Annotated[
        Storage, typer.Option("--storage", help="How --export stores the weights.")
    ] = Storage.float16,
    old_arch: Annotated[  # --arch's name before 0.2, still read so old commands run
        str | None, typer.Option("--model", "-m", hidden=True)
    ] = None,
) -> None:
    """The options of ``umsn train`` that are not training settings (those follow)."""


def _setting_options() -> list[inspect.Parameter]:
    """One option per :class:`TrainConfig` field that declares one; default None, so
    that a setting not given comes from --config, the resumed run or the field."""
    hints = typing.get_type_hints(TrainConfig)
    params = []
    for f in dataclasses.fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        meta = f.metadata
        names = option_names(f)
        kind = meta["choices"] or _cli_type(hints[f.name])
        if kind is bool:
            names = (f"{names[0]}/--no-{names[0][2:]}", *names[1:])
        help = meta["help"]
        if f.default not in (None, (), ""):
            shown = f.default if not isinstance(f.default, bool) else "on" if f.default else "off"
            help += f" [default: {shown}]"
        option = optional(*names, help=help)
        annotation = Annotated[kind | None, option]
        keyword = inspect.Parameter.KEYWORD_ONLY
        params.append(inspect.Parameter(f.name, keyword, default=None, annotation=annotation))
    return params


def _cli_type(hint: Any) -> Any:
    """``str | None`` → ``str``; ``tuple[str, ...]`` → ``list[str]`` (a repeatable option)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is tuple:
        return list[args[0]]  # type: ignore[valid-type]
    if len(args) == 1 and typing.get_origin(hint) is not None:
        return args[0]
    return hint


def train(**values: Any) -> None:
    """Train a UMSN stage on aligned faces, blurred on the fly."""
    config, resume, export, tag, storage, recipe, dry_run, old_arch = (
        values.pop(k)
        for k in ("config", "resume", "export", "tag", "storage", "recipe", "dry_run", "old_arch")
    )
    if old_arch is not None:
        if values["model"] is not None:
            raise UsageError("--model is the old name of --arch: give one of them")
        values["model"] = old_arch
    # Not given (None, or no --fnet/--extra-data at all): from --config, the run or the field.
    given = {k: v for k, v in values.items() if v is not None and v != []}
    flags = {k: v.value if isinstance(v, Enum) else v for k, v in given.items()}
    if recipe is not None:
        if flags or config or resume or export:
            raise UsageError("--recipe replays its own settings: give it alone (or --dry-run)")
        _replay(recipe, dry_run)
        return
    if dry_run:
        raise UsageError("--dry-run goes with --recipe FILE")
    if "stage" not in flags and not resume:  # resuming, the run knows its stage
        raise UsageError("name the stage to train (snet, fnet, umsn or bnet), or --recipe FILE")
    if "out" in flags:
        flags["out"] = str(flags["out"])
    # Here, not at the top: both read checkpoints with torch, which `umsn --help` never needs.
    from umsn_cli.train.resolve import resolve_run

    cfg = resolve_run(flags, config_file=config, resume=resume, export=export is not None)
    _train(cfg, resume)
    if export is not None:
        command = ["umsn", *sys.argv[1:]]
        _export(Path(cfg.out), export, tag, command, cfg.snet, storage.value)


def _replay(path: Path, dry_run: bool) -> None:
    """Every step of a recipe in order: the done ones skipped, a stopped one resumed."""
    from umsn_cli.train.recipe import CommandStep, ExportStep, command_line, load_recipe, status

    recipe = load_recipe(path)
    out_console.print(f"# {recipe.weights}: {len(recipe.steps)} steps")
    for i, step in enumerate(recipe.steps, start=1):
        out_console.print(f"{i}. [{status(step)}] {command_line(step)}", markup=False)
    if dry_run:
        return
    from umsn_cli.train.resolve import resolve_run

    for i, step in enumerate(recipe.steps, start=1):
        state = status(step)
        if state == "done":
            continue
        err_console.print(f"recipe step {i} of {len(recipe.steps)}: {state}")
        if isinstance(step, CommandStep):
            done = subprocess.run([sys.executable, "-m", "umsn_cli", *step.args], check=False)
            if done.returncode != 0 or not Path(step.makes).exists():
                raise UsageError(f"recipe step {i} failed: {command_line(step)}")
            continue
        if isinstance(step, ExportStep):
            command = ["umsn", "train", "--recipe", str(path)]
            _export(Path(step.run), Path(step.to), step.tag, command, step.snet, step.storage)
            continue
        resume = state != "to run"
        if step.resume and not resume:
            raise UsageError(f"recipe step {i} continues {step.out}, which no earlier step made")
        flags = {"stage": step.stage, "out": step.out, **step.settings}
        _train(resolve_run(flags, config_file=None, resume=resume, export=False), resume)


def _export(
    run: Path, dest: Path, tag: str, command: list[str], snet: str | None, storage: str
) -> None:
    """``--export`` of a run (or a recipe's export step): the weights file, then its line."""
    from umsn_cli.train.export import export_run

    entry = export_run(run, dest, tag, command, snet, storage)
    out_console.print(f"{dest} ({entry['size']} bytes, sha256 {entry['sha256'][:12]}…)")


def _train(cfg: TrainConfig, resume: bool) -> None:
    """One run, with a progress bar; prints the last checkpoint's path."""
    from umsn_cli.train.loop import train as run_training

    err_console.print(f"training {cfg.stage} ({cfg.model}) → {cfg.out}")
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(cfg.stage, total=cfg.steps, status="")

        def progress(done: int, total: int, line: dict[str, float]) -> None:
            status = f"loss {line['loss']:.4f}  {line['steps_per_hour']:.0f} steps/h"
            bar.update(task, completed=done, status=status)

        last = run_training(cfg, resume=resume, progress=progress)
    out_console.print(str(last))


with_parameters(
    train, [*inspect.signature(_command, eval_str=True).parameters.values(), *_setting_options()]
)
