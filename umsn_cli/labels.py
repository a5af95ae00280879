"""Face-parsing labels → the four UMSN classes (docs/method.md, Conventions; data README).

UMSN groups labels into m1 background, m2 face skin, m3 facial features, m4 hair.
This maps the 19 CelebAMask-HQ labels. Eyeglasses (label 3) go to m3, the features:
in CelebAMask-HQ they cover the eyes and the skin between them, which is exactly the
high-detail region the m3 class weight (3.6) exists to protect; counting it as skin
would teach the deblurrer that glasses are smooth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from umsn_cli.errors import ImageError

BACKGROUND, SKIN, FEATURES, HAIR = range(4)

#: CelebAMask-HQ label value → UMSN class.
CELEBAMASK_TO_UMSN = {
    0: BACKGROUND, 14: BACKGROUND, 15: BACKGROUND, 16: BACKGROUND, 17: BACKGROUND,
    18: BACKGROUND,
    1: SKIN, 8: SKIN, 9: SKIN,
    2: FEATURES, 3: FEATURES, 4: FEATURES, 5: FEATURES, 6: FEATURES, 7: FEATURES,
    10: FEATURES, 11: FEATURES, 12: FEATURES,
    13: HAIR,
}  # fmt: skip

_LOOKUP = np.zeros(256, dtype=np.uint8)
for _value, _cls in CELEBAMASK_TO_UMSN.items():
    _LOOKUP[_value] = _cls


def read_celebamask_labels(path: Path) -> np.ndarray:
    """A CelebAMask-HQ label PNG (palette or grey, one value per pixel) → H×W UMSN classes."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ImageError(
                    f"{path}: a label mask must be a palette or greyscale PNG, got mode "
                    f"{img.mode}; save one label value per pixel"
                )
            values = np.asarray(img)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read the label mask ({exc})") from exc
    if values.max(initial=0) > 18:
        raise ImageError(
            f"{path}: label value {int(values.max())} is not a CelebAMask-HQ label (0–18)"
        )
    return _LOOKUP[values]


def one_hot(labels: np.ndarray, classes: int = 4) -> np.ndarray:
    """H×W class indices → classes×H×W float32 one-hot."""
    return (labels[None] == np.arange(classes)[:, None, None]).astype(np.float32)
