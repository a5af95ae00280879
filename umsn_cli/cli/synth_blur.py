"""``umsn synth-blur``: blurry/sharp pairs from sharp faces, for training and testing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from umsn_cli.choices import SynthMode
from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import err_console, progress_bar, report_problems


def synth_blur(
    output: opt.Output,  # first: a required option cannot follow defaults
    inputs: opt.Inputs = None,
    mode: Annotated[
        SynthMode,
        typer.Option(
            "--mode",
            help="pairs: blur whole images; class: blur one semantic class only; "
            "shen: 10 kernels × sizes 13–27 per image (Shen et al. test protocol).",
        ),
    ] = SynthMode.pairs,
    seed: opt.Seed = 0,
    noise: opt.Noise = 0.0,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="Kernel size (odd); default: uniform over 13, 15, …, 29 per image.",
            show_default=False,
        ),
    ] = None,
    exposure: Annotated[
        float, typer.Option("--exposure", help="Fraction of the camera path in the exposure (0–1].")
    ] = 1.0,
    kernels: opt.Kernels = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            "--masks",
            help="Class mode: folder of CelebAMask-HQ label PNGs named like the images.",
            show_default=False,
        ),
    ] = None,
    cls: Annotated[
        int | None,
        typer.Option(
            "--class",
            help="Class mode: 1 background, 2 skin, 3 features, 4 hair.",
            show_default=False,
        ),
    ] = None,
    preview: Annotated[
        bool,
        typer.Option(
            "--preview", help="Also write preview.png: kernels beside sharp and blurry images."
        ),
    ] = False,
    overwrite: opt.Overwrite = False,
    recursive: opt.Recursive = False,
    verbose: opt.Verbose = False,
) -> None:
    """Make blurry/sharp pairs from sharp faces with random camera-shake kernels.

    Writes blurry/, sharp/, kernels/ and pairs.jsonl (one line per blurry image).
    The same --seed gives the same files. --kernels are cycled over the images, or the
    whole bank blurs each image in shen mode.
    """
    from umsn_cli.blur import synth

    options = synth.SynthOptions(
        mode=mode.value,
        seed=seed,
        noise=noise,
        size=size,
        exposure=exposure,
        kernels=kernels,
        masks=masks,
        cls=cls,
        preview=preview,
        overwrite=overwrite,
        recursive=recursive,
    )
    plan = synth.plan(inputs or [], output, options)
    with progress_bar("synth-blur", len(plan.jobs)) as bar:
        report = synth.run(plan, on_file=bar.advance)

    report_problems(report.warnings, report.failed, verbose=verbose or len(plan.jobs) == 1)
    err_console.print(
        f"synth-blur: {len(report.done)} done, {len(report.failed)} failed, "
        f"{report.blurry} blurry images ({mode.value}) in {report.seconds:.1f} s → "
        f"{escape(str(output))}"
    )
    if report.failed:
        raise typer.Exit(1)
