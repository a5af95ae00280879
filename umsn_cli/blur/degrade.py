"""The degradations training samples from: camera shake, defocus, gaussian blur, noise, JPEG.

A network learns to undo the blur it was shown. Users' photos are blurred by camera
shake of every shape (curved, with sharp turns, with the camera dwelling at some
points of the path), by missed focus, by soft optics; they carry sensor noise that
grows with brightness, and they are JPEGs. :class:`DegradationMix` says in what
proportions a training batch covers these, and :func:`degrade` applies one draw of it
to every face of a batch, on whole tensors, with one ``torch.Generator`` (so a resumed
run draws the same sequence).

Four mixes are named in :data:`MIXES`: ``motion``, the paper's (camera-shake kernels
13–29 px and gaussian noise only, what ``umsn-lite.celebamask-v1`` was trained with),
``real`` (shake 5–31 px, defocus, gaussian blur, noise and JPEG: what the default
weights up to ``wild-v9`` were trained with, and the default for training runs) and
``wide``, which stretches ``real`` at both ends: near-identity and mild blur, so that a
nearly sharp face is restored rather than smoothed, and severe shake up to 45 px on a
128² face, with a quarter of the shake kernels in each end band; ``gentle``, which
adds near-identity and mild blur to ``real`` and keeps its share of 13–27 px shake.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from umsn_cli.blur.convolve import add_noise, blur_batch, stack_kernels
from umsn_cli.blur.kernels import kernel_from_trajectory, path_length, trajectories

#: The kinds of blur a sample can get, in the order of :attr:`DegradationMix.shares`.
KINDS = ("motion", "defocus", "gaussian", "sharp")


@dataclass(frozen=True)
class DegradationMix:
    """Shares of each blur kind (they sum to 1) and the noise and JPEG that follow.

    ``sharp`` samples get no blur at all: a deblurrer that also sees sharp faces learns
    to leave them alone instead of over-sharpening a photo that was fine.
    """

    motion: float
    defocus: float
    gaussian: float
    sharp: float
    motion_sizes: tuple[int, ...]  # odd kernel sizes of the camera-shake bank
    shake_turns: float  # mean number of sudden turns added to a camera path (Poisson)
    dwell: float  # 0: even speed along the path; larger: the camera lingers more unevenly
    defocus_radius: tuple[float, float]  # disc radius in pixels, uniform
    gaussian_sigma: tuple[float, float]  # pixels, uniform
    noise_max: float  # gaussian read noise σ ~ U(0, noise_max) on the [0, 1] scale
    shot_share: float  # share of samples that also get signal-dependent (shot) noise
    shot_max: float  # shot-noise variance per unit of intensity, ~ U(0, shot_max)
    jpeg_share: float  # share of samples re-compressed as JPEG after blur and noise
    jpeg_quality: tuple[int, int]  # JPEG quality, uniform integer in this range
    # How likely each of ``motion_sizes`` is drawn (relative weights); empty: all alike.
    motion_size_weights: tuple[float, ...] = ()

    @property
    def shares(self) -> tuple[float, float, float, float]:
        return self.motion, self.defocus, self.gaussian, self.sharp

    @property
    def support(self) -> int:
        """The side of the zero-padded kernel every sample is convolved with."""
        radius = max(self.defocus_radius[1] + 1, 3 * self.gaussian_sigma[1])
        return max(max(self.motion_sizes), 2 * int(np.ceil(radius)) + 1)

    def with_noise_max(self, noise_max: float) -> DegradationMix:
        return replace(self, noise_max=noise_max)

    def draw_sizes(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` camera-shake kernel sizes, by :attr:`motion_size_weights`."""
        if not self.motion_size_weights:  # the draw the older mixes' banks were made with
            return rng.choice(self.motion_sizes, count)
        p = np.asarray(self.motion_size_weights, dtype=np.float64)
        return rng.choice(self.motion_sizes, count, p=p / p.sum())


def _banded(bands: list[tuple[range, float]]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Kernel sizes and weights such that each band of sizes gets its share in all."""
    sizes = tuple(s for band, _ in bands for s in band)
    weights = tuple(share / len(band) for band, share in bands for _ in band)
    return sizes, weights


# wide: a quarter of the shake kernels mild or near the identity (3–11 px), half the
# sizes of the test protocols (13–27 px), a quarter severe (29–45 px, with turns and
# dwell); more sharp faces, and defocus and gaussian blur from nearly nothing.
_WIDE_SIZES, _WIDE_WEIGHTS = _banded(
    [(range(3, 12, 2), 0.25), (range(13, 28, 2), 0.5), (range(29, 46, 2), 0.25)]
)

# gentle: what the wide A/B asked for next (docs/levers.md): more near-sharp and mild
# blur without taking from the test protocols' 13–27 px. Of all samples: shake 3–11 px
# 30 % (real: 20 % at 5–11), 13–27 px 40 % (as in real), 29–31 px 5 %, unblurred 8 %,
# and defocus and gaussian blur from nearly nothing.
_GENTLE_SIZES, _GENTLE_WEIGHTS = _banded(
    [(range(3, 12, 2), 0.30), (range(13, 28, 2), 0.40), (range(29, 32, 2), 0.05)]
)


MIXES: dict[str, DegradationMix] = {
    "motion": DegradationMix(
        motion=1.0, defocus=0.0, gaussian=0.0, sharp=0.0,
        motion_sizes=tuple(range(13, 30, 2)), shake_turns=0.0, dwell=0.0,
        defocus_radius=(1.0, 1.0), gaussian_sigma=(0.5, 0.5),
        noise_max=0.03, shot_share=0.0, shot_max=0.0, jpeg_share=0.0, jpeg_quality=(95, 95),
    ),
    "real": DegradationMix(
        motion=0.70, defocus=0.15, gaussian=0.10, sharp=0.05,
        motion_sizes=tuple(range(5, 32, 2)), shake_turns=1.0, dwell=1.0,
        defocus_radius=(1.0, 6.0), gaussian_sigma=(0.5, 3.0),
        noise_max=0.03, shot_share=0.5, shot_max=1e-3, jpeg_share=0.6, jpeg_quality=(60, 95),
    ),
    "wide": DegradationMix(
        motion=0.70, defocus=0.12, gaussian=0.08, sharp=0.10,
        motion_sizes=_WIDE_SIZES, motion_size_weights=_WIDE_WEIGHTS, shake_turns=1.0, dwell=1.0,
        defocus_radius=(0.5, 6.0), gaussian_sigma=(0.3, 3.0),
        noise_max=0.03, shot_share=0.5, shot_max=1e-3, jpeg_share=0.6, jpeg_quality=(60, 95),
    ),
    "gentle": DegradationMix(
        motion=0.75, defocus=0.12, gaussian=0.05, sharp=0.08,
        motion_sizes=_GENTLE_SIZES, motion_size_weights=_GENTLE_WEIGHTS, shake_turns=1.0,
        dwell=1.0, defocus_radius=(0.5, 6.0), gaussian_sigma=(0.3, 3.0),
        noise_max=0.03, shot_share=0.5, shot_max=1e-3, jpeg_share=0.6, jpeg_quality=(60, 95),
    ),
}  # fmt: skip


def shake_kernels(
    sizes: np.ndarray | list[int], rng: np.random.Generator, turns: float, dwell: float
) -> list[np.ndarray]:
    """Camera-shake kernels with sudden turns and uneven speed along the path.

    Starts from the Boracchi–Foi paths of :func:`trajectories` (smooth, curving, with
    rare impulsive shakes), then

    - adds Poisson(``turns``) sudden turns: at a random time every later step of the
      path is rotated by ±(45°–180°), the sharp corners of real shake;
    - weights each sample of the path by the time the camera spends there: the speed
      follows a smooth random profile (a sum of three random sinusoids of amplitude up
      to ``dwell`` in log-speed), so the kernel is bright where the camera lingered
      and faint where it swept.

    Every kernel's centre of mass is its centre pixel (a learnt shift would move
    every restored face) and it sums to 1. A path that does not fit its support
    once centred is drawn again.
    """
    sizes = [int(s) for s in sizes]
    out: list[np.ndarray | None] = [None] * len(sizes)
    todo = list(range(len(sizes)))
    while todo:
        paths = trajectories(np.array([path_length(sizes[i]) for i in todo]), rng)
        samples = paths.shape[1]
        t = np.linspace(0, 1, samples - 1)
        missing = []
        for i, path in zip(todo, paths, strict=True):
            steps = np.diff(path)
            for _ in range(rng.poisson(turns)):
                at = rng.integers(1, samples - 1)
                angle = rng.uniform(np.pi / 4, np.pi) * rng.choice([-1, 1])
                steps[at:] *= np.exp(1j * angle)
            path = np.concatenate([[0], np.cumsum(steps)])
            log_speed = sum(
                dwell * rng.random() * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * t + rng.random()))
                for _ in range(3)
            )
            time_spent = np.exp(-log_speed)
            weights = np.concatenate([time_spent[:1], time_spent])
            out[i] = kernel_from_trajectory(path, sizes[i], weights=weights)
            if out[i] is None:
                missing.append(i)
        todo = missing
    return out  # type: ignore[return-value]


def motion_bank(mix: DegradationMix, count: int, seed: int) -> torch.Tensor:
    """``count`` camera-shake kernels of ``mix``'s sizes, zero-padded to its support."""
    from umsn_cli.blur.kernels import random_kernels

    rng = np.random.default_rng([seed, 1])
    sizes = mix.draw_sizes(count, rng)
    kernels: list[np.ndarray] = []
    for start in range(0, count, 2000):  # bounded memory: 2000 trajectories at a time
        chunk = sizes[start : start + 2000]
        if mix.shake_turns == 0 and mix.dwell == 0:  # the paper's kernels, as before
            kernels += random_kernels(chunk, rng)
        else:
            kernels += shake_kernels(chunk, rng, mix.shake_turns, mix.dwell)
    return stack_kernels(kernels, mix.support)


def disc_kernels(radius: torch.Tensor, support: int) -> torch.Tensor:
    """Defocus: discs of the given radii with an antialiased (one-pixel soft) edge."""
    d = _distance(support)
    k = (radius.view(-1, 1, 1) + 0.5 - d).clamp(0, 1)
    return k / k.sum((1, 2), keepdim=True)


def gaussian_kernels(sigma: torch.Tensor, support: int) -> torch.Tensor:
    """Isotropic gaussian blur of the given standard deviations (pixels)."""
    d = _distance(support)
    k = torch.exp(-(d**2) / (2 * sigma.view(-1, 1, 1) ** 2))
    return k / k.sum((1, 2), keepdim=True)


def _distance(support: int) -> torch.Tensor:
    c = torch.arange(support, dtype=torch.float32) - support // 2
    return torch.sqrt(c.view(-1, 1) ** 2 + c.view(1, -1) ** 2)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def draw_kernels(
    mix: DegradationMix, bank: torch.Tensor, n: int, g: torch.Generator
) -> tuple[torch.Tensor, list[str]]:
    """One kernel per sample (n×S×S, S = ``mix.support``) and the kind each one is."""
    kind = torch.multinomial(torch.tensor(mix.shares), n, replacement=True, generator=g)
    support = mix.support
    kernels = bank[torch.randint(len(bank), (n,), generator=g)]
    radius = _uniform(n, *mix.defocus_radius, g)
    sigma = _uniform(n, *mix.gaussian_sigma, g)
    defocus, gauss = disc_kernels(radius, support), gaussian_kernels(sigma, support)
    delta = torch.zeros(n, support, support)
    delta[:, support // 2, support // 2] = 1
    for index, other in ((1, defocus), (2, gauss), (3, delta)):
        pick = kind == index
        kernels[pick] = other[pick]
    return kernels, [KINDS[i] for i in kind.tolist()]


def degrade(
    sharp: torch.Tensor, mix: DegradationMix, bank: torch.Tensor, g: torch.Generator
) -> torch.Tensor:
    """Blur, noise and JPEG for a batch of sharp images N×3×H×W in [0, 1]."""
    kernels, _ = draw_kernels(mix, bank, sharp.shape[0], g)
    return degrade_after_blur(blur_batch(sharp, kernels), mix, g)


def degrade_after_blur(
    blurry: torch.Tensor, mix: DegradationMix, g: torch.Generator
) -> torch.Tensor:
    """Noise (read and shot) and JPEG re-compression of blurred images."""
    n = blurry.shape[0]
    sigma = _uniform(n, 0, mix.noise_max, g)
    if mix.shot_share > 0:
        # Shot noise: variance proportional to the intensity, on a share of the samples.
        shot = _uniform(n, 0, mix.shot_max, g) * (torch.rand(n, generator=g) < mix.shot_share)
        std = torch.sqrt(sigma.view(-1, 1, 1, 1) ** 2 + shot.view(-1, 1, 1, 1) * blurry.clamp(0, 1))
        blurry = (blurry + std * torch.randn(blurry.shape, generator=g)).clamp(0, 1)
    else:
        blurry = add_noise(blurry, sigma, g)
    if mix.jpeg_share > 0:
        low, high = mix.jpeg_quality
        quality = torch.randint(low, high + 1, (n,), generator=g)
        recompress = torch.rand(n, generator=g) < mix.jpeg_share
        for i in torch.nonzero(recompress).flatten().tolist():
            blurry[i] = jpeg(blurry[i], int(quality[i]))
    return blurry


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """One 3×H×W image in [0, 1] through a JPEG encode and decode at ``quality``."""
    pixels = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(out).permute(2, 0, 1).to(image.dtype)


def preview(
    sharp: torch.Tensor, mix: DegradationMix, bank: torch.Tensor, seed: int = 0, columns: int = 6
) -> np.ndarray:
    """A picture of the mix: one row per blur kind (with its share), each sample's kernel
    in its corner, after the mix's noise and JPEG (uint8 H×W×3).

    ``sharp``: faces N×3×H×W in [0, 1], cycled over the columns.
    """
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = sharp.shape
    rows = []
    for index, kind in enumerate(KINDS):
        if mix.shares[index] == 0:
            continue
        only = replace(mix, **{k: float(k == kind) for k in KINDS})
        faces = sharp[torch.arange(columns) % n]
        kernels, _ = draw_kernels(only, bank, columns, g)
        blurry = blur_batch(faces, kernels)
        out = degrade_after_blur(blurry, mix, g)
        side = min(h, w) // 3
        for i in range(columns):
            k = kernels[i] / kernels[i].max()
            inset = torch.nn.functional.interpolate(k[None, None], size=(side, side))[0, 0]
            out[i, :, :side, :side] = inset.clamp(0, 1)
        label = torch.ones(3, h, 12)  # a white tick bar whose height shows the kind's share
        label[:, : round(h * (1 - mix.shares[index])), :] = 0.2
        rows.append(torch.cat([label, *out], dim=2))
    grid = torch.cat(rows, dim=1).permute(1, 2, 0)
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
