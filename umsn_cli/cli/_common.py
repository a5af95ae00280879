"""What every command shares: the stderr console, ``--debug`` state, error reporting.

The CLI layer parses and prints; the library raises :class:`~umsn_cli.errors.UmsnError`
subclasses. :class:`OneLineUsage`, the root group, turns those into one red line on
stderr and the error's exit code, with a traceback only when ``umsn --debug`` was given.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from umsn_cli.errors import Terminated, UmsnError

P = ParamSpec("P")
R = TypeVar("R")

#: Messages, warnings and progress go to stderr so that stdout stays parseable.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
#: Results a user may pipe elsewhere (tables, paths) go to stdout.
out_console = Console(highlight=False, soft_wrap=True)


class _State:
    debug: bool = False


state = _State()


class _WarnHandler(logging.Handler):
    """Show the library's logged warnings (a damaged cached file, an unwritable cache)
    as CLI warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def terminate_like_interrupt() -> None:
    """SIGTERM (a scheduler's or ``kill``'s stop) unwinds the way Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def install_warning_handler() -> None:
    """Route warnings of every ``umsn_cli`` module to stderr; idempotent."""
    library = logging.getLogger("umsn_cli")
    if not any(isinstance(h, _WarnHandler) for h in library.handlers):
        library.addHandler(_WarnHandler(logging.WARNING))


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}")


def report_problems(
    warnings: list[tuple[Path, str]], failed: list[tuple[Path, str]], *, verbose: bool
) -> None:
    """Per-file warnings (all with ``verbose``, else a count) and one line per failed file."""
    if verbose:
        for source, message in warnings:
            warn(f"{source}: {message}")
    elif warnings:
        count = len(warnings)
        warn(f"{count} warning{'s' * (count != 1)} (run with --verbose to see them)")
    for source, message in failed:
        line = message if str(source) in message else f"{source}: {message}"
        err_console.print(f"[red]failed:[/] {escape(line)}")  # file names may hold "[...]"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the ``typer.Exit`` to raise."""
    err_console.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def _usage_line(error: Any) -> str:
    """Click's usage error (three lines: usage, hint, error) as one line that says where
    to look: ``error: no such option: --bogus; see `umsn -h```."""
    message = error.format_message().rstrip(".")
    message = message.replace("Value error, ", "")  # pydantic's prefix, in newer Typers
    if message[:1].isupper() and message[1:2].islower():  # "Invalid value…" → "invalid…"
        message = message[0].lower() + message[1:]
    if error.ctx is not None:
        message += f"; see `{error.ctx.command_path} -h`"
    return message


class OneLineUsage(typer.core.TyperGroup):
    """The root group, where every error becomes one line and an exit code, once for all
    commands (they parse and run inside the root's ``invoke``):

    - the library's :class:`~umsn_cli.errors.UmsnError`: its message and its code, with
      the traceback only under ``umsn --debug``;
    - Ctrl-C and SIGTERM: 130 and 143, once every partial output is removed;
    - Click's usage errors (unknown option, bad value): one line, code 2.
    """

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        with _one_line_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except typer.TyperException as exc:  # Typer's base of Click's errors, its public name
        if getattr(exc, "exit_code", None) != 2:  # 2: a usage error, by Click's convention
            raise
        raise fail(_usage_line(exc), 2) from None
    except UmsnError as exc:
        if state.debug:
            err_console.print_exception()
        raise fail(str(exc), exc.exit_code) from exc
    except KeyboardInterrupt:
        raise fail("interrupted", 130) from None
    except Terminated:
        raise fail("terminated (SIGTERM); partial outputs were removed", 143) from None


def help_when_bare(ctx: typer.Context) -> None:
    """A group called without a command (``umsn``, ``umsn weights``) shows its help, as
    ``no_args_is_help`` would, but as output rather than as an error to be caught."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def optional(*names: str, help: str, **kw: Any) -> Any:
    """A ``typer.Option`` that is absent unless given: its help shows no "[default: None]".

    Used as ``path: Annotated[Path | None, optional("--path", help="…")] = None``.
    """
    return typer.Option(*names, help=help, show_default=False, **kw)


def with_parameters(func: Callable[..., R], params: list[inspect.Parameter]) -> Callable[..., R]:
    """Make ``func`` (taking ``**values``) show Typer the parameters ``params``.

    For commands whose options are data (shared ones, or a config's fields): Typer reads
    ``__signature__`` and the annotations, and calls ``func`` with every value by name.
    """
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


class Bar:
    """A :func:`progress_bar`'s handle: count work done one item at a time or outright."""

    def __init__(self, progress: Progress, task: object) -> None:
        self._progress, self._task = progress, task

    def advance(self, *_args: object) -> None:
        """One more item done (extra arguments, e.g. the file, are ignored)."""
        self._progress.advance(self._task)  # type: ignore[arg-type]

    def set(self, done: int) -> None:
        """``done`` items done so far."""
        self._progress.update(self._task, completed=done)  # type: ignore[arg-type]


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Bar]:
    """Done/total, elapsed time, on stderr; gone when finished, and never drawn when
    stderr is not a terminal (no bar, nor its blank line, in logs and pipes)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    shown = err_console.is_terminal
    with Progress(*columns, console=err_console, transient=True, disable=not shown) as progress:
        yield Bar(progress, progress.add_task(description, total=total))


@contextmanager
def transfer_bar(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A download's bytes, speed and time left on stderr (when it is a terminal): the
    :data:`~umsn_cli.weights.download.TransferProgress` the CLI lends the library."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())  # fmt: skip
    shown = err_console.is_terminal
    with Progress(*columns, console=err_console, transient=True, disable=not shown) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
