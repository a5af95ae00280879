"""Turn a finished ``umsn`` training run into a weights file and its manifest entry.

The weights file is the ordinary inference checkpoint (S-Net + generator, no CN, no
F-Net image heads needed at inference but kept so the state dict stays complete);
the entry is the JSON object to paste into ``weights_manifest.json``, with the hash,
size, the validation metrics of the run and the command that measured them.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from umsn_cli.errors import UsageError
from umsn_cli.files import sha256_file, write_text
from umsn_cli.nn import UMSN, count_parameters, get_config
from umsn_cli.nn.config import plain
from umsn_cli.train.checkpoint import read_train_state, starting_weights, validated_weights
from umsn_cli.train.config import GENERATOR_STAGES
from umsn_cli.weights.checkpoint import save_checkpoint

DATA_TERMS = (
    "Trained on CelebAMask-HQ faces (celebamask-mini): non-commercial research use only, "
    "like the data; no redistribution of the data."
)


def data_terms(extra_data: list[str] | tuple[str, ...]) -> str:
    """What the weights' data terms are: CelebAMask-HQ's, and those of any prepared
    folders the run trained on as well (named, since their source decides)."""
    if not extra_data:
        return DATA_TERMS
    return (
        "Trained on CelebAMask-HQ faces (celebamask-mini) and on the prepared faces of "
        f"{', '.join(extra_data)}: non-commercial research use only, like CelebAMask-HQ, "
        "and the terms of those sources too; no redistribution of the data."
    )


def export_run(
    run: Path,
    dest: Path,
    tag: str,
    command: list[str] | None = None,
    snet: str | None = None,
    storage: str = "float16",
) -> dict[str, Any]:
    """Write ``dest`` (weights) and ``dest`` with ``.json`` (manifest entry); return the entry.

    ``snet``: for a bnet run, the S-Net checkpoint to ship with it (default: the run's
    ``snet`` setting). ``storage``: float16 or int8 (see
    :func:`umsn_cli.weights.save_checkpoint`); weights that ship are never float32.
    """
    state = read_train_state(run / "last.pt" if run.is_dir() else run)
    cfg = state["config"]
    if cfg["stage"] not in GENERATOR_STAGES:
        raise UsageError(
            f"{run}: only umsn- and bnet-stage runs can be exported (this is a {cfg['stage']} run)"
        )
    config = get_config(cfg["model"])
    run_weights = validated_weights(state)
    weights = {k: v for k, v in run_weights.items() if k.startswith(("snet.", "generator."))}
    if cfg["stage"] == "bnet":
        # The plain B-Net deblurs without masks; photo mode still needs S-Net's.
        snet = snet or cfg.get("snet")
        if not snet:
            raise UsageError(
                "exporting a bnet run needs the S-Net that ships with it: pass --snet (a run, "
                "file or weights id, e.g. bnet-fast-xl)"
            )
        config = plain(config)
        snet_state = starting_weights(snet)
        weights |= {k: v for k, v in snet_state.items() if k.startswith("snet.")}
    model = UMSN(config)
    model.load_state_dict(weights)
    val = [h for h in state["history"] if h.get("kind") == "val"]
    meta = {"training": cfg, "step": state["step"], "validation": val[-1] if val else {},
            "storage": storage}  # fmt: skip
    save_checkpoint(dest, model, meta, storage=storage)

    config_file = run / "config.json" if run.is_dir() else run.parent / "config.json"
    measured = (
        shlex.join(command) if command else f"umsn train {cfg['stage']} --config {config_file}"
    )
    dataset = "val/ of celebamask-mini: 1 seeded Shen-size kernel per face, noise σ=" + str(
        cfg["val_noise"]
    )
    metrics = []
    if val:
        for name in ("psnr", "ssim", "psnr_blurry", "ssim_blurry"):
            if name in val[-1]:
                metrics.append(
                    {
                        "name": name,
                        "value": round(val[-1][name], 4),
                        "dataset": dataset,
                        "command": measured,
                    }
                )
    entry = {
        "id": f"{config.name}.{tag}",
        "task": "deblur",
        "architecture": "umsn",
        "config": config.name,
        "file": f"{config.name}.{tag}.pt",
        "sha256": sha256_file(dest),
        "size": dest.stat().st_size,
        "num_params": count_parameters(model),
        "urls": [],
        "input": {
            "size": [config.input.size] * 2,
            "framing": config.input.describe(),
            "value_range": list(config.input.value_range),
        },
        "metrics": metrics,
        "license": "Apache-2.0 (weights: see data_terms)",
        "data_terms": data_terms(cfg.get("extra_data") or ()),
        "training_config": json.dumps(cfg, sort_keys=True),
    }
    write_text(dest.with_suffix(".json"), json.dumps(entry, indent=2) + "\n")
    return entry
