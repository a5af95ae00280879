"""The ``umsn`` command line: one module per command, registered here.

Only commands that work are registered, so ``umsn --help`` never advertises a stub.
"""

from __future__ import annotations

from typing import Annotated

import typer

from umsn_cli import __version__
from umsn_cli.cli import benchmark, deblur, prepare, segment, synth_blur, train, weights
from umsn_cli.cli._common import (
    OneLineUsage,
    help_when_bare,
    install_warning_handler,
    state,
    terminate_like_interrupt,
)

app = typer.Typer(
    name="umsn",
    cls=OneLineUsage,
    help="Restore blurred photos of faces with UMSN, offline, on an ordinary CPU.",
    invoke_without_command=True,  # bare `umsn`: the help (help_when_bare)
    # `umsn --install-completion` for bash, zsh, fish and PowerShell.
    add_completion=True,
    # Plain help, as click prints it: flags read as flags (the rich renderer of this
    # Typer shows "<bool>" beside every one) and help pipes cleanly into less or grep.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"umsn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    state.debug = debug
    install_warning_handler()
    terminate_like_interrupt()
    help_when_bare(ctx)


app.command("deblur")(deblur.deblur)
app.command("segment")(segment.segment)
app.command("synth-blur")(synth_blur.synth_blur)
app.command("prepare")(prepare.prepare)
app.command("train")(train.train)
app.command("benchmark")(benchmark.benchmark)
app.add_typer(weights.app, name="weights")


def main() -> None:
    """Console-script entry point."""
    app()
