"""A mixed album through ``umsn deblur``: half the faces sharp, half blurred, one run.

    python benchmarks/mixed_album.py --faces ../shared/data/celebamask-mini/val/images \\
        --crop 0.75 --json runs/eval/mixed.json

People run whole albums, not only their blurred photos. This writes each face as an
aligned crop (the benchmark's framing), every other one blurred by a seeded Shen et
al. kernel (13–27 px) and all with noise σ 0.01, runs ``umsn deblur --report`` on the
folder at each ``--strength`` asked for, and scores every output against its sharp
face at the best shift within ±5 px. It prints, per half and strength, the PSNR gain
over the input, and how many faces the report judged right (sharp faces ``sharp``,
blurred ones ``blurred``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from umsn_cli.blur import add_noise, blur_image
from umsn_cli.blur.kernels import shen_bank
from umsn_cli.faces import load_faces
from umsn_cli.images import read_image, save_rgb8
from umsn_cli.metrics import aligned, best_shift, psnr

ALIGN = 5


def album(faces_folder: Path, crop: float, folder: Path, seed: int) -> dict[str, dict]:
    """The album's files, and for each its sharp face, its input and whether it was blurred."""
    sharp, _ = load_faces(faces_folder, None, crop=crop, size=128).canonical()
    bank = [k for _, _, k in shen_bank(seed, per_size=1)]
    generator = torch.Generator().manual_seed(seed)
    truth = {}
    for i, face in enumerate(sharp.permute(0, 2, 3, 1).numpy()):
        blurred = i % 2 == 1
        image = blur_image(face, bank[(i // 2) % len(bank)]) if blurred else face
        noisy = add_noise(torch.from_numpy(np.ascontiguousarray(image, np.float32)), 0.01,
                          generator).numpy()  # fmt: skip
        pixels = np.round(noisy * 255).astype(np.uint8)
        name = f"face{i:03d}.png"
        save_rgb8(folder / name, pixels)
        truth[name] = {"sharp": face, "blurred": blurred, "input": pixels / 255}
    return truth


def score(image: np.ndarray, sharp: np.ndarray) -> float:
    """PSNR at the best shift within ±ALIGN px, as ``umsn benchmark --align 5``."""
    shift = best_shift(image, sharp, ALIGN)
    return psnr(*aligned(image, sharp, shift, ALIGN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True, help="aligned sharp faces")
    parser.add_argument("--crop", type=float, default=0.75)
    parser.add_argument("--strength", action="append", default=None, help="auto, 0…1")
    parser.add_argument("--model", default="bnet-fast-xl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    strengths = args.strength or ["auto", "1"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="umsn-album-") as scratch:
        root = Path(scratch)
        truth = album(args.faces, args.crop, root / "album", args.seed)
        for strength in strengths:
            out, report = root / f"out-{strength}", root / f"report-{strength}.json"
            subprocess.run(
                [sys.executable, "-m", "umsn_cli", "deblur", str(root / "album"), "-o", str(out),
                 "--mode", "aligned", "--strength", strength, "--model", args.model,
                 "--offline", "-q", "--report", str(report)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            judged = {Path(f["file"]).name: f["faces"][0]["judged"]
                      for f in json.loads(report.read_text())["files"]}  # fmt: skip
            halves: dict[str, dict[str, list[float]]] = {"sharp": {}, "blurred": {}}
            for name, t in truth.items():
                half = halves["blurred" if t["blurred"] else "sharp"]
                restored = read_image(out / name).rgb
                gain = score(restored, t["sharp"]) - score(t["input"], t["sharp"])
                half.setdefault("gain", []).append(gain)
                right = judged[name] == ("blurred" if t["blurred"] else "sharp")
                half.setdefault("judged right", []).append(float(right))
            results[strength] = {
                h: {k: float(np.mean(v)) for k, v in d.items()} | {"faces": len(d["gain"])}
                for h, d in halves.items()
            }
            for h, d in results[strength].items():
                right = 100 * d["judged right"]
                print(f"strength {strength:>4}  {h:7s} faces {d['faces']:3d}  "
                      f"gain {d['gain']:+.2f} dB  judged right {right:.0f} %")  # fmt: skip
    if args.json:
        command = "python " + " ".join(sys.argv)
        args.json.write_text(json.dumps({"results": results, "command": command}, indent=1))


if __name__ == "__main__":
    main()
