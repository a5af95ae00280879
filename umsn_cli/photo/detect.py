"""Finding faces in a photo: YuNet (libfacedetection, through ``yuface``), 5 landmarks each.

YuNet is small (about 5 ms a face here), BSD-licensed, ships its weights inside the
wheel and needs no network. It works best on images up to about 960 px, so larger
photos are searched at a reduced size and the coordinates scaled back; the landmarks
are only used to fit a similarity transform, where a pixel of rounding averages out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from umsn_cli.errors import MissingExtraError
from umsn_cli.images import quantise

#: YuNet's comfortable input size: larger photos are searched downscaled to this.
DETECTION_SIDE = 960
#: Detections below this confidence (0–1) are discarded.
MIN_CONFIDENCE = 0.5


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixel coordinates (x right, y down, pixel centres)."""

    box: tuple[float, float, float, float]  # left, top, width, height
    landmarks: np.ndarray  # 5×2: the eyes, the nose tip, the mouth corners (image left first)
    confidence: float

    @property
    def size(self) -> float:
        """The shorter side of the box: what ``--min-face`` compares."""
        return min(self.box[2], self.box[3])

    @property
    def centre(self) -> tuple[float, float]:
        left, top, width, height = self.box
        return left + width / 2, top + height / 2


def detect_faces(rgb: np.ndarray, min_face: float = 24) -> list[Face]:
    """Every face YuNet finds in an H×W×3 float image in [0, 1], most confident first.

    YuNet sees at most :data:`DETECTION_SIDE` pixels at a time and finds faces from
    about :data:`SMALLEST_FACE` pixels. A photo whose downscaled view would shrink a
    ``min_face`` face below that is also searched in overlapping tiles, at the scale
    where ``min_face`` becomes :data:`SMALLEST_FACE` (a 150 px face in an 11000 px
    photo is 13 px at 960). Detections of one face from both passes are merged.
    """
    detect = _yunet()
    pixels = quantise(rgb)  # YuNet reads 8-bit; converted once, for both passes
    height, width = pixels.shape[:2]
    scale = min(1.0, DETECTION_SIDE / max(height, width))
    faces = _detect(detect, pixels, scale)
    tile_scale = min(1.0, SMALLEST_FACE / max(min_face, 1))
    if scale < tile_scale:
        # A face too small for the whole view (under SMALLEST_FACE / scale photo px) must
        # lie whole in some tile: the overlap covers it, with a margin.
        overlap = min(DETECTION_SIDE // 2, int(1.5 * SMALLEST_FACE * tile_scale / scale) + 16)
        faces += _detect_tiled(detect, pixels, tile_scale, overlap)
    return _merge(faces)


#: About the smallest face (box side, px) YuNet finds.
SMALLEST_FACE = 16


def confidence_at(view: np.ndarray, landmarks: np.ndarray, tolerance: float = 0.12) -> float:
    """YuNet's confidence for a face in an H×W×3 float ``view`` whose 5 landmarks lie at
    ``landmarks`` (each within ``tolerance`` × the view's width); 0 when it finds none
    there. The second look of :mod:`umsn_cli.photo.pipeline` shows YuNet an unsure
    detection again, upright and at the scale it finds faces best at."""
    reach = tolerance * view.shape[1]
    found = [
        f.confidence
        for f in _detect(_yunet(), quantise(view), 1.0)
        if np.abs(f.landmarks - landmarks).max() <= reach
    ]
    return max(found, default=0.0)


def _detect_tiled(detect, pixels: np.ndarray, scale: float, overlap: int) -> list[Face]:
    """YuNet over overlapping tiles of 8-bit ``pixels`` resized by ``scale``, in photo
    coordinates."""
    height, width = pixels.shape[:2]
    small = _resized(pixels, scale)
    sx, sy = width / small.shape[1], height / small.shape[0]
    step = DETECTION_SIDE - overlap
    faces = []
    for top in range(0, max(1, small.shape[0] - overlap), step):
        for left in range(0, max(1, small.shape[1] - overlap), step):
            tile = small[top : top + DETECTION_SIDE, left : left + DETECTION_SIDE]
            for f in _detect(detect, tile, 1.0):
                x, y, w, h = f.box
                box = ((x + left) * sx, (y + top) * sy, w * sx, h * sy)
                points = np.add(f.landmarks, (left, top)) * (sx, sy)
                faces.append(Face(box, points, f.confidence))
    return faces


def _yunet():
    try:
        from yuface import c_detect
    except ImportError as exc:  # declared, but without wheels for some platforms
        raise MissingExtraError(
            "photo mode needs the face detector yuface (pip install yuface; x86-64 Linux "
            "and Windows only); for aligned face crops pass --mode aligned"
        ) from exc
    return c_detect


def _resized(pixels: np.ndarray, scale: float) -> np.ndarray:
    """8-bit H×W×3 ``pixels`` resized by ``scale`` ≤ 1 (bilinear), at least 1×1."""
    if scale >= 1:
        return pixels
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))


def _detect(detect, pixels: np.ndarray, scale: float) -> list[Face]:
    """YuNet on 8-bit ``pixels`` resized by ``scale``; coordinates in ``pixels``' frame."""
    height, width = pixels.shape[:2]
    pixels = _resized(pixels, scale)
    scale_x, scale_y = width / pixels.shape[1], height / pixels.shape[0]
    # YuNet wants contiguous BGR; each row of its answer is: confidence (percent), box
    # x, y, w, h, then the 5 landmarks as x, y pairs (int16, so boxes may start < 0).
    rows = detect(np.ascontiguousarray(pixels[:, :, ::-1])).astype(np.float64)
    faces = []
    for row in rows:
        confidence = row[0] / 100
        if confidence < MIN_CONFIDENCE:
            continue
        x, y, w, h = row[1:5]
        points = row[5:15].reshape(5, 2) * (scale_x, scale_y)
        box = (x * scale_x, y * scale_y, w * scale_x, h * scale_y)
        faces.append(Face(box, points, float(confidence)))
    return faces


def _merge(faces: list[Face], overlap: float = 0.3) -> list[Face]:
    """One detection per face: the most confident of boxes overlapping by IoU > overlap."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.confidence):
        if all(_iou(face.box, other.box) <= overlap for other in kept):
            kept.append(face)
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


def choose_faces(
    faces: list[Face],
    image_size: tuple[int, int],
    *,
    min_face: float = 0,
    max_faces: int | None = None,
    only_center_face: bool = False,
) -> tuple[list[Face], int]:
    """The faces to restore, and how many were found but left out for being too small.

    ``only_center_face`` keeps the face nearest the image centre; ``max_faces`` keeps
    the largest ones.
    """
    big = [f for f in faces if f.size >= min_face]
    small = len(faces) - len(big)
    if only_center_face and big:
        width, height = image_size
        big = [
            min(big, key=lambda f: (f.centre[0] - width / 2) ** 2 + (f.centre[1] - height / 2) ** 2)
        ]
    if max_faces is not None:
        big = sorted(big, key=lambda f: -f.size)[:max_faces]
    return big, small
