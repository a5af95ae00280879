"""Turn arbitrary face photos into training faces (``umsn prepare``).

Training reads aligned faces: the model's canonical framing (the landmarks of its
input contract, :class:`umsn_cli.contract.InputContract`) with a margin around it, so
that the sampler can jitter scale and position. This module makes such faces from any photo:

1. find the faces (YuNet, as photo mode does) and keep those at least ``min_face``
   pixels;
2. fit the similarity transform onto the canonical landmarks and sample a window
   :data:`MARGIN` times the canonical one (the contract's input size plus the
   margin, :func:`stored_side`), prefiltering photos that must shrink so nothing aliases;
3. skip faces whose canonical window leaves the photo by more than ``max_outside``
   of its area (the rest of a window that leaves the photo is filled by mirroring the photo),
   and faces too soft to be sharp targets (variance of the Laplacian of the canonical
   crop below ``min_sharpness``, grey levels 0–255);
4. label the four classes with S-Net where no masks exist, written as CelebAMask-HQ
   label PNGs with one representative label per class (0 background, 1 skin, 2 nose
   for the features, 13 hair), so the training loader reads them like real labels.

The output folder holds ``images/``, ``masks/``, ``prepare.json`` (what framing the
faces have: training reads its ``crop``) and ``prepare.jsonl`` (one line per input
file: the faces kept and why others were skipped).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from umsn_cli.contract import InputContract
from umsn_cli.errors import ImageError, UmsnError, UsageError, one_line
from umsn_cli.faces import MARGIN
from umsn_cli.files import write_text
from umsn_cli.images import quantise, read_image, save_label_png, save_rgb8
from umsn_cli.inputs import plan_jobs
from umsn_cli.photo.align import Alignment, crop, real_share, similarity
from umsn_cli.photo.detect import choose_faces, detect_faces

#: The canonical window's share of a stored face: ``umsn train`` reads it as ``crop``.
CROP = 1 / MARGIN
#: One CelebAMask-HQ label per UMSN class, for pseudo-labels (background, skin, nose, hair).
CLASS_LABELS = np.array([0, 1, 2, 13], dtype=np.uint8)


@dataclass(frozen=True)
class PrepareOptions:
    min_face: int = 48  # px, the detector box's shorter side at the photo's resolution
    max_faces: int | None = None
    max_outside: float = 0.15  # share of the canonical window allowed outside the photo
    min_sharpness: float = 50.0  # variance of the Laplacian of the canonical crop
    labels: bool = True  # pseudo-label with S-Net
    overwrite: bool = False
    recursive: bool = False

    def __post_init__(self) -> None:
        if self.min_face < 1:
            raise UsageError(f"--min-face {self.min_face}: give a size of 1 pixel or more")
        if not 0 <= self.max_outside <= 1:
            raise UsageError(f"--max-outside {self.max_outside}: give a share in [0, 1]")
        if self.min_sharpness < 0:
            raise UsageError(f"--min-sharpness {self.min_sharpness}: give 0 or more")


@dataclass
class PrepareReport:
    done: list[Path] = field(default_factory=list)  # inputs with at least one face kept
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)
    faces: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → faces (or photos)
    seconds: float = 0.0


@dataclass(frozen=True)
class PreparedFace:
    image: np.ndarray  # side×side×3 float32 in [0, 1] (:func:`stored_side`)
    outside: float  # share of the canonical window that lay outside the photo
    sharpness: float
    box: tuple[float, float, float, float]


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image, levels 0–255."""
    grey = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) * 255
    lap = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())


def stored_side(contract: InputContract) -> int:
    """Side of a stored face: the contract's canonical window times :data:`MARGIN`."""
    return round(contract.size * MARGIN)


def frame_face(
    rgb: np.ndarray, landmarks: np.ndarray, contract: InputContract
) -> tuple[np.ndarray, float]:
    """The stored training face of one face (side² RGB, :func:`stored_side`) and how
    much of its canonical window lay outside the photo.

    ``landmarks`` are the detector's 5 points in photo pixels. A photo that must shrink
    by more than 10 % is first resized with a Lanczos filter, so the face is not aliased.
    """
    side, size = stored_side(contract), contract.size
    offset = (side - size) / 2
    target = contract.template + offset
    matrix = similarity(landmarks, target)  # photo px → stored px
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    height, width = rgb.shape[:2]
    photo = rgb
    if scale < 0.9:
        shrunk = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = Image.fromarray(quantise(rgb))
        photo = np.asarray(pixels.resize(shrunk, Image.Resampling.LANCZOS), np.float32) / 255
        matrix = similarity(landmarks * (shrunk[0] / width, shrunk[1] / height), target)
    alignment = Alignment(matrix, side)
    face = crop(photo, alignment).clamp(0, 1)
    inside = real_share(alignment.inverse(), (side, side), *photo.shape[:2])
    lo, hi = round(offset), round(offset) + size
    outside = 1 - float(inside[lo:hi, lo:hi].mean())
    return face.permute(1, 2, 0).numpy(), outside


def prepare_photo(
    rgb: np.ndarray, options: PrepareOptions, contract: InputContract | None = None
) -> tuple[list[PreparedFace], list[str]]:
    """The training faces of one photo, and one reason for each face that was skipped."""
    contract = contract or InputContract()
    height, width = rgb.shape[:2]
    found = detect_faces(rgb, min_face=options.min_face)
    faces, small = choose_faces(
        found, (width, height), min_face=options.min_face, max_faces=options.max_faces
    )
    skipped = [f"smaller than --min-face {options.min_face} px"] * small
    if not found:
        skipped.append("no face found")
    kept = []
    for face in sorted(faces, key=lambda f: -f.size):
        image, outside = frame_face(rgb, face.landmarks, contract)
        if outside > options.max_outside:
            skipped.append("canonical window leaves the photo")
            continue
        lo = (stored_side(contract) - contract.size) // 2
        sharp = sharpness(image[lo : lo + contract.size, lo : lo + contract.size])
        if sharp < options.min_sharpness:
            skipped.append("too soft (below --min-sharpness)")
            continue
        kept.append(PreparedFace(image, outside, sharp, face.box))
    return kept, skipped


def pseudo_labels(segment: Callable[[torch.Tensor], torch.Tensor], image: np.ndarray) -> np.ndarray:
    """S-Net's classes of a stored face as a CelebAMask-HQ label map (uint8, side²)."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    probs = segment(x)[0]
    return CLASS_LABELS[probs.argmax(0).numpy()]


def run(
    items: Sequence[str],
    output: Path,
    options: PrepareOptions,
    segment: Callable[[torch.Tensor], torch.Tensor] | None,
    labeller: str,
    on_file: Callable[[Path], None] | None = None,
    contract: InputContract | None = None,
) -> PrepareReport:
    """Prepare every photo in ``items``; one bad file is reported, not the end of the run.

    ``segment`` maps a 1×3×H×W batch in [0, 1] to class probabilities (S-Net through a
    backend); None writes no masks (``--no-labels``). Faces are framed for ``contract``
    (the labelling model's; by default the canonical one).
    """
    contract = contract or InputContract()
    output = Path(output)
    images_dir, masks_dir = output / "images", output / "masks"
    jobs = plan_jobs(items, images_dir, recursive=options.recursive)
    if not jobs:
        raise UsageError("no input images: pass photo files or folders")
    images_dir.mkdir(parents=True, exist_ok=True)
    if segment is not None:
        masks_dir.mkdir(parents=True, exist_ok=True)
    _write_json(
        output / "prepare.json",
        {
            "crop": CROP,
            "side": stored_side(contract),
            "framing": f"{contract.describe()}, with a {MARGIN}× margin",
            "contract": contract.to_dict(),
            "labels": f"pseudo-labels by the S-Net of {labeller}" if segment else None,
            "options": asdict(options),
        },
    )
    report = PrepareReport()
    start = time.perf_counter()
    lines = []
    for job in jobs:
        try:
            loaded = read_image(job.source)
            faces, skipped = prepare_photo(loaded.rgb, options, contract)
            names = []
            for k, face in enumerate(faces):
                stem = job.target_stem.name + (f"_{k + 1}" if len(faces) > 1 else "")
                target = job.target_stem.with_name(stem + ".png")
                pixels = quantise(face.image)
                save_rgb8(target, pixels, overwrite=options.overwrite)
                if segment is not None:
                    mask_path = masks_dir / target.relative_to(images_dir)
                    mask_path.parent.mkdir(parents=True, exist_ok=True)
                    labels = pseudo_labels(segment, face.image)
                    save_label_png(mask_path, labels, overwrite=options.overwrite)
                names.append(str(target.relative_to(output)))
            for reason in skipped:
                report.skipped[reason] = report.skipped.get(reason, 0) + 1
            report.faces += len(faces)
            if faces:
                report.done.append(job.source)
            elif skipped:
                report.warnings.append((job.source, f"no training face: {skipped[0]}"))
            lines.append(
                {
                    "source": str(job.source),
                    "faces": names,
                    "outside": [round(f.outside, 4) for f in faces],
                    "sharpness": [round(f.sharpness, 1) for f in faces],
                    "skipped": skipped,
                }
            )
        except (ImageError, UsageError, UmsnError) as exc:
            report.failed.append((job.source, one_line(exc)))
        if on_file:
            on_file(job.source)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    write_text(output / "prepare.jsonl", text)
    report.seconds = time.perf_counter() - start
    return report


def _write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
