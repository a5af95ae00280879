"""What a training run's log says: its curves as a picture (Pillow alone) and its hours."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from umsn_cli.images import save_rgb8

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _panel(
    title: str, series: dict[str, list[tuple[int, float]]], size: tuple[int, int], log: bool
) -> Image.Image:
    width, height = size
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, width - 10, 24, height - 24
    draw.text((left, 4), title, fill="black")
    points = [(s, v) for pts in series.values() for s, v in pts if math.isfinite(v)]
    points = [(s, v) for s, v in points if v > 0] if log else points
    if not points:
        draw.text((left, height // 2), "no data yet", fill="grey")
        return img
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    x0, x1 = min(s for s, _ in points), max(s for s, _ in points)
    y0, y1 = min(f(v) for _, v in points), max(f(v) for _, v in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1e-6)
    draw.rectangle((left, top, right, bottom), outline="black")
    for frac in (0, 0.5, 1):
        y = bottom - frac * (bottom - top)
        value = y0 + frac * (y1 - y0)
        label = f"{10**value:.3g}" if log else f"{value:.3g}"
        draw.text((4, y - 6), label, fill="black")
    draw.text((left, bottom + 4), str(x0), fill="black")
    draw.text((right - 40, bottom + 4), str(x1), fill="black")

    def xy(s: int, v: float) -> tuple[float, float]:
        return (
            left + (s - x0) / (x1 - x0) * (right - left),
            bottom - (f(v) - y0) / (y1 - y0) * (bottom - top),
        )

    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        usable = [xy(s, v) for s, v in pts if math.isfinite(v) and (v > 0 or not log)]
        if len(usable) > 1:
            draw.line(usable, fill=colour, width=2)
        elif usable:
            x, y = usable[0]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((right - 150, top + 4 + 12 * i), name, fill=colour)
    return img


def plot_curves(history: list[dict], path: Path) -> None:
    """Training loss (log scale) above, validation scores below, against the step."""
    train = [h for h in history if h.get("kind") == "train"]
    val = [h for h in history if h.get("kind") == "val"]
    loss = {"loss": [(h["step"], h["loss"]) for h in train]}
    val_keys = [
        k
        for k in (
            "psnr",
            "psnr_blurry",
            "psnr_aligned",
            "psnr_aligned_blurry",
            "f_m1",
            "f_m2",
            "f_m3",
            "f_m4",
        )
        if val and k in val[-1]
    ]
    scores = {k: [(h["step"], h[k]) for h in val if k in h] for k in val_keys}
    top = _panel("training loss", loss, (640, 240), log=True)
    bottom = _panel("validation", scores, (640, 240), log=False)
    canvas = np.concatenate([np.asarray(top), np.asarray(bottom)], axis=0)
    save_rgb8(path, canvas, overwrite=True)


@dataclass(frozen=True)
class TrainingTime:
    """The time a run spent in training steps, from the rates in its log."""

    steps: int  # steps the counted log windows cover
    hours: float  # with stalled windows counted at the median rate
    logged_hours: float  # every window as logged, stalls included
    median_rate: float  # steps per hour


def training_hours(history: list[dict], until: int | None = None) -> TrainingTime:
    """Hours of training steps in ``history`` (up to step ``until``).

    Each train line logs the rate of the window since the line before, so a window
    takes Δstep / steps_per_hour. A window that held a pause (a run stopped with
    SIGSTOP while tests used the cores) or a competing job logs a rate far below the
    run's; counting it as logged would report waiting as training. So a window slower
    than half the median rate counts at the median rate, and the logged sum is kept
    beside it.
    """
    windows: list[tuple[int, float]] = []
    previous: int | None = None
    for line in history:
        if line.get("kind") != "train" or (until is not None and line["step"] > until):
            continue
        if previous is not None and line["step"] > previous:
            windows.append((line["step"] - previous, line["steps_per_hour"]))
        previous = line["step"]
    if not windows:
        return TrainingTime(0, 0.0, 0.0, math.nan)
    median = statistics.median(rate for _, rate in windows)
    return TrainingTime(
        sum(d for d, _ in windows),
        sum(d / (median if rate < median / 2 else rate) for d, rate in windows),
        sum(d / rate for d, rate in windows),
        median,
    )
