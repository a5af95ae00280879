"""What one training step of each stage costs on this machine, in steps per hour.

The step is the real one from ``umsn_cli.train``: a batch drawn by the sampler
(augmentation, a bank kernel per face, noise), the stage's forward and loss (for
``umsn``: frozen S-Net, generator, confidence network, L_c, half-scale, gradient and
VGG16 relu1_2 perceptual terms), backward and an Adam update. Faces are random
pixels with random soft masks, so no dataset is needed; validation is not counted.

    python benchmarks/train_step_cost.py [--config umsn-lite] [--stage umsn] [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from umsn_cli.train.config import TrainConfig
from umsn_cli.train.data import FaceSet, Sampler
from umsn_cli.train.loop import kernel_bank, prepare_stage


def random_faces(count: int = 64, side: int = 160) -> FaceSet:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (count, side, side))
    masks = (labels[:, None] == np.arange(4)[None, :, None, None]).astype(np.uint8) * 255
    return FaceSet([str(i) for i in range(count)], images, masks, window=0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="umsn-lite")
    parser.add_argument("--stage", default="umsn", choices=["snet", "fnet", "umsn", "bnet"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--perceptual", choices=["on", "off"], default="on")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    cfg = TrainConfig(
        stage=args.stage, out="-", model=args.config, data="-", masks="-", fnet_class=3,
        precision=args.precision, perceptual=args.perceptual == "on", batch_size=args.batch,
    )  # fmt: skip
    stage = prepare_stage(cfg).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(stage.trainable(), lr=cfg.lr)
    sampler = Sampler(random_faces(), kernel_bank(500, 0), seed=0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step() -> None:
        batch = sampler.sample(args.batch, stage.blur, getattr(stage, "index", None)).to(
            torch.device("cpu")
        )
        with autocast:
            loss, _ = stage(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):  # warm-up
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(
        f"{args.config} {args.stage} batch {args.batch} {args.precision}: "
        f"{seconds:.2f} s/step, {3600 / seconds:.0f} steps/h "
        f"(min {min(times):.2f} s, max {max(times):.2f} s)"
    )


if __name__ == "__main__":
    main()
