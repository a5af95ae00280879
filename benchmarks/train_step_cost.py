"""What one training step of each stage costs on this machine, in steps per hour.

The step is the real one from ``umsn_cli.train``: a batch drawn by the sampler
(augmentation, a bank kernel per face, noise), the stage's forward and loss (for
``umsn``: frozen S-Net, generator, confidence network, L_c, half-scale, gradient and
optionally the VGG16 relu1_2 perceptual term), backward and an Adam update. Faces are
random pixels with random soft masks, so no dataset is needed; validation is not
counted.

The step's FLOP (forward and backward, counted by ``FlopCounterMode``) over its median
time is compared with a 2048² matmul measured in the same run, in the step's
precision (fp32 on a CPU without bf16 in hardware): the fraction of peak says how well
the network uses this CPU, whatever the CPU is. ``--precision auto`` (the default, as
in ``umsn train``) is bf16 where the CPU computes it natively, else fp32.

    python benchmarks/train_step_cost.py [--config umsn-lite] [--stage umsn] [--precision auto]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from umsn_cli.benchmark.speed import measure_matmul_peak
from umsn_cli.blur.degrade import MIXES, motion_bank
from umsn_cli.faces import FaceSet
from umsn_cli.train.config import PRECISIONS, STAGES, TrainConfig
from umsn_cli.train.data import Sampler
from umsn_cli.train.loop import prepare_stage, resolved_precision


def random_faces(count: int = 64, side: int = 160) -> FaceSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (count, side, side))
    masks = (labels[:, None] == np.arange(4)[None, :, None, None]).astype(np.uint8) * 255
    return FaceSet([str(i) for i in range(count)], images, masks, window=0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="umsn-lite")
    parser.add_argument("--stage", default="umsn", choices=STAGES)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="torch.compile the stage")
    args = parser.parse_args()

    torch.manual_seed(0)
    cfg = TrainConfig(
        stage=args.stage, out="-", model=args.config, data="-", masks="-", fnet_class=3,
        precision=args.precision, perceptual=args.perceptual, batch_size=args.batch,
    )  # fmt: skip
    stage = prepare_stage(cfg).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(stage.trainable(), lr=cfg.lr)
    sampler = Sampler(random_faces(), motion_bank(MIXES["real"], 500, 0), seed=0)
    precision = resolved_precision(args.precision, torch.device("cpu"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    model = torch.compile(stage) if args.compile else stage

    def step() -> None:
        batch = stage.sample(sampler, args.batch).to(torch.device("cpu"))
        with autocast:
            loss, _ = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step()  # also the first warm-up step
    gflop = counter.get_total_flops() / 1e9
    step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    peak = measure_matmul_peak("cpu", repeats=20)
    # Without bf16 in hardware (no bf16 peak is timed) the ceiling is the fp32 one.
    peak_precision = "bf16" if precision == "bf16" and peak.bf16_tflops else "fp32"
    peak_gflops = 1000 * peak.tflops("bfloat16" if peak_precision == "bf16" else "float32")
    print(
        f"{args.config} {args.stage} batch {args.batch} {precision}: "
        f"{seconds:.2f} s/step, {3600 / seconds:.0f} steps/h "
        f"(min {min(times):.2f} s, max {max(times):.2f} s); "
        f"{gflop:.0f} GFLOP/step, {gflop / seconds:.0f} GFLOP/s = "
        f"{gflop / seconds / peak_gflops:.0%} of the {peak_gflops:.0f} GFLOP/s "
        f"{peak_precision} matmul peak measured in this run"
    )


if __name__ == "__main__":
    main()
