"""What one end-to-end UMSN training step costs on this machine, in steps per hour.

Used to size `umsn-lite` before the trainer exists: a step here is S-Net on the
blurry batch (frozen), the generator forward and backward, the confidence network,
the confidence-weighted class-wise L1 − λ log C, an L1 on the half-scale output, a
perceptual term through a VGG16 relu1_2-shaped stand-in (two 3×3 convs to 64
channels, random weights: the cost is the same as the real one), and an Adam update.
Random tensors stand in for data, so data loading and blur synthesis are not counted.

    python benchmarks/train_step_cost.py [--config umsn-lite] [--batch 16] [--precision bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from umsn_cli.nn import ConfidenceNet, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="umsn-lite")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    parser.add_argument("--layout", choices=["nchw", "nhwc"], default="nhwc")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    layout = torch.channels_last if args.layout == "nhwc" else torch.contiguous_format
    model = build_model(args.config).to(memory_format=layout)
    snet, generator = model.snet.eval(), model.generator.train()
    confidence = ConfidenceNet(model.config.confidence_width).to(memory_format=layout)
    vgg = (
        nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()
        )
        .to(memory_format=layout)
        .requires_grad_(False)
    )
    params = [*generator.parameters(), *confidence.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-4)

    def batch(channels: int) -> torch.Tensor:
        shape = (args.batch, channels, args.size, args.size)
        return torch.rand(shape).contiguous(memory_format=layout)

    blurry, sharp, target_masks = batch(3) * 2 - 1, batch(3) * 2 - 1, batch(4)
    class_weights = torch.tensor([1.2, 1.2, 3.6, 1.2])

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            with torch.no_grad():
                masks = torch.sigmoid(snet(blurry)[0])
            restored, half = generator(blurry, masks)
            c = confidence(restored, sharp, target_masks)
            per_class = (target_masks[:, :, None] * (restored - sharp)[:, None]).abs()
            l1 = (per_class.mean((2, 3, 4)) * class_weights * c).sum(1).mean()
            loss = l1 - 0.01 * torch.log(c).sum(1).mean()
            loss = loss + 0.33 * (half - nn.functional.avg_pool2d(sharp, 2)).abs().mean()
            loss = loss + ((vgg(restored) - vgg(sharp)) ** 2).mean()
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
        f"{args.config} batch {args.batch} {args.precision} {args.layout}: "
        f"{seconds:.2f} s/step, {3600 / seconds:.0f} steps/h "
        f"(min {min(times):.2f} s, max {max(times):.2f} s)"
    )


if __name__ == "__main__":
    main()
