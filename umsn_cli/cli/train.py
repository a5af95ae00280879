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
    reports_errors,
    with_parameters,
)
from umsn_cli.train.config import TrainConfig


def _command(
    stage: Annotated[
        StageName,
        typer.Argument(help="snet, fnet (with --class), umsn, or bnet (the plain B-Net ablation)."),
    ],
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
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        names = (flag,) if isinstance(flag, str) else flag
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


@reports_errors
def train(**values: Any) -> None:
    """Train a UMSN stage on aligned faces, blurred on the fly."""
    config, resume, export, tag, storage = (
        values.pop(k) for k in ("config", "resume", "export", "tag", "storage")
    )
    # Not given (None, or no --fnet/--extra-data at all): from --config, the run or the field.
    given = {k: v for k, v in values.items() if v is not None and v != []}
    flags = {k: v.value if isinstance(v, Enum) else v for k, v in given.items()}
    if "out" in flags:
        flags["out"] = str(flags["out"])
    # Here, not at the top: both read checkpoints with torch, which `umsn --help` never needs.
    from umsn_cli.train.loop import train as run_training
    from umsn_cli.train.resolve import resolve_run

    cfg = resolve_run(flags, config_file=config, resume=resume, export=export is not None)
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
    if export is not None:
        from umsn_cli.train.export import export_run

        command = ["umsn", *sys.argv[1:]]
        entry = export_run(Path(cfg.out), export, tag, command, cfg.snet, storage.value)
        out_console.print(f"{export} ({entry['size']} bytes, sha256 {entry['sha256'][:12]}…)")


with_parameters(
    train, [*inspect.signature(_command, eval_str=True).parameters.values(), *_setting_options()]
)
