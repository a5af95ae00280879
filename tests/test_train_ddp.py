"""``umsn train`` under torchrun: two CPU processes (gloo) that stay in step.

Each test starts real processes with ``python -m torch.distributed.run --standalone``
(rendezvous on 127.0.0.1), so the in-process socket guard of conftest does not apply.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from cli_helpers import assert_same_training_state
from test_train import make_dataset

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available",
)

FAST = [
    "--batch-size", "2", "--precision", "fp32", "--no-perceptual", "--kernel-bank", "20",
    "--holdout", "0", "--log-every", "1", "--val-every", "2", "--ckpt-every", "2",
]  # fmt: skip

# ``umsn`` with the conftest's tiny model registered: CONFIGS cannot be patched across
# processes, so each rank runs this script instead of ``-m umsn_cli``.
_TINY_UMSN = """
import sys
from umsn_cli.nn.config import CONFIGS, BNetConfig, FNetConfig, ModelConfig, SNetConfig
CONFIGS["test-tiny"] = ModelConfig(
    name="test-tiny",
    snet=SNetConfig(width=4, stem_growth=4, growth=4, quarter_blocks=1, full_growth=4),
    fnet=FNetConfig(width=4, stem_growth=4, dilated_blocks=1),
    bnet=BNetConfig(width=4, full_growth=4, fuse_width=4, dilated_blocks=1, head_width=4,
                    refine_width=4),
    confidence_width=4,
)
from umsn_cli.cli import main
sys.argv[0] = "umsn"
main()
"""


def torchrun(tmp_path: Path, target: list[str], *args: str | Path) -> None:
    """Run ``target`` (``-m umsn_cli`` or a script) on two ranks; fail with its stderr."""
    env = {
        **os.environ,
        "UMSN_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # gloo on the CPU, whatever the machine has
    }
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command = [*launch, *target, *map(str, args)]
    try:
        run = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish in 240 s; stderr:\n{exc.stderr}")
    assert run.returncode == 0, f"exit {run.returncode}; stderr:\n{run.stderr[-4000:]}"


def test_two_ranks_train_the_same_weights(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    torchrun(
        tmp_path, ["-m", "umsn_cli"], "train", "bnet", "--model", "umsn-lite",
        "--data", data["data"], "--val-data", data["val"], "--steps", "2", "--out", out, *FAST,
    )  # fmt: skip

    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    ranks = [line for line in lines if line["kind"] == "ranks"]
    assert len(ranks) == 1, lines
    a, b = ranks[0]["checksums"]
    assert a == b
    # Only rank 0 writes: one line per logged step, not one per process.
    assert [line["step"] for line in lines if line["kind"] == "train"] == [1, 2]
    assert [line["step"] for line in lines if line["kind"] == "val"] == [2]
    assert (out / "last.pt").is_file() and (out / "samples.png").is_file()
    # Every rank's sampler state is saved, so that a resumed run continues each of them.
    states = torch.load(out / "last.pt", weights_only=True)["sampler_rng"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])


def test_a_resumed_distributed_run_continues_every_rank_exactly(tmp_path: Path) -> None:
    """Each rank draws its own batches; resuming must restore each rank's sampler."""
    data = make_dataset(tmp_path / "data")
    script = tmp_path / "tiny_umsn.py"
    script.write_text(_TINY_UMSN)
    constant_lr = ["--lr", "1e-3", "--min-lr", "1e-3", "--warmup", "1"]
    common = [
        "train", "bnet", "--arch", "test-tiny", "--data", data["data"],
        "--val-data", data["val"], *FAST, *constant_lr,
    ]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    torchrun(tmp_path, [str(script)], *common, "--out", a, "--steps", "4")
    torchrun(tmp_path, [str(script)], *common, "--out", b, "--steps", "2")
    torchrun(tmp_path, [str(script)], *common, "--out", b, "--steps", "4", "--resume")

    assert_same_training_state(a, b, step=4)
