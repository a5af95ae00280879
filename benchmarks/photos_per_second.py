"""Whole photos per second: 12 MP JPEGs through the batch runner, as ``umsn deblur`` runs them.

Each photo is 4000×3000 (a smooth random scene) holding 1 or 5 copies of the
public-domain astronaut face at 500 px, blurred by a 9 px shake at the photo's scale
and saved as JPEG. ``--photos`` copies of each go through :func:`umsn_cli.batch.run`
(decode, detection, alignment, restoration, paste, encode, atomic write), timed whole
after one warm-up photo; the stages of one photo are timed alone beside it, and the
matmul peak is measured in the same run, so the figures can be read against the
machine. Every precision asked for runs the same photos.

    python benchmarks/photos_per_second.py [--precision auto --precision fp32] \\
        [--photos 4] [--json docs/results/speed/photos.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from umsn_cli import batch
from umsn_cli.benchmark.speed import cpu_summary, measure_matmul_peak
from umsn_cli.blur import blur_image
from umsn_cli.examples import example_face, motion_kernel
from umsn_cli.images import read_image, write_image
from umsn_cli.inputs import Job
from umsn_cli.photo.detect import detect_faces
from umsn_cli.restorer import Restorer

WIDTH, HEIGHT, FACE = 4000, 3000, 500
SPOTS = [(1750, 1250), (300, 300), (3200, 300), (300, 2200), (3200, 2200)]  # top-left


def make_photo(faces: int, path: Path) -> None:
    rng = np.random.default_rng(faces)
    small = (rng.random((HEIGHT // 64, WIDTH // 64, 3)) * 255).astype(np.uint8)
    scene = Image.fromarray(small).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    photo = np.asarray(scene, dtype=np.float32) / 255
    face = example_face(FACE)
    for x, y in SPOTS[:faces]:
        photo[y : y + FACE, x : x + FACE] = face
    photo = blur_image(photo, motion_kernel(9, 30.0)).clip(0, 1)
    Image.fromarray((photo * 255 + 0.5).astype(np.uint8)).save(path, quality=92)


def stages(path: Path, restorer: Restorer, out: Path) -> dict[str, float]:
    """Seconds of each stage of one photo, run alone (median of 3)."""
    image = read_image(path)
    found = detect_faces(image.rgb)
    restored = restorer.restore(image, "photo", found=found).rgb

    def timed(fn) -> float:
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        return statistics.median(runs)

    return {
        "decode_s": timed(lambda: read_image(path)),
        "detect_s": timed(lambda: detect_faces(image.rgb)),
        "restore_s": timed(lambda: restorer.restore(image, "photo", found=found)),
        "encode_s": timed(lambda: write_image(out, restored, image, overwrite=True)),
    }


def run_case(restorer: Restorer, folder: Path, faces: int, photos: int) -> dict[str, object]:
    source = folder / f"faces{faces}.jpg"
    make_photo(faces, source)
    inputs = folder / f"in{faces}"
    inputs.mkdir()
    for k in range(photos + 1):
        (inputs / f"{k}.jpg").write_bytes(source.read_bytes())
    out = folder / f"out{faces}"
    options = batch.Options(task="deblur", mode="photo", overwrite=True)
    warm = [Job(inputs / "0.jpg", out / "0")]
    batch.run(warm, restorer, options)  # oneDNN primitives, the allocator, YuNet's first call
    jobs = [Job(inputs / f"{k}.jpg", out / str(k)) for k in range(1, photos + 1)]
    start = time.perf_counter()
    report = batch.run(jobs, restorer, options)
    seconds = time.perf_counter() - start
    if report.failed or report.faces != faces * photos:
        sys.exit(f"{faces}-face photos: {report.failed or report.faces} (expected every face)")
    return {
        "faces_per_photo": faces,
        "photos": photos,
        "seconds_per_photo": seconds / photos,
        "photos_per_second": photos / seconds,
        **stages(source, restorer, folder / f"stage{faces}.jpg"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="weights (default: umsn's default)")
    parser.add_argument("--precision", action="append", help="auto, fp32 or bf16 (repeat)")
    parser.add_argument("--photos", type=int, default=4, help="timed photos per case")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    peak = measure_matmul_peak("cpu")
    record: dict[str, object] = {
        "command": "python benchmarks/photos_per_second.py " + " ".join(sys.argv[1:]),
        "machine": f"{torch.get_num_threads()} threads of {cpu_summary()}",
        "matmul_peak_tflops": {"fp32": peak.fp32_tflops, "bf16": peak.bf16_tflops},
        "torch": torch.__version__,
        "rows": [],
    }
    print(f"{record['machine']}; matmul peak {peak.fp32_tflops:.2f} (fp32) / "
          f"{peak.bf16_tflops or 0:.2f} (bf16) TFLOP/s")  # fmt: skip
    print("| precision | faces | photos/s | s/photo | decode | detect | restore | encode |")
    print("|---|---|---|---|---|---|---|---|")
    for precision in args.precision or ["auto"]:
        kwargs = {"model": args.model} if args.model else {}
        restorer = Restorer.load(**kwargs, backend="cpu", precision=precision, offline=True)
        with tempfile.TemporaryDirectory() as tmp:
            for faces in (1, 5):
                case = run_case(restorer, Path(tmp), faces, args.photos)
                row = {"precision": restorer.info.dtype, **case}
                record["rows"].append(row)  # type: ignore[union-attr]
                print(
                    f"| {row['precision']} | {faces} | {row['photos_per_second']:.2f} | "
                    f"{row['seconds_per_photo']:.2f} | {row['decode_s']:.2f} | "
                    f"{row['detect_s']:.2f} | {row['restore_s']:.2f} | {row['encode_s']:.2f} |"
                )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
