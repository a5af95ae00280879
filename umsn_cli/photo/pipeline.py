"""Whole photos: find every face, align it, restore it, paste it back.

:func:`restore_photo` is photo mode of ``umsn deblur``; :func:`looks_aligned` is how
``--mode auto`` tells an aligned face crop from a photo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from umsn_cli.choices import Mode, values
from umsn_cli.contract import InputContract
from umsn_cli.errors import UsageError
from umsn_cli.images import from_array
from umsn_cli.photo.align import Alignment, align, crop, similarity
from umsn_cli.photo.detect import Face, choose_faces, confidence_at, detect_faces
from umsn_cli.photo.paste import Canvas, face_mask, real_pixels_mask
from umsn_cli.strength import describe, is_sharp

if TYPE_CHECKING:  # the Restorer calls this module: it restores photos through it
    from umsn_cli.restorer import Restorer

#: What ``--mode`` takes: aligned crops, whole photos, or auto (decided per image).
MODES = values(Mode)
#: Detections at least this confident are faces. Below it, textures also reach the
#: detector's threshold (a cat, tiled stone and fabric, galaxies, smooth grey shading),
#: and so do blurred faces (0.53–0.79 measured on the test photos): a second look decides.
SURE = 0.8
#: The second look: YuNet sees the unsure detection again, rotated upright by its own
#: landmarks, the model's framing shrunk to ``SECOND_LOOK_FACE`` of a ``SECOND_LOOK_VIEW``
#: px view with the scene around it. Blurred and grey faces come back at 0.74–0.90
#: there (and sure faces at ≥ 0.85); the texture, cat and grey-shading detections
#: measured at most 0.68, mostly nothing at all, since what fooled the detector once
#: rarely does so again from another angle and scale.
SECOND_LOOK = 0.7
SECOND_LOOK_VIEW = 160
SECOND_LOOK_FACE = 0.4


def check_mode(mode: str) -> None:
    """Refuse a ``mode`` that is none of :data:`MODES` (before any slow work)."""
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")


@dataclass(frozen=True)
class PhotoOptions:
    min_face: int = 24  # px: smaller faces are left as they are
    max_faces: int | None = None
    only_center_face: bool = False


@dataclass
class RestoredFace:
    face: Face
    alignment: Alignment
    before: np.ndarray  # the aligned crop, S×S×3
    after: np.ndarray
    probs: np.ndarray  # 4×S×S
    detail_ratio: float = 1.0  # mid-frequency detail in over out (umsn_cli.strength)
    strength: float = 1.0  # the share of the correction it got
    blur_px: float = 1.0  # the blur's estimated extent, in px of the photo

    @property
    def sharp(self) -> bool:
        return is_sharp(self.detail_ratio)


@dataclass
class PhotoResult:
    rgb: np.ndarray  # the whole photo, H×W×3 float32 in [0, 1]
    faces: list[RestoredFace] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # per-file remarks for the report
    canvas: Canvas | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """H×W: how much of each pixel comes from a restored face. Built when asked for:
        it is photo-sized, and the CLI never needs it."""
        if self.canvas is None:
            return np.zeros(self.rgb.shape[:2], np.float32)
        return self.canvas.mask()


def looks_aligned(rgb: np.ndarray, input_size: int, faces: list[Face] | None = None) -> bool:
    """``--mode auto``: is this a small, roughly square crop filled by one face?

    Small (at most 4× the model input) and square within 4:3; and either no face is
    found (a crop blurred past detection) or exactly one, at least 30 % of the width
    (aligned crops range from the paper's tight framing, about 70 %, to loose ones, 40 %).
    ``faces``: the detections of ``rgb`` where they are known already.
    """
    if not _small_and_square(rgb, input_size):
        return False
    faces = detect_faces(rgb) if faces is None else faces
    return not faces or (len(faces) == 1 and faces[0].box[2] >= 0.3 * rgb.shape[1])


def _small_and_square(rgb: np.ndarray, input_size: int) -> bool:
    height, width = rgb.shape[:2]
    return max(height, width) <= min(4 * input_size, 4 / 3 * min(height, width))


def choose_mode(rgb: np.ndarray, mode: str, input_size: int) -> tuple[str, list[Face] | None]:
    """``--mode`` for one image, "aligned" or "photo" (``auto`` asks :func:`looks_aligned`),
    and the faces found in deciding (None where none were searched for), which photo mode
    then takes instead of searching again. Only images at most 4× the model input are
    searched here, where the search does not depend on ``--min-face`` (no tiles)."""
    if mode != "auto":
        return mode, None
    if not _small_and_square(rgb, input_size):
        return "photo", None
    faces = detect_faces(rgb)
    return ("aligned" if looks_aligned(rgb, input_size, faces) else "photo"), faces


def restore_photo(
    rgb: np.ndarray,
    restorer: Restorer,
    options: PhotoOptions | None = None,
    *,
    in_place: bool = False,
    found: list[Face] | None = None,
) -> PhotoResult:
    """Restore every chosen face of an H×W×3 photo; everything else stays bit-exact.

    ``in_place`` writes the result into ``rgb`` (a writable float32 array) rather than
    a copy: for an 80-megapixel photo that is a gigabyte less, and the CLI, which owns
    the decoded photo, needs the original no more.
    ``found``: the photo's detections, where :func:`choose_mode` made them already.
    """
    options = options or PhotoOptions()
    height, width = rgb.shape[:2]
    if found is None:
        found = detect_faces(rgb, min_face=options.min_face)
    faces, small = choose_faces(
        found,
        (width, height),
        min_face=options.min_face,
        max_faces=options.max_faces,
        only_center_face=options.only_center_face,
    )
    notes = []
    if small:
        notes.append(
            f"{small} face(s) smaller than --min-face {options.min_face} px left as they are"
        )
    if not faces:
        notes.append("no face found: left unchanged" if not found else "no face restored")
        return PhotoResult(rgb, [], notes)
    faces = _faces_on_second_look(rgb, faces, restorer.contract, notes)
    if not faces:
        return PhotoResult(rgb, [], [*notes, "no face restored"])
    alignments = [align(f.landmarks, restorer.contract) for f in faces]
    crops = [crop(rgb, a).clamp(0, 1).permute(1, 2, 0).numpy() for a in alignments]
    results = restorer.deblur_batch([from_array(c) for c in crops])
    canvas = Canvas(rgb.astype(np.float32, copy=False))
    restored = []
    for face, alignment, before, result in zip(faces, alignments, crops, results, strict=True):
        change = torch.from_numpy(result.rgb - before).permute(2, 0, 1)
        mask = face_mask(result.probs) * real_pixels_mask(alignment, height, width)
        canvas.add(alignment, change, mask)
        # The crop's pixels are 1/scale photo pixels: the blur in the photo's own px.
        blur_px = result.blur_px / alignment.scale
        judged = (result.detail_ratio, result.strength, blur_px)
        restored.append(RestoredFace(face, alignment, before, result.rgb, result.probs, *judged))
        left, top = (round(v) for v in face.box[:2])
        notes.append(f"face at ({left}, {top}): {describe(*judged)}")
    notes.append(f"{len(faces)} face(s) restored")
    return PhotoResult(canvas.result(in_place=in_place), restored, notes, canvas)


def _faces_on_second_look(
    rgb: np.ndarray, faces: list[Face], contract: InputContract, notes: list[str]
) -> list[Face]:
    """The detections that are faces: sure ones, and unsure ones that the detector finds
    again on a second look (:data:`SECOND_LOOK`). Each detection gets a note (``-v``)."""
    view = SECOND_LOOK_VIEW
    # The model's framing (template in contract px), shrunk into the middle of the view.
    target = (contract.template / contract.size - 0.5) * SECOND_LOOK_FACE * view + view / 2
    kept = []
    for face in faces:
        left, top, width, height = (round(v) for v in face.box)
        where = f"detection at ({left}, {top}), {width}×{height} px: detector {face.confidence:.2f}"
        if face.confidence >= SURE:
            notes.append(where)
            kept.append(face)
            continue
        upright = Alignment(similarity(face.landmarks, target), view)
        pixels = crop(rgb, upright).clamp(0, 1).permute(1, 2, 0).numpy()
        again = confidence_at(pixels, target)
        if again < SECOND_LOOK:
            notes.append(f"{where}, second look {again:.2f}: not a face, left alone")
            continue
        notes.append(f"{where}, second look {again:.2f}")
        kept.append(face)
    return kept
