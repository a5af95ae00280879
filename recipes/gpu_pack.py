"""Pack training faces small enough to travel to a lent GPU machine with the checkout.

A lent GPU machine receives the checkout and at most 64 MiB in all, and nothing
beside it: not ``../shared``, not ``data/``. This writes one folder (default
``runs/gpu-pack``, ignored by git: the faces may not be redistributed) that
``recipes/gpu-cycle.sh`` trains from:

- ``celeba/``: the celebamask-mini training faces, shrunk to 192² JPEG (the framing
  is a fraction of the frame, so ``--crop 0.75`` still holds);
- ``val/``: its validation faces, the same way;
- ``wild/``: as many faces of a folder ``umsn prepare`` wrote as the size budget
  leaves room for, every k-th one so that both of its sources are represented, as
  JPEG, with its ``prepare.json``;
- ``wheels/``: the packages the GPU machine's Python lacks (``platformdirs``), fetched
  here with pip.

    python recipes/gpu_pack.py --celeba ../shared/data/celebamask-mini --wild data/wild
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from umsn_cli.faces import list_images

#: Packages that ``umsn`` needs and the GPU machine's image does not hold.
MISSING_ON_GPU = ("platformdirs",)
QUALITY = 93


def jpeg(source: Path, side: int | None = None) -> bytes:
    """``source`` encoded as JPEG at :data:`QUALITY`, resized to ``side``² when given."""
    buffer = io.BytesIO()
    with Image.open(source) as image:
        rgb = image.convert("RGB")
        if side is not None and rgb.size != (side, side):
            rgb = rgb.resize((side, side), Image.Resampling.LANCZOS)
        rgb.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


def pack_folder(images: list[Path], out: Path, side: int | None, budget: int) -> int:
    """Write ``images`` into ``out`` until ``budget`` bytes are used; the bytes written."""
    out.mkdir(parents=True)
    used = 0
    for path in images:
        if used >= budget:
            break
        data = jpeg(path, side)
        (out / f"{path.stem}.jpg").write_bytes(data)
        used += len(data)
    return used


def jpeg_size(images: list[Path]) -> float:
    """The mean size of ``images`` as JPEG at :data:`QUALITY`, in bytes."""
    return sum(len(jpeg(path)) for path in images) / max(1, len(images))


def spread(items: list[Path], count: int) -> list[Path]:
    """``count`` items taken evenly along ``items`` (every k-th)."""
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celeba", type=Path, default=Path("../shared/data/celebamask-mini"))
    parser.add_argument("--wild", type=Path, default=Path("data/wild"))
    parser.add_argument("-o", "--output", type=Path, default=Path("runs/gpu-pack"))
    parser.add_argument("--side", type=int, default=192, help="celebamask-mini faces' side")
    parser.add_argument("--budget-mb", type=float, default=38.0, help="the whole pack's size")
    args = parser.parse_args()
    if args.output.exists():
        shutil.rmtree(args.output)
    budget = int(args.budget_mb * 2**20)
    used = 0
    for name, folder in (("celeba", "train/images"), ("val", "val/images")):
        used += pack_folder(
            list_images(args.celeba / folder), args.output / name, args.side, budget
        )
    wild = list_images(args.wild / "images")
    # Every k-th face, as many as the JPEG size of a sample says fit; the budget stops
    # the writing where the sample was optimistic.
    count = int((budget - used) / jpeg_size(spread(wild, 50)))
    used += pack_folder(spread(wild, count), args.output / "wild" / "images", None, budget - used)
    shutil.copy(args.wild / "prepare.json", args.output / "wild" / "prepare.json")
    wheels = args.output / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "-d", str(wheels), *MISSING_ON_GPU],
        check=True,
    )  # fmt: skip
    faces = {n: len(list((args.output / n).rglob("*.jpg"))) for n in ("celeba", "val", "wild")}
    total = sum(p.stat().st_size for p in args.output.rglob("*") if p.is_file())
    print(f"{args.output}: {faces}, {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
