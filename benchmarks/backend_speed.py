"""Per-face inference time of each configuration on each available backend.

Random weights (speed does not depend on their values), 128×128 inputs, S-Net plus
generator (the whole `deblur` forward pass). Prints a Markdown table: the median of
repeated runs after warm-up, in milliseconds per face.

    python benchmarks/backend_speed.py [--configs umsn-lite umsn] [--batches 1 16]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from umsn_cli.backends import create_backend, discover_backends
from umsn_cli.nn import build_model, count_parameters


def time_per_face(backend, batch: int, size: int, repeats: int) -> float:
    x = torch.rand(batch, 3, size, size)
    for _ in range(3):  # warm-up: allocator, oneDNN primitives, the JIT's profiling runs
        backend.deblur(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.deblur(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / batch * 1000


def costs(config: str, size: int) -> str:
    """Parameters and FLOP (one multiply-add = 2) of S-Net and generator, on the meta device."""
    with torch.device("meta"):
        model = build_model(config).eval()
        x, masks = torch.empty(1, 3, size, size), torch.empty(1, 4, size, size)
    parts = []
    for name, module, run in (
        ("S-Net", model.snet, lambda: model.snet(x)),
        ("generator", model.generator, lambda: model.generator(x, masks)),
    ):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            run()
        parts.append(
            f"{name} {count_parameters(module) / 1e6:.3f} M params, "
            f"{counter.get_total_flops() / 1e9:.2f} GFLOP"
        )
    return f"{config} at {size}²: " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["umsn-lite", "umsn"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()

    import os

    os.environ.setdefault("UMSN_CACHE", tempfile.mkdtemp(prefix="umsn-bench-"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for config in args.configs:
        print(costs(config, args.size))
    print("| config | backend | dtype | batch | ms/face |")
    print("|---|---|---|---|---|")
    for config in args.configs:
        torch.manual_seed(0)
        model = build_model(config).eval()
        for name, cls in discover_backends().items():
            if cls.unavailable_reason() is not None:
                continue
            for precision in args.precisions:
                backend = create_backend(
                    name, model, weights_key=f"bench-{config}", precision=precision
                )
                for batch in args.batches:
                    repeats = 5 if config == "umsn-lite" or batch == 1 else 2
                    ms = time_per_face(backend, batch, args.size, repeats)
                    info = backend.info
                    print(
                        f"| {config} | {info.name} | {info.dtype} | {batch} | {ms:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
