"""``umsn weights``: list, fetch, verify, locate and import model weights.

Tables and paths go to stdout (so ``$(umsn weights path ID)`` works); messages,
warnings and download progress go to stderr. Only ``fetch`` may use the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from umsn_cli.cli import _batch as opt
from umsn_cli.cli._common import err_console, help_when_bare, out_console, transfer_bar
from umsn_cli.errors import OfflineError, WeightsError
from umsn_cli.files import sha256_file
from umsn_cli.weights import store
from umsn_cli.weights.manifest import DEFAULT_MODEL, WeightsEntry, load_manifest

app = typer.Typer(
    help="List, download, verify and import model weights.",
    callback=help_when_bare,
    invoke_without_command=True,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("list")
def list_weights() -> None:
    """Show every known weights file and where it would come from."""
    entries = list(load_manifest())
    imported = store.list_imported()
    if not entries and not imported:
        err_console.print(
            "the manifest lists no weights and none are imported; import a checkpoint "
            "with `umsn weights import FILE`"
        )
        return
    rows = [
        (
            # the weights a bare `umsn deblur` uses (other configs have defaults too)
            entry.id + (" (default)" if entry.default and entry.config == DEFAULT_MODEL else ""),
            entry.task,
            entry.config,
            _human(entry.size, "B"),
            _human(entry.num_params, ""),
            store.location(entry),
        )
        for entry in entries
    ] + [
        (r.id, "-", r.config, _human(r.size, "B"), _human(r.num_params, ""), "imported")
        for r in imported
    ]
    table = Table(box=None, header_style="bold", pad_edge=False)
    # Ids are what users copy into --model: never wrap or shorten them.
    table.add_column("ID", no_wrap=True, min_width=max(len(row[0]) for row in rows))
    table.add_column("TASK")
    for name in ("CONFIG", "SIZE", "PARAMS", "WHERE"):
        justify = "right" if name in ("SIZE", "PARAMS") else "left"
        table.add_column(name, no_wrap=True, justify=justify)
    for row in rows:
        table.add_row(*row)
    out_console.print(table)


@app.command("fetch")
def fetch(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="ID", help="Weights id, config name, imported id or checkpoint file."
        ),
    ],
    offline: opt.Offline = False,
) -> None:
    """Download weights into the cache (if not there yet) and print their path."""
    path, _ = store.resolve_model_ref(ref, offline=offline, progress=transfer_bar)
    out_console.print(str(path))


@app.command("path")
def show_path(
    ref: Annotated[
        str, typer.Argument(metavar="ID", help="Weights id, config name or imported id.")
    ],
) -> None:
    """Print the local path of weights that are cached, bundled or imported."""
    try:
        local, _ = store.resolve_model_ref(ref, offline=True)
    except OfflineError:
        raise WeightsError(
            f"weights {ref} are not downloaded; run `umsn weights fetch {ref}`"
        ) from None
    out_console.print(str(local))


@app.command("verify")
def verify(
    ref: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Only this weights id, config name or imported id."),
    ] = None,
) -> None:
    """Re-hash the local weights files; exit 1 if any is damaged."""
    if ref is None:
        _remove_compiled_graphs()
    checks = _local_files(ref)
    if not checks:
        if ref is not None:
            raise WeightsError(
                f"weights {ref} are not downloaded, so there is nothing to verify; run "
                f"`umsn weights fetch {ref}`"
            )
        err_console.print("nothing to verify: no weights are cached, bundled or imported")
        return
    bad = 0
    for ident, file, sha256, size in checks:
        ok = file.stat().st_size == size and sha256_file(file) == sha256
        bad += not ok
        status = "[green]OK[/]" if ok else "[red]BAD[/]"
        out_console.print(f"{status}  {ident}  {file}", markup=True)
    if bad:
        raise WeightsError(
            f"{bad} local file(s) are damaged; run `umsn weights fetch ID` to replace "
            "downloaded weights, or import imported ones again"
        )


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A checkpoint saved by umsn.")],
) -> None:
    """Check a checkpoint and copy it into the cache, so --model can name it by id."""
    record = store.import_checkpoint(file)
    out_console.print(record.id)
    err_console.print(
        f"imported {file} ({record.config}, {_human(record.num_params, '')} parameters); "
        f"use it with --model {record.id}"
    )


def _remove_compiled_graphs() -> None:
    """Remove the compiled graphs older versions kept: umsn never loads them now, and a
    graph planted there (with a forged hash record) is reported, not trusted."""
    from umsn_cli.paths import graph_cache_dir

    folder = graph_cache_dir()
    for file in sorted(folder.iterdir()) if folder.is_dir() else []:
        if file.is_file():
            file.unlink(missing_ok=True)
            out_console.print(
                f"[yellow]REMOVED[/]  compiled graph  {escape(str(file))} (never loaded: umsn "
                "compiles in memory)",
                markup=True,
            )


def _local_files(ref: str | None) -> list[tuple[str, Path, str, int]]:
    """(id, file, expected sha256, expected size) for each local file to verify."""
    if ref is not None and ref.startswith(store.IMPORTED_PREFIX):
        record = store.get_imported(ref)
        return [(record.id, record.path, record.sha256, record.size)]
    manifest = load_manifest()
    entries: list[WeightsEntry] = [manifest.get(ref)] if ref is not None else list(manifest)
    checks = []
    for entry in entries:
        for file in (store.cached_path(entry), store.bundled_path(entry)):
            if file is not None and file.is_file():
                checks.append((entry.id, file, entry.sha256, entry.size))
    if ref is None:
        checks += [(r.id, r.path, r.sha256, r.size) for r in store.list_imported()]
    return checks


def _human(value: int, unit: str) -> str:
    """1234567 → "1.2 M" (decimal prefixes, as download tools show sizes)."""
    scaled, prefix = float(value), ""
    for bigger in ("k", "M", "G"):
        if scaled < 1000:
            break
        scaled, prefix = scaled / 1000, bigger
    text = f"{scaled:.1f}" if prefix else str(value)
    return f"{text} {prefix}{unit}".rstrip()
