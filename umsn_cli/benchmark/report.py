"""Benchmark reports people can read: tables (rich and Markdown) and comparison pictures.

The tables are built once as rows of strings (:func:`quality_tables`,
:func:`speed_table`), then rendered either way, so the screen and the Markdown file
can never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from umsn_cli.benchmark.quality import Case, QualityReport
from umsn_cli.benchmark.speed import SpeedReport
from umsn_cli.images import save_rgb8
from umsn_cli.visualize import CLASS_NAMES, labels_from_probs, overlay, side_by_side


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def quality_tables(report: QualityReport) -> list[Table]:
    """Overall, per kernel size and per class; the blurry input is always a row."""
    overall = report.overall()
    aligned = report.align > 0
    shifted = f" at the best shift within ±{report.align} px" if aligned else ""
    plain_header = ["plain PSNR", "plain SSIM"] if aligned else []
    first = Table(
        f"{report.dataset}: {report.protocol}",
        ["", "PSNR (dB)", "SSIM", *plain_header,
         *(["identity distance"] if "identity" in overall else []),
         *(["face colour shift (levels)"] if "colour_shift" in overall else [])],
        [],
    )  # fmt: skip
    if aligned:
        first.title += f"; PSNR and SSIM{shifted}, plain beside them"
    for label, suffix in (("blurry input", "_blurry"), (report.model, "")):
        row = [label, _db(overall.get(f"psnr{suffix}")), _ssim(overall.get(f"ssim{suffix}"))]
        if aligned:
            row += [
                _db(overall.get(f"psnr_plain{suffix}")),
                _ssim(overall.get(f"ssim_plain{suffix}")),
            ]
        if "identity" in overall:
            row.append(_ssim(overall.get(f"identity{suffix}")))
        if "colour_shift" in overall:
            row.append(_level(overall.get(f"colour_shift{suffix}")))
        first.rows.append(row)
    gain = ["gain", _gain(overall), _ssim_gain(overall)]
    if aligned:
        gain += [_gain(overall, "psnr_plain"), _ssim_gain(overall, "ssim_plain")]
    extra = ("identity" in overall) + ("colour_shift" in overall)
    first.rows.append([*gain, *([""] * extra)])
    tables = [first]

    sizes = report.by_size()
    if sizes:
        per_size = Table(
            "per kernel size" + shifted,
            ["kernel", "blurry PSNR", "PSNR", "gain", "blurry SSIM", "SSIM",
             *(["plain gain"] if aligned else []),
             *(["identity distance"] if "identity" in overall else []),
             *(["face colour shift"] if "colour_shift" in overall else [])],
            [],
        )  # fmt: skip
        for size, s in sizes.items():
            row = [
                f"{size}×{size}",
                _db(s.get("psnr_blurry")),
                _db(s.get("psnr")),
                _gain(s),
                _ssim(s.get("ssim_blurry")),
                _ssim(s.get("ssim")),
            ]
            if aligned:
                row.append(_gain(s, "psnr_plain"))
            if "identity" in overall:
                row.append(_ssim(s.get("identity")))
            if "colour_shift" in overall:
                row.append(_level(s.get("colour_shift")))
            per_size.rows.append(row)
        tables.append(per_size)

    if "psnr_photo" in overall:
        tables.append(_photo_table(report.model, overall))
    if report.mask_source == "none":
        return tables
    per_class = Table(
        f"per class (masks: {report.mask_source}; masked PSNR / SSIM{shifted})",
        ["", *(f"m{c + 1} {name}" for c, name in enumerate(CLASS_NAMES))],
        [],
    )
    for label, suffix in (("blurry input", "_blurry"), (report.model, "")):
        cells = [
            f"{_db(overall.get(f'psnr{suffix}_m{c}'))} / {_ssim(overall.get(f'ssim{suffix}_m{c}'))}"
            for c in range(1, 5)
        ]
        per_class.rows.append([label, *cells])
    tables.append(per_class)
    return tables


def _photo_table(model: str, overall: dict[str, float]) -> Table:
    """Photo framing: the whole photo's PSNR (unshifted: outside the face nothing may
    move), the share of photos whose background stayed bit-identical, the faces found
    and the time per photo, detection and paste included."""
    table = Table(
        "whole photos (the tables above score the face region)",
        ["", "photo PSNR", "background bit-identical", "faces found", "ms per photo"],
        [["blurry input", _db(overall.get("psnr_photo_blurry")), "", "", ""]],
    )
    table.rows.append([
        model,
        _db(overall.get("psnr_photo")),
        f"{overall['background_kept']:.0%}",
        f"{overall['faces_found']:.2f}",
        f"{overall['ms_per_photo']:.0f}",
    ])  # fmt: skip
    table.rows.append(["gain", _gain(overall, "psnr_photo"), "", "", ""])
    return table


def speed_table(report: SpeedReport) -> Table:
    peaks = ", ".join(
        f"{p.device} {p.fp32_tflops:.2f} (fp32) / "
        + ("—" if p.bf16_tflops is None else f"{p.bf16_tflops:.2f}")
        + " (bf16) TFLOP/s"
        for p in report.peaks
    )
    table = Table(
        f"{report.model}: S-Net + generator, {report.threads} threads of {report.cpu}; "
        f"matmul peak {peaks}",
        [
            "backend",
            "dtype",
            "batch",
            "size",
            "ms/face",
            "faces/s",
            "peak MiB",
            "GFLOP/face",
            "of peak",
            "spread",
        ],
        [],
    )
    for r in report.rows:
        table.rows.append(
            [
                r.backend,
                r.dtype,
                str(r.batch),
                f"{r.size}²",
                f"{r.ms_per_face:.1f}",
                f"{r.faces_per_second:.1f}",
                "—" if r.peak_memory_mib is None else f"{r.peak_memory_mib:.0f}",
                f"{r.gflop_per_face:.2f}",
                "—" if r.fraction_of_peak is None else f"{r.fraction_of_peak:.0%}",
                f"{r.spread:.2f}×" + (" unstable" if r.unstable else ""),
            ]
        )
    return table


def to_markdown(tables: list[Table], command: str | None = None) -> str:
    parts = []
    for t in tables:
        lines = [f"**{t.title}**", "", "| " + " | ".join(t.header) + " |"]
        lines.append("|" + "---|" * len(t.header))
        lines += ["| " + " | ".join(row) + " |" for row in t.rows]
        parts.append("\n".join(lines))
    if command:
        parts.append(f"Measured with `{command}`.")
    return "\n\n".join(parts) + "\n"


def to_rich(table: Table):  # -> rich.table.Table, imported lazily with the CLI
    from rich.table import Table as RichTable

    out = RichTable(title=table.title, title_justify="left")
    for i, name in enumerate(table.header):
        out.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in table.rows:
        out.add_row(*row)
    return out


def width(table: Table) -> int:
    """Characters a rich rendering needs so that no number is cut (logs are 80 wide)."""
    cells = [table.header, *table.rows]
    widest = [max(len(row[i]) for row in cells) for i in range(len(table.header))]
    return sum(widest) + 3 * len(widest) + 1


def comparison_picture(report: QualityReport) -> np.ndarray:
    """Best and worst cases, one per row: blurry | restored | sharp | masks on sharp."""
    rows = [("best", c) for c in report.best] + [("worst", c) for c in report.worst]
    if not rows:
        raise ValueError("no scored cases to show")
    height = max(c.images[0].shape[0] for _, c in rows)
    strips = [_strip(label, case, height) for label, case in rows]
    width = max(s.shape[1] for s in strips)
    padded = [
        np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strips
    ]
    return np.concatenate(padded)


def save_picture(path: Path, report: QualityReport) -> None:
    save_rgb8(path, comparison_picture(report), overwrite=True)


def _strip(label: str, case: Case, height: int) -> np.ndarray:
    blurry, restored, sharp, masks = case.images
    tiles = [_fit(x, height) for x in (blurry, restored, sharp)]
    if masks is not None:
        tiles.append(_fit(overlay(sharp, labels_from_probs(masks)) / 255.0, height))
    picture = side_by_side(*tiles)
    caption = (
        f"{label}: {case.id}  blurry {case.scores['psnr_blurry']:.2f} dB -> "
        f"{case.scores['psnr']:.2f} dB ({case.gain:+.2f})"
    )
    bar = Image.new("RGB", (picture.shape[1], 14), "white")
    ImageDraw.Draw(bar).text((2, 1), caption, fill="black")
    return np.concatenate([np.asarray(bar), picture])


def _fit(rgb: np.ndarray, height: int) -> np.ndarray:
    if rgb.shape[0] == height:
        return rgb.astype(np.float32)
    width = round(rgb.shape[1] * height / rgb.shape[0])
    image = Image.fromarray(np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS)) / np.float32(255)


def _db(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _ssim(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.4f}"


def _level(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.2f}"


def _gain(scores: dict[str, float], name: str = "psnr") -> str:
    a, b = scores.get(name), scores.get(f"{name}_blurry")
    if a is None or b is None or not math.isfinite(a - b):
        return "—"
    return f"{a - b:+.2f}"


def _ssim_gain(scores: dict[str, float], name: str = "ssim") -> str:
    a, b = scores.get(name), scores.get(f"{name}_blurry")
    return "—" if a is None or b is None else f"{a - b:+.4f}"
