"""Identity distance: does the restored face still look like the same person?

PSNR and SSIM reward a restoration that is close pixel by pixel, but a deblurred
face can score well and still drift toward someone else. dlib's face-recognition
ResNet (``dlib_face_recognition_resnet_model_v1.dat``) maps a face to a 128-d
descriptor in which two photos of the same person lie closer than 0.6 (dlib's usual
threshold), so the distance between the descriptors of the restored and the sharp
face measures identity drift.

dlib and its model files are an optional extra (``pip install "umsn[eval]"``):
:func:`identity_unavailable_reason` lets ``umsn benchmark`` skip the score with a
message instead of failing.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from umsn_cli.errors import MissingExtraError
from umsn_cli.images import quantise

SAME_PERSON_THRESHOLD = 0.6
"""dlib's usual threshold: descriptors closer than this are taken as the same person."""

Box = tuple[int, int, int, int]
"""A face box in pixels: left, top, right, bottom (inclusive, as ``dlib.rectangle``)."""

_INSTALL = 'pip install "umsn[eval]" (or pip install dlib-bin face-recognition-models)'
_SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
_RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
# Aligned crops centre the face and fill the frame with it; on such crops dlib's
# detector box covers about the central 60 % (29..101 of 128 on the astronaut test
# face), so that is where a face the detector misses is assumed to be.
_FALLBACK_FRACTION = 0.6


def _load() -> tuple[ModuleType, Path, Path]:
    """dlib, the 5-landmark shape predictor file and the recognition ResNet file.

    The model files are located without importing ``face_recognition_models``: its
    ``__init__`` imports ``pkg_resources``, which recent setuptools no longer ships.
    """
    try:
        dlib = importlib.import_module("dlib")
    except ImportError:
        raise MissingExtraError(f"identity distance needs dlib: {_INSTALL}") from None
    spec = importlib.util.find_spec("face_recognition_models")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        shape_file = Path(folder) / "models" / _SHAPE_MODEL
        recognition_file = Path(folder) / "models" / _RECOGNITION_MODEL
        if shape_file.is_file() and recognition_file.is_file():
            return dlib, shape_file, recognition_file
    raise MissingExtraError(
        f"identity distance needs dlib's face models (face-recognition-models): {_INSTALL}"
    )


def identity_unavailable_reason() -> str | None:
    """None when identity distances can be computed, else one line saying what to install."""
    try:
        _load()
    except MissingExtraError as exc:
        return str(exc)
    return None


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 float in [0, 1] → the contiguous uint8 RGB array dlib requires."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB image, got shape {rgb.shape}")
    return quantise(rgb)  # C-contiguous


class IdentityEmbedder:
    """dlib's face detector, 5-point landmarks and recognition ResNet, loaded once.

    Loading the models takes a fraction of a second, so one embedder should serve a
    whole benchmark run. Raises :class:`~umsn_cli.errors.MissingExtraError` when the
    ``[eval]`` extra is not installed.
    """

    def __init__(self) -> None:
        self._dlib, shape_file, recognition_file = _load()
        self._detector = self._dlib.get_frontal_face_detector()
        self._shapes = self._dlib.shape_predictor(str(shape_file))
        self._recognizer = self._dlib.face_recognition_model_v1(str(recognition_file))
        # A benchmark scores each sharp face against many blurry copies: its box and
        # descriptor are computed once (keyed by the pixels, 128 floats per face).
        self._sharp: dict[bytes, tuple[Box, np.ndarray]] = {}

    def face_box(self, rgb: np.ndarray) -> Box:
        """The largest face dlib finds, else a central box where an aligned face is.

        Test faces are small (128×128), below the ~80 px faces the detector finds at
        its own scale, so a miss is retried once on the image upsampled 2×. A face
        blurred past detection is assumed to be centred, as aligned crops are.
        """
        image = _to_uint8(rgb)
        faces = self._detector(image, 0) or self._detector(image, 1)
        if faces:
            face = max(faces, key=lambda r: r.area())
            return face.left(), face.top(), face.right(), face.bottom()
        height, width = image.shape[:2]
        side = round(_FALLBACK_FRACTION * min(height, width))
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side - 1, top + side - 1

    def embed(self, rgb: np.ndarray, box: Box | None = None) -> np.ndarray:
        """The 128-d float64 identity descriptor of the face in ``box`` (found if None)."""
        image = _to_uint8(rgb)
        rect = self._dlib.rectangle(*(box if box is not None else self.face_box(rgb)))
        shape = self._shapes(image, rect)
        return np.array(self._recognizer.compute_face_descriptor(image, shape), np.float64)

    def distance(self, restored: np.ndarray, sharp: np.ndarray) -> float:
        """Euclidean distance between the identity descriptors of two same-size faces.

        The face is located once, on the sharp image, and that box is used for both:
        a detection on the restored image could land elsewhere (or fail), and the score
        would then measure the two boxes rather than the restoration. Below 0.6
        (:data:`SAME_PERSON_THRESHOLD`) dlib takes the two faces as one person.
        """
        if restored.shape != sharp.shape:
            raise ValueError(f"restored {restored.shape} and sharp {sharp.shape} differ in size")
        key = hashlib.blake2b(np.ascontiguousarray(sharp).tobytes(), digest_size=16).digest()
        if key not in self._sharp:
            box = self.face_box(sharp)
            self._sharp[key] = box, self.embed(sharp, box)
        box, reference = self._sharp[key]
        return float(np.linalg.norm(self.embed(restored, box) - reference))
