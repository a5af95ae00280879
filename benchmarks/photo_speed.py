"""Photo mode on this machine: seconds per photo, and whether big faces keep their detail.

Speed: a 1024×768 photo (a smooth random scene) holding 1 or 5 copies of the
public-domain astronaut face, motion-blurred; the whole ``restore_photo`` call
(detection, alignment, restoration, pasting) and detection alone, the median of
``--repeats`` runs after a warm-up.

Detail: a 1400×1400 photo with one sharp 700-px face. The model sees its crop at
128², so what comes back must keep the photo's fine detail. Printed: the energy of
the face region's fine band (what the model's 128² view of it cannot hold) in the
output relative to the input, for umsn's paste (the model's change, upsampled, added
to the original) and for the naive paste (the 128² result upsampled over the face).
1.0 is no loss.

    python benchmarks/photo_speed.py [--model umsn-lite] [--backend auto] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from umsn_cli.api import Restorer
from umsn_cli.blur import blur_image
from umsn_cli.examples import example_face, motion_kernel
from umsn_cli.photo.align import crop
from umsn_cli.photo.detect import detect_faces
from umsn_cli.photo.paste import Canvas
from umsn_cli.photo.pipeline import restore_photo

SPOTS = [(80, 60), (420, 80), (760, 60), (200, 420), (600, 430)]  # top-left of each face


def scene(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    small = (rng.random((height // 32, width // 32, 3)) * 255).astype(np.uint8)
    big = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255


def photo_with_faces(count: int, size: int = 260) -> np.ndarray:
    photo = scene(1024, 768)
    face = example_face(size)
    for x, y in SPOTS[:count]:
        photo[y : y + size, x : x + size] = face
    return blur_image(photo, motion_kernel(9, 30.0)).clip(0, 1)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN primitives, the TorchScript profiling runs
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fine_band_energy(image: np.ndarray, box: tuple[int, int, int, int], nyquist: float) -> float:
    """Spectral energy of the box region above ``nyquist`` (cycles per pixel, either axis)."""
    left, top, right, bottom = box
    region = image[top:bottom, left:right].astype(np.float64)
    window = np.outer(np.hanning(region.shape[0]), np.hanning(region.shape[1]))[..., None]
    region = (region - region.mean(axis=(0, 1))) * window  # no leakage from the box edges
    spectrum = np.abs(np.fft.fft2(region, axes=(0, 1))) ** 2
    fy = np.abs(np.fft.fftfreq(region.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(region.shape[1]))[None, :]
    return float(spectrum[np.maximum(fy, fx) > nyquist].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="umsn-lite")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    restorer = Restorer.load(args.model, backend=args.backend)
    print(f"{restorer.info}, {torch.get_num_threads()} threads")
    print("| photo | faces found | detection | whole photo |")
    print("|---|---|---|---|")
    for count in (1, 5):
        photo = photo_with_faces(count)
        found = len(detect_faces(photo))
        detect = timed(lambda p=photo: detect_faces(p), args.repeats)
        whole = timed(lambda p=photo: restore_photo(p, restorer), args.repeats)
        print(f"| 1024×768, {count} face(s) | {found} | {detect * 1e3:.0f} ms | {whole:.2f} s |")

    photo = scene(1400, 1400)
    photo[350:1050, 350:1050] = example_face(700)
    result = restore_photo(photo, restorer)
    (face,) = result.faces
    left, top, right, bottom = face.alignment.photo_box(1400, 1400)  # the crop in the photo
    margin = (right - left) // 4
    box = (left + margin, top + margin, right - margin, bottom - margin)  # the face itself
    nyquist = 0.5 * restorer.input_size / face.alignment.size  # the model's view, per pixel
    original = fine_band_energy(photo, box, nyquist)
    ours = fine_band_energy(result.rgb, box, nyquist)
    # The naive paste: the 128² restoration, upsampled back over the face crop.
    small = F.interpolate(
        torch.from_numpy(face.before).permute(2, 0, 1)[None], size=(128, 128), mode="area"
    )
    restored_small = restorer.backend.deblur(small)[0]
    naive_crop = F.interpolate(restored_small, size=(face.alignment.size,) * 2, mode="bicubic",
                               align_corners=False)[0].clamp(0, 1)  # fmt: skip
    naive = photo.copy()
    window = crop(photo, face.alignment)
    assert window.shape == naive_crop.shape
    # Paste the naive crop back with the same alignment, no feathering: a fair upper bound.

    canvas = Canvas(photo)
    canvas.add(
        face.alignment, naive_crop - window, torch.ones(face.alignment.size, face.alignment.size)
    )
    naive = canvas.result()
    naive_energy = fine_band_energy(naive, box, nyquist)
    print(
        f"700-px face, fine-band energy relative to the input: umsn paste "
        f"{ours / original:.3f}, naive upsampled paste {naive_energy / original:.3f}"
    )


if __name__ == "__main__":
    main()
