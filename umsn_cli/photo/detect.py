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


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face YuNet finds in an H×W×3 float image in [0, 1], most confident first."""
    try:
        from yuface import c_detect
    except ImportError as exc:  # declared, but without wheels for some platforms
        raise MissingExtraError(
            "photo mode needs the face detector yuface (pip install yuface; x86-64 Linux "
            "and Windows only); for aligned face crops pass --mode aligned"
        ) from exc
    height, width = rgb.shape[:2]
    scale = min(1.0, DETECTION_SIDE / max(height, width))
    pixels = np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        scale_x, scale_y = width / size[0], height / size[1]
    else:
        scale_x = scale_y = 1.0
    # YuNet wants contiguous BGR; each row of its answer is: confidence (percent), box
    # x, y, w, h, then the 5 landmarks as x, y pairs (int16, so boxes may start < 0).
    rows = c_detect(np.ascontiguousarray(pixels[:, :, ::-1])).astype(np.float64)
    faces = []
    for row in rows:
        confidence = row[0] / 100
        if confidence < MIN_CONFIDENCE:
            continue
        x, y, w, h = row[1:5]
        points = row[5:15].reshape(5, 2) * (scale_x, scale_y)
        box = (x * scale_x, y * scale_y, w * scale_x, h * scale_y)
        faces.append(Face(box, points, float(confidence)))
    return sorted(faces, key=lambda f: -f.confidence)


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
