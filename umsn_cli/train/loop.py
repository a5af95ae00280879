"""The training loop, top to bottom: data, stage, optimiser, then step after step.

One process or several under ``torchrun`` (DistributedDataParallel: gloo on the CPU,
nccl on CUDA). Every rank draws its own batches (seed + rank); gradients are
averaged, so the ranks' weights stay identical. Rank 0 alone validates, logs and
writes files. ``last.pt`` is rewritten every ``ckpt_every`` steps with the optimiser
and RNG state, so a killed run resumes where it stopped (``--resume``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from umsn_cli.backends.cpu import has_native_bf16
from umsn_cli.blur.degrade import MIXES, DegradationMix, motion_bank, preview
from umsn_cli.errors import TrainingDiverged
from umsn_cli.faces import FaceSet, concat_faces, load_faces, load_prepared, split_holdout
from umsn_cli.files import write_text
from umsn_cli.images import save_rgb8
from umsn_cli.nn import get_config
from umsn_cli.train.checkpoint import (
    load_stage_weights,
    load_train_state,
    save_train_state,
    starting_weights,
)
from umsn_cli.train.config import TrainConfig
from umsn_cli.train.data import Sampler, mixing_weights
from umsn_cli.train.ema import WeightAverage
from umsn_cli.train.report import plot_curves
from umsn_cli.train.stages import GeneratorStage, Stage, build_stage

#: Called on rank 0 after every step with (step, steps, terms of the last log line).
Progress = Callable[[int, int, dict[str, float]], None]


@dataclass
class Rank:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Rank:
    """Join the torchrun process group when launched by torchrun; else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Rank()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Rank(dist.get_rank(), dist.get_world_size())


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def resolved_precision(precision: str, device: torch.device) -> str:
    """``auto`` as bf16 where ``device`` computes bf16 natively (a GPU that supports it, a
    CPU with AVX512-BF16 or AMX), else fp32: emulated bf16 is slower than fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if has_native_bf16() else "fp32"


def prepare_stage(cfg: TrainConfig, *, resume: bool = False) -> Stage:
    """Build the stage's networks and load what it starts from (S-Net, F-Nets, init).

    A resumed run takes every weight from its checkpoint, so those files are not read:
    they may have moved or gone since (a retired bundled file, a deleted run).
    """
    stage = build_stage(cfg, get_config(cfg.model))
    if isinstance(stage, GeneratorStage):
        stage.attach_teacher(cfg)  # never in a checkpoint: loaded on resume too
    if resume:
        return stage
    if cfg.init:
        init = starting_weights(cfg.init)
        # Exported weights also hold the S-Net a bnet stage does not train.
        parts = {name for name, _ in stage.named_children()}
        init = {k: v for k, v in init.items() if k.split(".")[0] in parts}
        load_stage_weights(stage, init, cfg.init, grow=True)
    stage.load_parts(cfg)
    return stage


def _batches(cfg: TrainConfig, rank: Rank) -> tuple[Sampler, FaceSet]:
    """The sampler of training batches (the faces, with ``--extra-data``, blurred by the
    run's mix and kernel bank), and the labelled faces held out for validation."""
    size = cfg.contract.size
    masks = Path(cfg.masks) if cfg.masks else None
    faces = load_faces(Path(cfg.data), masks, cfg.face_crop, size)
    train_faces, holdout = split_holdout(faces, cfg.holdout, cfg.seed)
    weights = None
    if cfg.extra_data:
        extra = [load_prepared(Path(d), size) for d in cfg.extra_data]
        if cfg.extra_share is not None:
            rest = sum(len(e) for e in extra)
            weights = mixing_weights(len(train_faces), rest, cfg.extra_share)
        train_faces = concat_faces([train_faces, *extra])
    large = None
    if cfg.large_size:  # the same faces at the larger size, the same ones held out
        large, _ = split_holdout(
            load_faces(Path(cfg.data), masks, cfg.face_crop, cfg.large_size), cfg.holdout, cfg.seed
        )
    mix = MIXES[cfg.degradation].with_noise_max(cfg.noise_max)
    kernels = motion_bank(mix, cfg.kernel_bank, cfg.seed)
    seed = cfg.seed * 1000 + rank.rank
    sampler = Sampler(train_faces, kernels, seed=seed, mix=mix, weights=weights, large=large,
                      large_share=cfg.large_share)  # fmt: skip
    return sampler, holdout


def _where_to_start(
    cfg: TrainConfig,
    stage: Stage,
    optimizer: torch.optim.Optimizer,
    sampler: Sampler,
    rank: Rank,
    resume: bool,
) -> tuple[list[dict[str, Any]], int, WeightAverage | None]:
    """The history, the first step and the weight average of the run: fresh, or (with
    ``resume``) everything ``OUT/last.pt`` holds loaded into the stage, the optimiser
    and this rank's sampler, so that the run goes on bit for bit."""
    history: list[dict[str, Any]] = []
    start = 0
    last = Path(cfg.out) / "last.pt"
    if resume:
        state = load_train_state(last, cfg)
        load_stage_weights(stage, state["stage"], str(last))
        optimizer.load_state_dict(state["optimizer"])
        sampler.generator.set_state(state["sampler_rng"][rank.rank % len(state["sampler_rng"])])
        history, start = state["history"], state["step"]
    average = None
    if cfg.ema > 0:
        average = WeightAverage(stage, cfg.ema)
        if resume:
            average.resume(state)
    return history, start, average


def _open_run_folder(
    cfg: TrainConfig,
    history: list[dict[str, Any]],
    start: int,
    average: WeightAverage | None,
    sampler: Sampler,
) -> None:
    """The run folder as a run starts: its settings, its log so far, what is off, and
    a picture of the degradations it trains on."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
    # Steps logged after the last checkpoint of a killed run are done again: the log
    # restarts from the checkpoint's history so that it never holds a step twice.
    write_text(out / "log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    if not cfg.perceptual_term:
        _log(out, history, {"kind": "note", "step": start, "note": "perceptual loss off"})
    if average is not None and average.updates == 0:
        note = f"validating the weight average (decay {cfg.ema:g}) from here"
        _log(out, history, {"kind": "note", "step": start, "note": note})
    picture = _preview(sampler.faces, sampler.mix, sampler.kernels)
    save_rgb8(out / "degradations.png", picture, overwrite=True)


def train(cfg: TrainConfig, resume: bool = False, progress: Progress | None = None) -> Path:
    """Run (or continue) training; returns the path of the final checkpoint."""
    out = Path(cfg.out)
    device = torch.device("cpu")
    if torch.cuda.is_available():  # one GPU per process: torchrun's LOCAL_RANK picks it
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    rank = init_distributed(device)
    torch.manual_seed(cfg.seed + rank.rank)

    sampler, holdout = _batches(cfg, rank)
    # Channels-last: 10–35% faster steps on the CPU (measured in the foundation issue).
    stage = prepare_stage(cfg, resume=resume).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(stage.trainable(), lr=cfg.lr)
    history, start, average = _where_to_start(cfg, stage, optimizer, sampler, rank, resume)
    model: torch.nn.Module = stage
    if rank.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(stage, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)

    val = stage.validation_set(cfg, holdout).to(device) if rank.main else None
    if rank.main:
        _open_run_folder(cfg, history, start, average, sampler)

    precision = resolved_precision(cfg.precision, device)
    if rank.main and precision != cfg.precision:
        note = f"precision auto: {precision} here"
        _log(out, history, {"kind": "note", "step": start, "note": note})
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    best = max(
        (h.get(stage.key_metric, -math.inf) for h in history if h["kind"] == "val"),
        default=-math.inf,
    )
    clock, window = time.perf_counter(), 0
    sums: dict[str, float] = {}
    guard = SpikeGuard()
    stage.train()
    step = start
    lr_scale = rollback_lr_scale(history)
    deadline = time.monotonic() + 60 * cfg.time_limit if cfg.time_limit > 0 else math.inf
    while step < cfg.steps:
        lr = learning_rate(cfg, step) * lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = stage.sample(sampler, cfg.batch_size)
        batch = batch.to(device)
        with autocast:
            loss, terms = model(batch)
        if _any_rank(guard.is_bad(float(loss.detach())), rank, device):
            # A NaN or a sudden spike: back to the last checkpoint, with new batches
            # (the sampler's RNG is not rewound), instead of dying or training on.
            value = float(loss.detach())
            step, history = _roll_back(
                out, cfg, stage, optimizer, average, step, value, guard, rank
            )
            lr_scale = rollback_lr_scale(history)
            clock, window, sums = time.perf_counter(), 0, {}
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(stage.trainable(), cfg.grad_clip)
            terms = {**terms, "grad_norm": norm.detach()}
        optimizer.step()
        if average is not None:
            average.update()

        window += 1
        for k, v in {"loss": loss.detach(), **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        step = done = step + 1
        # Out of time: this step ends the run as the last of --steps would (all ranks agree).
        final = done in (cfg.steps, cfg.stop_at) or _any_rank(
            time.monotonic() > deadline, rank, device
        )
        checkpoint = done % cfg.ckpt_every == 0 or final
        # Every rank's sampler state goes into last.pt (a collective: all ranks gather).
        rng_states = _sampler_states(sampler, rank, device) if checkpoint else None
        if not rank.main:
            if final:
                break
            continue
        if final and done < cfg.steps:
            why = "--stop-at" if done == cfg.stop_at else f"time limit of {cfg.time_limit:g} min"
            note = f"{why} reached; --resume continues"
            _log(out, history, {"kind": "note", "step": done, "note": note})
        if done % cfg.log_every == 0 or final:
            elapsed = time.perf_counter() - clock
            line = {k: v / window for k, v in sums.items()}
            line.update(kind="train", step=done, lr=lr,
                        steps_per_hour=3600 * window / elapsed)  # fmt: skip
            _log(out, history, line)
            if progress:
                progress(done, cfg.steps, line)
            clock, window, sums = time.perf_counter(), 0, {}
        if done % cfg.val_every == 0 or final:
            stage.eval()
            with average.applied() if average is not None else nullcontext():
                scores = stage.validate(val)
                save_rgb8(out / "samples.png", stage.pictures(val), overwrite=True)
            stage.train()
            _log(out, history, {"kind": "val", "step": done, **scores})
            plot_curves(history, out / "curves.png")
            if scores[stage.key_metric] > best:
                best = scores[stage.key_metric]
                save_train_state(
                    out / "best.pt", cfg, stage, optimizer, sampler, history, done,
                    average=average,
                )  # fmt: skip
        if checkpoint:
            guard.rollbacks = 0
            save_train_state(
                out / "last.pt", cfg, stage, optimizer, sampler, history, done, rng_states,
                average,
            )  # fmt: skip
        if final:
            break
    if rank.world > 1:
        _log_rank_checksums(stage, rank, out, history)
    return out / "last.pt"


def _preview(faces: FaceSet, mix: DegradationMix, kernels: torch.Tensor) -> np.ndarray:
    """``degradations.png``: samples of each blur kind of the run's mix on its own faces."""
    side = faces.images.shape[1]
    lo = round(side * (1 - faces.window) / 2)
    centre = faces.images[:6, lo : side - lo, lo : side - lo]
    sharp = torch.from_numpy(np.ascontiguousarray(centre)).permute(0, 3, 1, 2).float() / 255
    return preview(sharp, mix, kernels)


class SpikeGuard:
    """Tells a diverging step from a normal one: NaN/inf, or 4× the loss's running mean.

    The running mean (an exponential average over about 50 steps of good steps only)
    is trusted after 100 steps, and kept across roll-backs, so a run that diverges
    again straight after one is caught at once.
    """

    factor = 4.0
    settle = 100

    def __init__(self) -> None:
        self.mean: float | None = None
        self.seen = 0
        self.rollbacks = 0

    def is_bad(self, loss: float) -> bool:
        if not math.isfinite(loss):
            return True
        if self.mean is not None and self.seen >= self.settle and loss > self.factor * self.mean:
            return True
        self.mean = loss if self.mean is None else 0.98 * self.mean + 0.02 * loss
        self.seen += 1
        return False

    def reset(self) -> None:
        """After a roll-back: the running mean of the good steps stays the reference."""
        self.rollbacks += 1


#: Roll-backs in a row without a checkpoint in between before the run gives up.
MAX_ROLLBACKS = 5


def rollback_lr_scale(history: list[dict[str, Any]]) -> float:
    """Each roll-back halves the learning rate for the rest of the run.

    Counted from the log, so a resumed run keeps the rate it had: going back to the
    same weights at the same rate would mostly diverge the same way again.
    """
    return 0.5 ** sum(1 for h in history if h.get("kind") == "rollback")


def _roll_back(
    out: Path,
    cfg: TrainConfig,
    stage: Stage,
    optimizer: torch.optim.Optimizer,
    average: WeightAverage | None,
    step: int,
    loss: float,
    guard: SpikeGuard,
    rank: Rank,
) -> tuple[int, list[dict[str, Any]]]:
    """Load the last checkpoint's weights and optimiser; return its step and history."""
    path = out / "last.pt"
    if guard.rollbacks >= MAX_ROLLBACKS or not path.is_file():
        why = "no checkpoint to go back to" if not path.is_file() else "it keeps diverging"
        raise TrainingDiverged(
            f"training diverged at step {step + 1} (loss {loss:g}) and {why}; "
            "resume with a lower --lr"
        )
    state = load_train_state(path, cfg)
    load_stage_weights(stage, state["stage"], str(path))
    optimizer.load_state_dict(state["optimizer"])
    if average is not None:
        average.resume(state)
    guard.reset()
    history = state["history"]
    note = {"kind": "rollback", "step": state["step"], "at_step": step + 1, "loss": loss}
    if rank.main:
        write_text(out / "log.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        _log(out, history, note)
    return state["step"], history


def _any_rank(flag: bool, rank: Rank, device: torch.device) -> bool:
    """Whether any rank raised ``flag`` (all ranks must call this together)."""
    if rank.world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _sampler_states(sampler: Sampler, rank: Rank, device: torch.device) -> list[torch.Tensor]:
    """The sampler RNG state of every rank, in rank order (all ranks must call this)."""
    state = sampler.generator.get_state()
    if rank.world == 1:
        return [state]
    local = state.to(device)  # nccl gathers device tensors only
    gathered = [torch.empty_like(local) for _ in range(rank.world)]
    dist.all_gather(gathered, local)
    return [t.cpu() for t in gathered]


def _log_rank_checksums(stage: Stage, rank: Rank, out: Path, history: list[dict[str, Any]]) -> None:
    """Prove the ranks agree: every rank's weight checksum, logged by rank 0."""
    total = torch.stack([p.detach().double().sum() for p in stage.trainable()]).sum()
    gathered = [torch.zeros_like(total) for _ in range(rank.world)]
    dist.all_gather(gathered, total)
    if rank.main:
        sums = [float(t) for t in gathered]
        _log(out, history, {"kind": "ranks", "step": history[-1]["step"], "checksums": sums})
    dist.barrier()


def _log(out: Path, history: list[dict[str, Any]], line: dict[str, Any]) -> None:
    history.append(line)
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
