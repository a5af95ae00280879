"""Training faces: augmented and blurred on the fly, per batch.

Faces come from :mod:`umsn_cli.faces` (read once, kept as uint8 arrays). Each stored
face covers a little more than the canonical framing, so a batch can jitter scale and
position around it. Augmentation and blur run on whole batches in torch: one
``grid_sample`` for crop, scale and flip of images and masks together, one grouped
convolution for the per-sample blur kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from umsn_cli.blur.degrade import MIXES, DegradationMix, degrade
from umsn_cli.errors import UsageError
from umsn_cli.faces import FaceSet


@dataclass
class Batch:
    """One training batch; images in [0, 1], N×C×S×S (S: the model's input size)."""

    sharp: torch.Tensor
    blurry: torch.Tensor
    masks: torch.Tensor | None  # soft class masks of the sharp face (N×4×H×W)

    def to(self, device: torch.device) -> Batch:
        """On ``device``, channels-last: the layout the CPU's bf16 kernels run fastest in."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device).contiguous(memory_format=torch.channels_last)

        return Batch(move(self.sharp), move(self.blurry), move(self.masks))


class Sampler:
    """Draws augmented, blurred batches from a :class:`FaceSet` with its own RNG.

    Everything random comes from one ``torch.Generator``, whose state goes into the
    training checkpoint, so a resumed run continues the same sequence of batches.
    """

    def __init__(
        self,
        faces: FaceSet,
        kernels: torch.Tensor,
        seed: int,
        mix: DegradationMix | None = None,
        scale_jitter: float = 0.1,
        shift_jitter: float = 0.05,
        weights: torch.Tensor | None = None,
        large: FaceSet | None = None,
        large_share: float = 0.0,
    ) -> None:
        """``kernels``: the camera-shake bank (:func:`umsn_cli.blur.degrade.motion_bank`);
        ``weights``: how likely each face is drawn (None: all alike); ``large``: faces
        stored at a larger working size, drawn for a ``large_share`` of the batches."""
        self.faces = faces
        self.weights = weights
        self.large = large
        self.large_share = large_share
        self.kernels = kernels
        self.mix = mix or MIXES["real"]
        self.scale_jitter = scale_jitter
        self.shift_jitter = shift_jitter
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def sample(self, batch_size: int, blur: str = "all", blur_class: int | None = None) -> Batch:
        """``blur``: "all" (blur whole faces), "none" (sharp input) or "class" (only mask i).

        With large faces, a ``large_share`` of the batches are drawn from them at their
        size, with as many fewer faces as each has more pixels (at least one), blurred
        by the same mix: the kernels keep their size in pixels, so a large face gets the
        small shake that spoils a big face in a photo.
        """
        g = self.generator
        faces, weights = self.faces, self.weights
        if self.large is not None and torch.rand(1, generator=g).item() < self.large_share:
            faces, weights = self.large, None
            batch_size = max(1, batch_size * self.faces.size**2 // faces.size**2)
        if weights is None:
            index = torch.randint(len(faces), (batch_size,), generator=g).numpy()
        else:
            index = torch.multinomial(weights, batch_size, True, generator=g).numpy()
        # The part of each stored face that becomes the sample, in its [-1, 1] coords.
        scale = faces.window * self._uniform(
            batch_size, 1 - self.scale_jitter, 1 + self.scale_jitter
        )
        scale = scale.clamp(max=1.0)
        room = 1 - scale
        shift = torch.stack([self._uniform(batch_size, -1, 1) for _ in range(2)], 1)
        shift = shift * torch.minimum(room, torch.full_like(room, self.shift_jitter * 2))[:, None]
        flip = torch.where(torch.rand(batch_size, generator=g) < 0.5, -1.0, 1.0)
        theta = torch.zeros(batch_size, 2, 3)
        theta[:, 0, 0] = scale * flip
        theta[:, 1, 1] = scale
        theta[:, :, 2] = shift
        size = faces.size
        grid = F.affine_grid(theta, [batch_size, 1, size, size], align_corners=False)

        images = torch.from_numpy(faces.images[index]).permute(0, 3, 1, 2).float() / 255
        sharp = F.grid_sample(images, grid, mode="bilinear", align_corners=False).clamp(0, 1)
        masks = None
        if faces.masks is not None:
            stored_masks = torch.from_numpy(faces.masks[index]).float() / 255
            masks = F.grid_sample(stored_masks, grid, mode="bilinear", align_corners=False)
        if blur == "none":
            return Batch(sharp, sharp, masks)
        blurry = self.blur(sharp)
        if blur == "class":
            if masks is None or blur_class is None:
                raise UsageError("class-wise blur needs label masks (--masks DIR) and a class")
            m = masks[:, blur_class : blur_class + 1]
            blurry = m * blurry + (1 - m) * sharp
        return Batch(sharp, blurry, masks)

    def blur(self, sharp: torch.Tensor) -> torch.Tensor:
        """One draw of the degradation mix per sample: blur, noise, JPEG."""
        return degrade(sharp, self.mix, self.kernels, self.generator)


def mixing_weights(first: int, rest: int, rest_share: float) -> torch.Tensor:
    """Per-face draw weights for ``first`` faces then ``rest`` faces, such that a draw
    comes from the ``rest`` with probability ``rest_share``, each face of a part alike."""
    return torch.cat(
        [torch.full((first,), (1 - rest_share) / first), torch.full((rest,), rest_share / rest)]
    ).double()
