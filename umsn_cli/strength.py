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

:func:`judge` measures the blur's extent in px too, from the same measurement of detail
at four scales (:data:`EXTENT_WEIGHTS`), for ``-v`` and ``--report``.
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


#: Where detail is measured: the grey crop average-pooled by these factors. Blur of
#: extent L takes the detail finer than about L px, so 2–16 span 1–45 px at 128².
SCALES = (2, 4, 8, 16)
_LAPLACIAN = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])[None, None]
#: The blur extent (px of the model's input): the log extent is a weighted sum of the log
#: detail of input over output at each scale, how the input's detail falls from each
#: scale to the next, and the input's finest detail, plus a constant. Least squares on
#: 100 training faces × 15 extents from 1 to 45 px, noise σ 0.01; on the 100 val/ faces
#: it was 5.4 px off on average (26 % median relative error; 0.8 px on unblurred faces,
#: 2.2 on 3–11 px, 5.8 on 13–27, 9.3 on 29–45), rank correlation 0.88 with the truth
#: (`python benchmarks/blur_extent.py`, docs/results/blur-extent.json; docs/usage.md).
EXTENT_WEIGHTS = (-0.09458, 0.01341, -0.07876, -0.71818, -0.85019, 0.10847, 0.00027, -0.65208)
EXTENT_CONSTANT = -2.35207
EXTENT_RANGE = (1.0, 45.0)  # what the fit saw: no estimate beyond it


def log_detail(images: torch.Tensor) -> torch.Tensor:
    """N×len(SCALES): the log energy of the Laplacian of the grey image pooled by each
    of :data:`SCALES`, for N×3×H×W images in [0, 1]."""
    grey = images.float().mean(dim=1, keepdim=True)
    energies = []
    for factor in SCALES:
        pooled = F.avg_pool2d(grey, factor)
        energies.append(F.conv2d(pooled, _LAPLACIAN).square().mean(dim=(1, 2, 3)))
    return torch.stack(energies, dim=1).clamp_min(1e-12).log()


def detail_ratio(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """N ratios for N×3×H×W crops in and out of the network: the Laplacian energy of
    the half-size grey image of ``before`` over that of ``after``.

    Half size, because at full size sensor noise dominates the finest detail of a
    blurred face and the network's denoising would read as a sharp input.
    """
    return judge(before, after)[0]


def judge(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The :func:`detail_ratio` of each crop and its blur extent in px of the crop
    (:data:`EXTENT_WEIGHTS`), from one measurement of the detail of both."""
    detail_in, detail_out = log_detail(before), log_detail(after)
    ratio = (detail_in[:, 0] - detail_out[:, 0]).exp()
    falls = detail_in[:, :-1] - detail_in[:, 1:]
    features = torch.cat([detail_in - detail_out, falls, detail_in[:, :1]], dim=1)
    logs = features @ torch.tensor(EXTENT_WEIGHTS) + EXTENT_CONSTANT
    return ratio, logs.exp().clamp(*EXTENT_RANGE)


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


def describe(ratio: float, strength: float, blur_px: float) -> str:
    """The ``-v`` line of one face: what it was judged, and what it got."""
    return (f"detail ratio {ratio:.2f} ({judged(ratio)}), blur about {blur_px:.0f} px: "
            f"strength {strength:.2f}")  # fmt: skip


def face_record(
    ratio: float, strength: float, blur_px: float, box: list[float] | None = None
) -> dict:
    """One face of ``deblur --report``: where it is (photos), its judgement, its blur
    extent in px of the image it came from, its strength."""
    return {"box": box, "detail_ratio": round(ratio, 4), "judged": judged(ratio),
            "blur_px": round(blur_px, 1), "strength": round(strength, 4)}  # fmt: skip


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
