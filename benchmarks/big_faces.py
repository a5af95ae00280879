"""Big faces: photo mode on 512² photos whose face fills 384 px, blurred at their own
scale, restored at each working size (``deblur --max-face-size``).

    python benchmarks/big_faces.py --faces ../shared/data/celebamask-mini/val/images \\
        --limit 24 --json runs/eval/big-faces.json

Each sharp 512² CelebAMask-HQ frame is the photo (its face framing, the centre 384²,
is the region scored). It is blurred whole by a seeded camera-shake kernel of each
size in :data:`SIZES` (``s1``: the kernel as drawn, a small shake at this scale) and by
the same kernel at twice its size (``s2``), with noise σ 0.01 and 8-bit rounding, then
restored in photo mode (the face found, aligned, restored, pasted back) at each
``--max-face-size``. Scored: PSNR of the face region at the best integer shift within
±5 px against the sharp photo; whether every pixel outside the face blend is
bit-identical to the input; milliseconds per photo.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from umsn_cli.blur import add_noise, blur_image, random_kernels
from umsn_cli.faces import list_images
from umsn_cli.images import from_array, read_image
from umsn_cli.metrics import aligned, best_shift, psnr
from umsn_cli.restorer import Restorer

SIZES = (9, 15, 21, 27)  # s1 kernels, px of the 512² photo
ALIGN = 5
NOISE = 0.01


def scaled(kernel: np.ndarray, factor: int) -> np.ndarray:
    """The kernel drawn ``factor`` times larger (the same shake, seen closer), odd-sized."""
    size = kernel.shape[0] * factor
    size += 1 - size % 2
    big = F.interpolate(torch.from_numpy(kernel)[None, None].float(), size=(size, size),
                        mode="bilinear", align_corners=False)[0, 0].clamp_min(0)  # fmt: skip
    return (big / big.sum()).numpy()


def face_psnr(image: np.ndarray, sharp: np.ndarray) -> float:
    """PSNR of the centre 384² (the face framing) at the best shift within ±ALIGN px."""
    lo, hi = 64 - ALIGN, 448 + ALIGN
    a, b = image[lo:hi, lo:hi], sharp[lo:hi, lo:hi]
    return psnr(*aligned(a, b, best_shift(a, b, ALIGN), ALIGN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True, help="sharp 512² face frames")
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--model", default="bnet-fast-xl")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--max-face-size", type=int, action="append", dest="sizes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    working = args.sizes or [128, 256, 512]
    files = list_images(args.faces)[: args.limit]
    kernels = random_kernels(list(SIZES), args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    restorers = {
        size: Restorer.load(args.model, backend=args.backend, offline=True, max_face_size=size)
        for size in working
    }
    rows: dict[str, dict] = {}
    for path in files:
        sharp = read_image(path).rgb
        for size, kernel in zip(SIZES, kernels, strict=True):
            for scale in (1, 2):
                blurred = blur_image(sharp, scaled(kernel, scale) if scale > 1 else kernel)
                noisy = add_noise(torch.from_numpy(np.ascontiguousarray(blurred)), NOISE, generator)
                photo = (np.round(noisy.numpy() * 255) / 255).astype(np.float32)
                row = rows.setdefault(f"s{scale} {size} px", {"input": [], "faces": 0})
                row["input"].append(face_psnr(photo, sharp))
                for working_size, restorer in restorers.items():
                    start = time.perf_counter()
                    done = restorer.restore(from_array(photo), "photo")
                    took = time.perf_counter() - start
                    outside = done.photo.mask == 0
                    kept = bool(
                        np.array_equal(done.rgb[outside], photo.astype(np.float32)[outside])
                    )
                    scores = row.setdefault(str(working_size), {"psnr": [], "ms": [], "kept": True})
                    scores["psnr"].append(face_psnr(done.rgb, sharp))
                    scores["ms"].append(1000 * took)
                    scores["kept"] &= kept
                row["faces"] += 1
        print(f"{path.name} done", flush=True)
    summary = {}
    for name, row in rows.items():
        entry = {"faces": row["faces"], "input_psnr": round(statistics.mean(row["input"]), 3)}
        for working_size in map(str, working):
            scores = row[working_size]
            entry[working_size] = {
                "gain": round(statistics.mean(scores["psnr"]) - entry["input_psnr"], 3),
                "ms_per_photo": round(statistics.median(scores["ms"]), 1),
                "background_bit_identical": scores["kept"],
            }
        summary[name] = entry
        gains = "  ".join(f"{w}: {entry[w]['gain']:+.2f} dB" for w in map(str, working))
        print(f"{name}: input {entry['input_psnr']:.2f} dB  {gains}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "rows": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
