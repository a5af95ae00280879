"""Random camera-shake blur kernels after Boracchi and Foi (IEEE TIP 2012).

See docs/method.md, Blur synthesis.

A kernel is the exposure-weighted path of a point light under a shaking camera. The
path is a particle in the complex plane with inertia: it keeps its speed (so the
path length is exactly ``L``), is pulled back towards the origin, jitters with a
gaussian term and now and then makes an impulsive turn. The path is splatted
bilinearly onto a grid, centred on its barycentre and normalised to sum 1.

Many trajectories are simulated at once (one numpy vector per step), so a bank of
25,000 kernels, the size the paper trained with, takes seconds rather than minutes.
Everything is drawn from one ``numpy.random.Generator``: the same seed gives the
same kernels, bit for bit.
"""

from __future__ import annotations

import numpy as np

#: Sizes of the training kernels (the paper: 13×13 to 29×29).
KERNEL_SIZES = tuple(range(13, 30, 2))
#: Sizes of the Shen et al. test protocol: 10 kernels at each of 13, 15, …, 27.
SHEN_SIZES = tuple(range(13, 28, 2))

SAMPLES = 2000  # N, samples along one trajectory (Boracchi–Foi default)
# The original generator draws paths of length 60 on a 64-pixel support; the same
# ratio ties the path length to the kernel size here.
LENGTH_RATIO = 60 / 64
# Range of the "anxiety" a, drawn log-uniformly. Boracchi and Foi draw a ~ 0.1·U(0, 1),
# but with N = 2000 samples that turns the direction by ~0.3 rad per sample: the path
# curls into a blob, and a kernel of size 27 spans a median 3 px (11% of its size,
# measured over 300 paths). Camera-shake kernels of the test protocol span their size.
# With a in [1e-4, 1e-2] the same process gives smooth, curving streaks spanning a
# median 66% of the size (10th–90th percentile 31–92%); the impulsive shakes, the
# pull-back and the gaussian wobble keep their roles.
ANXIETY = (1e-4, 1e-2)


def path_length(size: int) -> float:
    """The trajectory length L used for a kernel of ``size``×``size`` pixels."""
    return LENGTH_RATIO * size


def trajectories(
    lengths: np.ndarray, rng: np.random.Generator, samples: int = SAMPLES
) -> np.ndarray:
    """Simulate one camera path per entry of ``lengths``: complex array (n, samples).

    Per path: pull-back c ~ U(0, 0.7), gaussian strength g ~ U(0, 10), shake factor
    p ~ U(0, 0.2), start angle θ₀ ~ U(0, 2π), anxiety a log-uniform in [1e-4, 1e-2]
    (see :data:`ANXIETY`). Each step adds an impulsive shake with probability p·a, then
    the gaussian and pull-back terms, and renormalises the velocity to L / (N − 1).
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    n = lengths.shape[0]
    pull = 0.7 * rng.random(n)
    gauss = 10 * rng.random(n)
    shake = 0.2 * rng.random(n)
    angle = 2 * np.pi * rng.random(n)
    low, high = np.log10(ANXIETY)
    anxiety = 10 ** (low + (high - low) * rng.random(n))
    step = lengths / (samples - 1)

    # All random numbers up front, in a fixed order, so results never depend on n's
    # chunking or on which branch a path took.
    shake_draw = rng.random((samples - 1, n))
    shake_turn = rng.random((samples - 1, n))
    noise = rng.standard_normal((samples - 1, n)) + 1j * rng.standard_normal((samples - 1, n))

    x = np.zeros((samples, n), dtype=np.complex128)
    v = anxiety * np.exp(1j * angle)
    for t in range(samples - 1):
        jump = np.where(
            shake_draw[t] < shake * anxiety,
            2 * v * np.exp(1j * (np.pi + shake_turn[t] - 0.5)),
            0,
        )
        v = v + jump + anxiety * (gauss * noise[t] - pull * x[t]) * step
        speed = np.abs(v)
        # A zero velocity (all terms cancelling) keeps the previous direction.
        v = np.where(speed > 0, v / np.where(speed > 0, speed, 1), np.exp(1j * angle)) * step
        x[t + 1] = x[t] + v
    return x.T


def kernel_from_trajectory(
    path: np.ndarray, size: int, exposure: float = 1.0, weights: np.ndarray | None = None
) -> np.ndarray | None:
    """Rasterise the first ``exposure`` fraction of ``path`` into a size×size kernel.

    Samples are splatted bilinearly (weight max(0, 1 − |d|) per axis), each scaled by
    its entry of ``weights`` (the time the camera spent there; default: all equal);
    the path is shifted so its weighted barycentre, the kernel's centre of mass, lands
    on the centre pixel, which the bilinear splat preserves exactly. Returns None when
    the centred path does not fit the support; the caller draws another path rather
    than cropping this one.
    """
    count = max(1, round(exposure * len(path)))
    points = path[:count]
    w = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64)[:count]
    centre = (size - 1) / 2
    mean = points.mean() if weights is None else (w * points).sum() / w.sum()
    points = points - mean + complex(centre, centre)
    cols, rows = points.real, points.imag
    if cols.min() < 0 or rows.min() < 0 or cols.max() > size - 1 or rows.max() > size - 1:
        return None
    kernel = np.zeros((size + 1, size + 1))
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    fr, fc = rows - r0, cols - c0
    np.add.at(kernel, (r0, c0), w * (1 - fr) * (1 - fc))
    np.add.at(kernel, (r0 + 1, c0), w * fr * (1 - fc))
    np.add.at(kernel, (r0, c0 + 1), w * (1 - fr) * fc)
    np.add.at(kernel, (r0 + 1, c0 + 1), w * fr * fc)
    kernel = kernel[:size, :size]  # the extra row/column only ever got zero weight
    return (kernel / kernel.sum()).astype(np.float32)


def random_kernels(
    sizes: list[int] | tuple[int, ...] | np.ndarray,
    seed: int | np.random.Generator,
    exposure: float = 1.0,
) -> list[np.ndarray]:
    """One random kernel for each entry of ``sizes`` (odd sizes ≥ 3), reproducibly.

    Paths that do not fit their support once centred are redrawn, in rounds, from
    the same generator, so the result depends only on the seed and ``sizes``.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sizes = [int(s) for s in sizes]
    for s in sizes:
        if s < 3 or s % 2 == 0:
            raise ValueError(f"kernel sizes must be odd and at least 3, got {s}")
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    kernels: list[np.ndarray | None] = [None] * len(sizes)
    todo = list(range(len(sizes)))
    while todo:
        paths = trajectories(np.array([path_length(sizes[i]) for i in todo]), rng)
        missing = []
        for i, path in zip(todo, paths, strict=True):
            kernels[i] = kernel_from_trajectory(path, sizes[i], exposure)
            if kernels[i] is None:
                missing.append(i)
        todo = missing
    return kernels  # type: ignore[return-value]


def shen_bank(
    seed: int = 0, per_size: int = 10, exposure: float = 1.0
) -> list[tuple[int, int, np.ndarray]]:
    """The seeded stand-in for Shen et al.'s test kernels: (index 1…10, size, kernel).

    ``per_size`` kernels at each of the sizes 13, 15, …, 27, in that order. The bank
    depends only on ``seed``: the same kernels on every machine, for every tool that
    follows the protocol (``umsn synth-blur --mode shen``, the evaluation scripts).
    """
    sizes = [s for s in SHEN_SIZES for _ in range(per_size)]
    kernels = random_kernels(sizes, seed, exposure)
    return [(i % per_size + 1, s, k) for i, (s, k) in enumerate(zip(sizes, kernels, strict=True))]


def enlarged(kernel: np.ndarray, factor: int) -> np.ndarray:
    """The same shake seen ``factor`` times closer: the kernel drawn that much larger
    (bilinear, odd-sized, summing to 1). A face shown at twice the size is blurred by
    twice the shake in pixels."""
    from PIL import Image

    size = kernel.shape[0] * factor
    size += 1 - size % 2
    big = Image.fromarray(kernel.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(big, dtype=np.float32), 0, None)
    return out / out.sum()
