"""Where weights live on disk, and how a ``--model`` reference becomes a verified file.

Lookup order for a manifest entry (:func:`resolve`):

1. the user cache, ``<cache>/<entry.file>``, if its size and sha256 match (a cached
   file with a wrong hash is deleted, with a warning, and treated as absent);
2. the copy bundled inside the package (``entry.bundled``), verified the same way;
3. a download from ``entry.urls``, in order - unless offline.

Environment variables:

``UMSN_CACHE``
    Cache root; weights go to ``$UMSN_CACHE/weights``. Default:
    ``platformdirs.user_cache_dir("umsn")/weights`` (``~/.cache/umsn/weights`` on Linux).
``UMSN_OFFLINE``
    ``1`` (or ``true``/``yes``/``on``) forbids any network access, whatever the
    ``offline`` argument says: weights must be cached, bundled or imported.
``UMSN_WEIGHTS_MIRROR``
    ``https://host/base``: every download of an entry that has URLs goes to
    ``https://host/base/<entry.file>`` instead of the manifest's URLs. The mirror must
    serve byte-identical files: the sha256 check still applies. There is no way to
    turn hash checking off.

Imported checkpoints (``umsn weights import FILE``) are copied to
``<cache>/imported/<config>.<sha256[:12]>.pt`` next to a ``.json`` record, and are
named ``imported.<config>.<sha256[:12]>`` - unless the file is byte-identical to a
manifest entry, in which case it simply becomes that entry's cached file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from umsn_cli.errors import (
    HashMismatchError,
    OfflineError,
    UnknownWeightsError,
    WeightsError,
)
from umsn_cli.files import sha256_file, temporary_file, write_text
from umsn_cli.paths import cache_root
from umsn_cli.weights.checkpoint import load_checkpoint
from umsn_cli.weights.download import TransferProgress, download
from umsn_cli.weights.manifest import Manifest, WeightsEntry, config_names, load_manifest

if TYPE_CHECKING:
    from umsn_cli.nn import UMSN

ENV_CACHE = "UMSN_CACHE"
ENV_OFFLINE = "UMSN_OFFLINE"
ENV_MIRROR = "UMSN_WEIGHTS_MIRROR"

IMPORTED_PREFIX = "imported."
_IMPORTED_NAME_RE = re.compile(r"^(?P<config>[a-z0-9-]+)\.(?P<sha12>[0-9a-f]{12})$")

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The weights cache: ``$UMSN_CACHE/weights``, else the platform's user cache."""
    return cache_root() / "weights"


def imported_dir() -> Path:
    """Where ``umsn weights import`` keeps its copies."""
    return cache_dir() / "imported"


def is_offline(offline: bool | None = None) -> bool:
    """True when ``offline`` is true or ``UMSN_OFFLINE`` is set to a true value.

    The environment variable cannot be overridden by ``offline=False``: it is a promise
    for a whole machine or job that nothing opens a socket.
    """
    env = os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(offline) or env


def download_urls(entry: WeightsEntry) -> tuple[str, ...]:
    """The URLs to try for ``entry``: its own, or the single mirror URL if one is set."""
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    if not mirror or not entry.urls:
        return entry.urls
    if not mirror.startswith(("https://", "http://")):
        raise WeightsError(
            f"{ENV_MIRROR}={mirror!r} is not an http(s) URL; set it like "
            "https://host/base, or unset it"
        )
    return (f"{mirror.rstrip('/')}/{entry.file}",)


def cached_path(entry: WeightsEntry) -> Path:
    """Where ``entry`` is (or would be) in the user cache."""
    return cache_dir() / entry.file


def bundled_path(entry: WeightsEntry) -> Path | None:
    """The package's own copy of ``entry``, if the entry names one (it may be absent)."""
    if entry.bundled is None:
        return None
    return Path(str(files("umsn_cli").joinpath(*entry.bundled.split("/"))))


def location(entry: WeightsEntry) -> str:
    """Where ``entry`` would come from: "cached", "bundled", "remote" or "missing".

    A quick look (existence and size, no hashing) for listings; :func:`resolve` and
    ``umsn weights verify`` check hashes.
    """
    if _has_size(cached_path(entry), entry.size):
        return "cached"
    bundled = bundled_path(entry)
    if bundled is not None and _has_size(bundled, entry.size):
        return "bundled"
    return "remote" if entry.urls else "missing"


def find_local(entry: WeightsEntry) -> Path | None:
    """The verified cached or bundled file of ``entry``, or None.

    A cached file with the wrong size or hash is deleted (the cache must never hold
    a wrong file); a damaged bundled copy is only skipped, as it belongs to the
    installation.
    """
    cached = cached_path(entry)
    if cached.is_file() and file_matches(cached, entry):
        return cached
    bundled = _verified_bundled(entry)
    if cached.is_file():  # damaged: say what happens instead, which depends on the bundle
        cached.unlink(missing_ok=True)
        instead = "the bundled copy is used" if bundled else "a fresh copy is needed"
        log.warning(
            "cached weights %s did not match the manifest hash and were deleted; %s",
            cached,
            instead,
        )
    return bundled


def _verified_bundled(entry: WeightsEntry) -> Path | None:
    bundled = bundled_path(entry)
    if bundled is None or not bundled.is_file():
        return None
    if file_matches(bundled, entry):
        return bundled
    log.warning("bundled weights %s are damaged; reinstall umsn", bundled)
    return None


def file_matches(path: Path, entry: WeightsEntry) -> bool:
    """True when ``path`` has exactly the size and sha256 that ``entry`` records."""
    return _has_size(path, entry.size) and sha256_file(path) == entry.sha256


def resolve(
    entry: WeightsEntry,
    *,
    offline: bool | None = None,
    progress: TransferProgress | None = None,
) -> Path:
    """A local, verified file holding ``entry``'s weights; downloads it if needed."""
    local = find_local(entry)
    if local is not None:
        return local
    if not entry.urls:
        raise WeightsError(
            f"weights {entry.id} are not published for download yet; import a checkpoint "
            "with `umsn weights import FILE`, or pass --model FILE"
        )
    if is_offline(offline):
        raise OfflineError(
            f"weights {entry.id} are not in the cache and offline mode is on; run "
            f"`umsn weights fetch {entry.id}` on a machine with network, or copy the file "
            "and `umsn weights import FILE`"
        )
    return download(
        download_urls(entry),
        cached_path(entry),
        sha256=entry.sha256,
        size=entry.size,
        progress=progress,
    )


@dataclass(frozen=True)
class ImportedCheckpoint:
    """A checkpoint copied into the cache by :func:`import_checkpoint`."""

    id: str  # imported.<config>.<sha256[:12]>
    config: str  # the model config's name, as saved in the checkpoint
    sha256: str
    size: int
    num_params: int
    source: str  # the file it was imported from (for the user's reference only)
    path: Path


def import_checkpoint(
    file: str | os.PathLike[str], manifest: Manifest | None = None
) -> ImportedCheckpoint:
    """Validate a checkpoint, then copy it into the cache under a content-derived name.

    If its sha256 is that of a manifest entry, it becomes that entry's cached file
    (this is how weights reach an offline machine: copy the file, import it) and keeps
    the entry's id. Otherwise it is stored as ``imported.<config>.<sha256[:12]>``.
    Importing the same bytes twice gives the same id; the copy is atomic, so an
    interrupted import leaves nothing behind.
    """
    from umsn_cli.nn import count_parameters

    source = Path(file).expanduser()
    model, _ = load_checkpoint(source)
    entries = manifest if manifest is not None else load_manifest()
    folder = imported_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha256 = sha256_file(source)
        published = next((e for e in entries if e.sha256 == sha256), None)
        stem = f"{_slug(model.config.name)}.{sha256[:12]}"
        record = ImportedCheckpoint(
            id=published.id if published else IMPORTED_PREFIX + stem,
            config=model.config.name,
            sha256=sha256,
            size=source.stat().st_size,
            num_params=count_parameters(model),
            source=str(source.resolve()),
            path=cached_path(published) if published else folder / f"{stem}.pt",
        )
        with temporary_file(record.path) as tmp:
            shutil.copyfile(source, tmp)
            if sha256_file(tmp) != sha256:
                raise WeightsError(f"{source} changed while it was imported; import it again")
        if not published:
            # The record is written last: a .pt without its .json is an unfinished import.
            fields = {k: v for k, v in asdict(record).items() if k != "path"}
            write_text(record.path.with_suffix(".json"), json.dumps(fields, indent=2) + "\n")
    except OSError as exc:
        raise WeightsError(
            f"cannot copy {source} into {folder} ({exc.strerror or exc}); free some disk "
            f"space or point {ENV_CACHE} at a writable folder"
        ) from exc
    return record


def list_imported() -> list[ImportedCheckpoint]:
    """Every finished import in the cache, sorted by id."""
    folder = imported_dir()
    if not folder.is_dir():
        return []
    records = []
    for meta in sorted(folder.glob("*.json")):
        if not _IMPORTED_NAME_RE.match(meta.stem) or not meta.with_suffix(".pt").is_file():
            continue
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            records.append(ImportedCheckpoint(**data, path=meta.with_suffix(".pt")))
        except (OSError, ValueError, TypeError):
            log.warning("ignoring unreadable import record %s; import the file again", meta)
    return records


def get_imported(ref: str) -> ImportedCheckpoint:
    """The imported checkpoint named ``ref`` (``imported.<config>.<sha12>``)."""
    for record in list_imported():
        if record.id == ref:
            return record
    known = ", ".join(r.id for r in list_imported()) or "none"
    raise WeightsError(
        f"no imported checkpoint {ref!r} (imported: {known}); import it with "
        "`umsn weights import FILE`"
    )


def load_model(
    ref: str, *, offline: bool | None = None, progress: TransferProgress | None = None
) -> tuple[UMSN, str]:
    """The model a ``--model`` value names, and its file's sha256.

    A manifest entry's input copy (size, value range) must match the input contract
    saved in the checkpoint: a mismatch means the manifest describes other weights.
    """
    path, sha256, entry = _resolve_ref(ref, None, offline, progress)
    model, _meta = load_checkpoint(path)
    contract = model.config.input
    if entry is not None and (
        entry.input.size != (contract.size, contract.size)
        or entry.input.value_range != contract.value_range
    ):
        height, width = entry.input.size
        raise WeightsError(
            f"{entry.id}: the manifest says the weights take {height}×{width} images in "
            f"{list(entry.input.value_range)}, but the checkpoint was trained on "
            f"{contract.size}×{contract.size} in {list(contract.value_range)}; the manifest "
            "entry is wrong: fix it or re-export the weights"
        )
    return model, sha256


def resolve_model_ref(
    ref: str,
    manifest: Manifest | None = None,
    offline: bool | None = None,
    *,
    progress: TransferProgress | None = None,
) -> tuple[Path, str]:
    """Turn a ``--model`` value into (checkpoint path, sha256).

    ``ref`` is, checked in this order:

    * ``imported.<config>.<sha12>`` - a checkpoint added by ``umsn weights import``;
    * a manifest id (``umsn-lite.celebamask-v1``) or a config name (``umsn-lite``,
      meaning its default entry) - resolved with :func:`resolve`, downloading if needed;
    * the path of an existing file - used as is; it is validated when loaded.

    Anything else is an error that lists what would have worked.
    """
    path, sha256, _entry = _resolve_ref(ref, manifest, offline, progress)
    return path, sha256


def _resolve_ref(
    ref: str, manifest: Manifest | None, offline: bool | None, progress: TransferProgress | None
) -> tuple[Path, str, WeightsEntry | None]:
    """:func:`resolve_model_ref`, and the manifest entry where the ref named one."""
    if ref.startswith(IMPORTED_PREFIX):
        record = get_imported(ref)
        if sha256_file(record.path) != record.sha256:
            record.path.unlink(missing_ok=True)
            record.path.with_suffix(".json").unlink(missing_ok=True)
            raise HashMismatchError(
                f"imported checkpoint {ref} was damaged on disk and has been removed; import "
                f"it again with `umsn weights import {record.source}`"
            )
        return record.path, record.sha256, None
    if manifest is None:
        manifest = load_manifest()
    if ref in config_names() or any(entry.id == ref for entry in manifest):
        if ref in config_names() and not manifest.for_config(ref):
            imported = [r.id for r in list_imported() if r.config == ref]
            if imported:
                raise WeightsError(
                    f"the manifest holds no weights for {ref!r}; use an imported checkpoint, "
                    f"e.g. --model {imported[-1]} (see `umsn weights list`)"
                )
        entry = manifest.get(ref)
        return resolve(entry, offline=offline, progress=progress), entry.sha256, entry
    path = Path(ref).expanduser()
    if path.is_file():
        return path, sha256_file(path), None
    if os.sep in ref or "/" in ref or path.suffix in {".pt", ".pth"}:
        raise WeightsError(f"checkpoint file {ref} does not exist; check the path")
    raise UnknownWeightsError(
        f"unknown model {ref!r}; give a weights id, a config name ({', '.join(config_names())}), "
        "an imported id or a checkpoint file (see `umsn weights list`)"
    )


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.is_file() and path.stat().st_size == size
    except OSError:
        return False


def _slug(name: str) -> str:
    """A config name made safe for a file name and an id (lowercase, digits, '-')."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "model"
