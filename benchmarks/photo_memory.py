"""Peak memory of ``umsn deblur`` on a very large photo, against the photo's own size.

Writes an 11000×7500 JPEG (a smooth random scene holding one blurred 150-px
astronaut face, the case of issue 12) and runs ``umsn deblur`` on it in a child
process. Printed: the child's peak resident memory, and that as a multiple of the
photo held once as 8-bit RGB and once as float32 RGB, which is what the pipeline
works on. The interpreter, torch and the model take a fixed few hundred MB on top;
``--size`` lets one see how the peak grows with the photo.

    python benchmarks/photo_memory.py [--size 11000x7500] [--model umsn-lite] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from umsn_cli.blur import blur_image
from umsn_cli.examples import example_face, motion_kernel


def big_photo(width: int, height: int, face: int = 150) -> Image.Image:
    """A smooth scene with one blurred face of ``face`` px near the upper left third."""
    rng = np.random.default_rng(0)
    small = (rng.random((height // 64, width // 64, 3)) * 255).astype(np.uint8)
    photo = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    patch = blur_image(example_face(face * 2), motion_kernel(9, 30.0)).clip(0, 1)
    photo.paste(Image.fromarray(np.rint(patch * 255).astype(np.uint8)), (width // 3, height // 3))
    return photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="11000x7500", help="WIDTHxHEIGHT of the photo")
    parser.add_argument("--model", default=None, help="weights id (default: the bundled one)")
    parser.add_argument("--keep", type=Path, default=None, help="write photo and output here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "big.jpg"
        big_photo(width, height).save(source, quality=90)
        command = [sys.executable, "-m", "umsn_cli", "deblur", str(source),
                   "-o", str(folder / "out"), "--overwrite"]  # fmt: skip
        if args.model:
            command += ["--model", args.model]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"umsn deblur failed ({done.returncode}): {done.stderr.strip()}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: KiB
    pixels = width * height
    print(f"{width}×{height} photo ({pixels / 1e6:.1f} MP), one 150-px face: {seconds:.1f} s")
    print(f"peak resident memory {peak / 2**30:.2f} GiB = {peak / (3 * pixels):.1f}× the 8-bit "
          f"photo = {peak / (12 * pixels):.2f}× the float32 photo")  # fmt: skip
    print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "")


if __name__ == "__main__":
    main()
