"""The input contract: what a set of weights expects of the images it is given.

As torchvision attaches its ``transforms`` to its weights, umsn keeps the facts that
decide how a face must be prepared in one frozen object saved with the model config
in every checkpoint: the network's input size, the canonical framing (where the five
landmarks sit in the crop, and which part of a CelebAMask-HQ frame that is), the
value range and the colour space. Training, :class:`umsn_cli.restorer.Restorer`, photo
alignment, ``umsn prepare``, the benchmark and export all read it from the model, so
a model trained at another size or framing needs no change outside its config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from umsn_cli.errors import UsageError

#: Where YuNet puts the 5 landmarks (eyes, nose tip, mouth corners; image left first) in
#: the canonical framing, as fractions of the crop side: the mean over the 100 ``val/``
#: faces of celebamask-mini, measured in pixels of a 128² crop.
CANONICAL_LANDMARKS: tuple[tuple[float, float], ...] = tuple(
    (x / 128, y / 128)
    for x, y in ((38.86, 58.34), (89.02, 59.25), (62.27, 87.98), (41.18, 102.99), (84.41, 104.03))
)

#: The sizes a face crop may be restored at (``deblur --max-face-size``): the networks
#: are fully convolutional, so a big face can be restored at its own scale rather than
#: shrunk to the input size of the contract, the one the weights were trained at.
WORKING_SIZES = (128, 256, 512)


def check_working_size(size: int) -> None:
    """Refuse a ``--max-face-size`` that is none of :data:`WORKING_SIZES`."""
    if size not in WORKING_SIZES:
        choices = ", ".join(map(str, WORKING_SIZES))
        raise UsageError(f"--max-face-size {size}: choose one of {choices}")


@dataclass(frozen=True)
class InputContract:
    """How an image must be prepared for a model: what its weights were trained on."""

    size: int = 128  # the network input is size×size
    #: The canonical framing: the 5 landmarks' places, as fractions of the crop side.
    landmarks: tuple[tuple[float, float], ...] = CANONICAL_LANDMARKS
    #: The same framing on CelebAMask-HQ's 512² frames: their centre ``crop`` fraction.
    #: Training and ``umsn benchmark`` read CelebAMask-HQ-framed folders with it.
    crop: float = 0.75
    value_range: tuple[float, float] = (0.0, 1.0)  # pixel values the network sees
    colour_space: str = "sRGB"

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and self.size > 0):
            raise ValueError(f"input size must be a positive whole number, got {self.size!r}")
        points = np.asarray(self.landmarks, dtype=float)
        if points.shape != (5, 2) or not ((points > 0) & (points < 1)).all():
            raise ValueError("landmarks must be 5 (x, y) pairs inside the crop, as fractions")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must lie in (0, 1], got {self.crop!r}")
        # Declared so that a checkpoint says what it wants; refused rather than ignored
        # until a model needs something else.
        if tuple(self.value_range) != (0.0, 1.0):
            raise ValueError(f"value range {self.value_range!r}: this umsn feeds [0, 1] pixels")
        if self.colour_space != "sRGB":
            raise ValueError(f"colour space {self.colour_space!r}: this umsn reads sRGB only")

    @property
    def template(self) -> np.ndarray:
        """The 5×2 landmarks in the model's input pixels (pixel centres at integers)."""
        return np.asarray(self.landmarks, dtype=float) * self.size

    def describe(self) -> str:
        """The framing in words, as the weights manifest gives it."""
        side = round(512 * self.crop)
        return (
            f"aligned face crop: the centre {side}×{side} of a CelebAMask-HQ 512×512 frame, "
            f"resized to {self.size}×{self.size}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputContract:
        """Rebuild a contract saved by :meth:`to_dict` (JSON turns tuples into lists)."""
        if not isinstance(data, dict):
            raise ValueError(f"input contract: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"input contract: unknown keys {sorted(unknown)}")
        values = dict(data)
        if "landmarks" in values:
            values["landmarks"] = tuple(tuple(float(v) for v in p) for p in values["landmarks"])
        if "value_range" in values:
            values["value_range"] = tuple(float(v) for v in values["value_range"])
        return cls(**values)
