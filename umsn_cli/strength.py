"""How much of the network's correction each face gets (``--strength``).

The network was trained mostly on blurred faces: on a face that was sharp already it
still "restores", and the result is softer than the input (−2.5 dB against the sharp
face on the held-out faces). Whether a face was blurred shows in what the network
did to it. Blur takes away detail at a scale of a few pixels and the network puts it
back, so a blurred face comes out with several times the mid-frequency detail it went
in with; a sharp face comes out with the same or less. :func:`detail_ratio` measures
that: the energy of the Laplacian of the half-size grey image, input over output.

On the 100 held-out faces of celebamask-mini (50 measured, noise σ 0.01 and 0.02) the
ratio was 0.85–1.13 for unblurred faces, 0.31–0.67 under mild camera shake (5–11 px
on a 128² face) and 0.14–0.47 under the Shen et al. kernels (13–27 px): the two never
overlapped. :func:`auto_strength` gives blurred faces the whole correction and sharp
ones :data:`SHARP_STRENGTH` of it (the part that removes noise), which took unblurred
faces from −2.54 to +1.40 dB over the input and left the gain of every blurred group
within 0.01 dB of the full correction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from umsn_cli.errors import UsageError

#: A detail ratio at or below this is a blurred face: the whole correction.
BLURRED_RATIO = 0.72
#: At or above this, a sharp face: :data:`SHARP_STRENGTH` of the correction. Between the
#: two the strength goes linearly from one to the other.
SHARP_RATIO = 0.85
#: What a sharp face gets: enough of the correction to take some noise away, too little
#: to soften it (the best blend for unblurred faces with noise σ 0.01 was 0.27–0.43).
SHARP_STRENGTH = 0.35


def detail_ratio(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """N ratios for N×3×H×W crops in and out of the network: the energy of the
    Laplacian of the half-size grey image of ``before`` over that of ``after``.

    Half size, because at full size sensor noise dominates the finest detail of a
    blurred face and the network's denoising would read as a sharp input.
    """
    grey = torch.stack([before, after]).float().mean(dim=2, keepdim=True).flatten(0, 1)
    half = F.avg_pool2d(grey, 2)
    kernel = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    energy = F.conv2d(half, kernel[None, None]).square().mean(dim=(1, 2, 3))
    energy_in, energy_out = energy.view(2, -1)
    return energy_in / energy_out.clamp_min(1e-12)


def auto_strength(ratio: torch.Tensor) -> torch.Tensor:
    """The strength for each detail ratio: 1 for blurred faces, :data:`SHARP_STRENGTH`
    for sharp ones, linear between :data:`BLURRED_RATIO` and :data:`SHARP_RATIO`."""
    sharpness = ((ratio - BLURRED_RATIO) / (SHARP_RATIO - BLURRED_RATIO)).clamp(0, 1)
    return 1 - sharpness * (1 - SHARP_STRENGTH)


def blend(before: torch.Tensor, after: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """``before + strength · (after − before)`` per image of the batch."""
    return before + strength.view(-1, 1, 1, 1).to(after.dtype) * (after - before)


def is_sharp(ratio: float) -> bool:
    """Whether a face with this detail ratio was sharp already (``--skip-sharp``)."""
    return ratio >= SHARP_RATIO


def judged(ratio: float) -> str:
    """What a face was judged: ``sharp``, ``blurred`` or, between the two, ``mild``."""
    return "sharp" if is_sharp(ratio) else "blurred" if ratio <= BLURRED_RATIO else "mild"


def describe(ratio: float, strength: float) -> str:
    """The ``-v`` line of one face: what it was judged, and what it got."""
    return f"detail ratio {ratio:.2f} ({judged(ratio)}): strength {strength:.2f}"


def face_record(ratio: float, strength: float, box: list[float] | None = None) -> dict:
    """One face of ``deblur --report``: where it is (photos), its judgement, its strength."""
    return {"box": box, "detail_ratio": round(ratio, 4), "judged": judged(ratio),
            "strength": round(strength, 4)}  # fmt: skip


def parse_strength(value: str) -> float | None:
    """``--strength``: ``auto`` (None) or a number from 0 to 1."""
    if value == "auto":
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 <= number <= 1:
        raise UsageError(f"--strength {value}: give auto or a number from 0 to 1")
    return number
