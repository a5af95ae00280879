"""Which run a ``umsn train`` command line means, checked against its run folder.

Settings come from three places, later ones winning: the defaults, a ``--config``
file (or, resuming, the settings saved in the folder's ``last.pt``), then the flags.
Kept apart from :mod:`umsn_cli.train.config`, which holds the settings and their checks,
and :mod:`umsn_cli.train.checkpoint`, which reads and writes a run's checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from umsn_cli.errors import UsageError
from umsn_cli.train.checkpoint import read_train_state
from umsn_cli.train.config import GENERATOR_STAGES, TrainConfig


def resolve_run(
    flags: dict[str, Any], *, config_file: Path | None, resume: bool, export: bool
) -> TrainConfig:
    """The run a ``umsn train`` command line asks for: defaults, then ``config_file``
    (or, resuming, the settings saved in ``OUT/last.pt``), then ``flags``; refused with
    a :class:`UsageError` where the run folder or ``--export`` does not fit."""
    if "out" not in flags:
        raise UsageError("pass the run folder with --out DIR")
    last = Path(flags["out"]) / "last.pt"
    base: dict[str, Any] = {}
    if config_file is not None:
        base = TrainConfig.from_file(config_file).to_dict()
    elif resume and last.is_file():
        base = read_train_state(last)["config"]
    cfg = TrainConfig.from_dict({**base, **flags})
    if resume and not last.is_file():
        raise UsageError(f"nothing to resume: {last} does not exist")
    if not resume and last.is_file():
        raise UsageError(
            f"{cfg.out} already holds a run; add --resume to continue it, or pick another --out"
        )
    if export and cfg.stage not in GENERATOR_STAGES:
        raise UsageError("--export needs the umsn or bnet stage (it writes S-Net + generator)")
    if export and cfg.stage == "bnet" and not cfg.snet:
        raise UsageError(
            "--export of a bnet run needs the S-Net to ship with it: --snet (a run, file or "
            "weights id, e.g. bnet-fast-xl)"
        )
    return cfg
