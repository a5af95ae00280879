"""The weights manifest: every published weights file described as plain data.

Like torchvision's weights API, the facts about a weights file (its hash, size,
parameter count, input convention, metrics, licence) live next to the code as data,
not in prose. The manifest is strict: an unknown key, a missing key or a value of the
wrong type is a :class:`~umsn_cli.errors.ManifestError`, so a typo can never silently
turn into "no hash to check".

Layout of ``weights_manifest.json``::

    {"schema_version": 1, "weights": [entry, ...]}

Each entry is a :class:`WeightsEntry`; its ``id`` is ``<config>.<tag>`` (for example
``umsn-lite.celebamask-v1``), where ``<config>`` is a name in
:data:`umsn_cli.nn.config.CONFIGS` and equals the entry's ``config``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from importlib.resources import files
from pathlib import Path, PurePosixPath
from typing import Any

from umsn_cli.errors import ManifestError, UnknownWeightsError

#: The only layout this version of umsn reads.
SCHEMA_VERSION = 1

TASKS = ("deblur", "segment")
#: What ``--model`` means when it is not given: a config name, standing for that
#: config's default entry in the manifest.
DEFAULT_MODEL = "bnet-fast-xl"
ARCHITECTURES = ("umsn",)

_ID_RE = re.compile(r"^(?P<config>[a-z0-9][a-z0-9-]*)\.(?P<tag>[a-z0-9][a-z0-9._-]*)$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# A plain checkpoint file name: it is joined to the cache directory, so no separators,
# no "..", and no clash with the cache's "imported" folder.
_FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.pt$")


@dataclass(frozen=True)
class InputSpec:
    """How images must be prepared for these weights (what they were trained on)."""

    size: tuple[int, int]  # (height, width) in pixels
    framing: str  # e.g. "aligned face crop, eyes at 40% height"
    value_range: tuple[float, float]  # pixel values after scaling, e.g. (0, 1)


@dataclass(frozen=True)
class Metric:
    """One measured score, with the command that reproduces it."""

    name: str
    value: float
    dataset: str
    command: str


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file: where it comes from, how to check it, what it is good for."""

    id: str
    task: str
    architecture: str
    config: str
    file: str
    sha256: str
    size: int
    num_params: int
    urls: tuple[str, ...]
    input: InputSpec
    metrics: tuple[Metric, ...]
    license: str
    data_terms: str
    training_config: str
    bundled: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; look entries up with :meth:`get`."""

    entries: tuple[WeightsEntry, ...]
    source: str = field(default="<packaged manifest>", compare=False)

    def __iter__(self) -> Iterator[WeightsEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def for_config(self, config: str) -> list[WeightsEntry]:
        """All entries whose weights fit the named configuration."""
        return [e for e in self.entries if e.config == config]

    def get(self, ref: str) -> WeightsEntry:
        """The entry with id ``ref``, or the default entry of the config named ``ref``.

        Raises :class:`ManifestError` with the known ids when nothing matches, so a
        typo on the command line is answered with the list to pick from.
        """
        for entry in self.entries:
            if entry.id == ref:
                return entry
        if ref in config_names():
            candidates = self.for_config(ref)
            for entry in candidates:
                if entry.default:
                    return entry
            if not candidates:
                raise ManifestError(
                    f"no weights for {ref!r} are installed: the manifest lists none for this "
                    "config; pass a trained checkpoint with --model FILE, or import it once "
                    "with `umsn weights import FILE` and use the id it prints"
                )
            ids = ", ".join(e.id for e in candidates)
            raise ManifestError(
                f"{ref!r} has no default weights in the manifest; name one of: {ids}"
            )
        known = ", ".join([e.id for e in self.entries] + config_names())
        raise UnknownWeightsError(
            f"unknown weights {ref!r}; known ids and configs: {known} (see `umsn weights list`)"
        )


def config_names() -> list[str]:
    """The configuration names ``--model`` accepts, sorted.

    Imported here rather than at module level: ``umsn_cli.nn`` pulls in torch, and the
    weights commands (and ``umsn --help``) should not pay for that until a model is built.
    """
    from umsn_cli.nn.config import CONFIGS

    return sorted(CONFIGS)


def load_manifest(path: Path | None = None) -> Manifest:
    """Read and validate a manifest; by default the copy packaged with umsn."""
    if path is None:
        resource = files("umsn_cli") / "weights_manifest.json"
        source = "the packaged weights_manifest.json"
        try:
            text = resource.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(
                f"cannot read {source} ({exc.strerror or exc}); reinstall umsn"
            ) from exc
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(
                f"cannot read manifest {path} ({exc.strerror or exc}); check the path"
            ) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{source} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the file"
        ) from exc
    return parse_manifest(data, source=source)


def parse_manifest(data: Any, *, source: str = "manifest") -> Manifest:
    """Validate already-decoded JSON; every problem names the entry and the key."""
    _check_keys(data, source, required={"schema_version", "weights"})
    if data["schema_version"] != SCHEMA_VERSION:
        raise ManifestError(
            f"{source}: schema_version {data['schema_version']!r} is not supported "
            f"(this umsn reads {SCHEMA_VERSION}); upgrade umsn or fix the manifest"
        )
    raw_entries = data["weights"]
    if not isinstance(raw_entries, list):
        raise ManifestError(f"{source}: 'weights' must be a list of entries; fix the manifest")
    entries = tuple(
        _parse_entry(raw, f"{source}: weights[{i}]") for i, raw in enumerate(raw_entries)
    )
    _check_unique(entries, source)
    return Manifest(entries=entries, source=source)


_REQUIRED = {f.name for f in fields(WeightsEntry)} - {"bundled", "default"}
_OPTIONAL = {"bundled", "default"}


def _parse_entry(raw: Any, where: str) -> WeightsEntry:
    _check_keys(raw, where, required=_REQUIRED, optional=_OPTIONAL)
    where = f"{where} ({raw['id']})" if isinstance(raw["id"], str) else where

    def text(key: str) -> str:
        return _typed(raw[key], str, f"{where}: {key!r}")

    entry_id, config = text("id"), text("config")
    match = _ID_RE.match(entry_id)
    if match is None or match["config"] not in config_names():
        raise ManifestError(
            f"{where}: id must look like '<config>.<tag>' with <config> one of "
            f"{config_names()} (e.g. 'umsn-lite.celebamask-v1'); fix the id"
        )
    if config != match["config"]:
        raise ManifestError(
            f"{where}: 'config' is {config!r} but the id names {match['config']!r}; make them agree"
        )
    task = _one_of(text("task"), TASKS, f"{where}: 'task'")
    architecture = _one_of(text("architecture"), ARCHITECTURES, f"{where}: 'architecture'")
    file = text("file")
    if not _FILE_RE.match(file):
        raise ManifestError(
            f"{where}: 'file' must be a plain file name ending in .pt (letters, digits, "
            "'.', '_', '-'); fix it"
        )
    sha256 = text("sha256")
    if not _SHA256_RE.match(sha256):
        raise ManifestError(f"{where}: 'sha256' must be 64 lowercase hex digits; fix it")
    size = _count(raw["size"], f"{where}: 'size'")
    num_params = _count(raw["num_params"], f"{where}: 'num_params'")
    urls = tuple(_typed(u, str, f"{where}: 'urls' item") for u in _list(raw, "urls", where))
    for url in urls:
        if not url.startswith(("https://", "http://")):
            raise ManifestError(f"{where}: url {url!r} must start with https://; fix it")
    bundled = raw.get("bundled")
    if bundled is not None:
        _typed(bundled, str, f"{where}: 'bundled'")
        parts = PurePosixPath(bundled).parts
        if not parts or bundled.startswith("/") or ".." in parts or "\\" in bundled:
            raise ManifestError(
                f"{where}: 'bundled' must be a relative path inside the umsn_cli package "
                "(e.g. 'bundled/umsn-lite.celebamask-v1.pt'); fix it"
            )
    return WeightsEntry(
        id=entry_id,
        task=task,
        architecture=architecture,
        config=config,
        file=file,
        sha256=sha256,
        size=size,
        num_params=num_params,
        urls=urls,
        input=_parse_input(raw["input"], f"{where}: 'input'"),
        metrics=tuple(
            _parse_metric(m, f"{where}: metrics[{i}]")
            for i, m in enumerate(_list(raw, "metrics", where))
        ),
        license=text("license"),
        data_terms=text("data_terms"),
        training_config=text("training_config"),
        bundled=bundled,
        default=_typed(raw.get("default", False), bool, f"{where}: 'default'"),
    )


def _parse_input(raw: Any, where: str) -> InputSpec:
    _check_keys(raw, where, required={"size", "framing", "value_range"})
    size = raw["size"]
    if not (isinstance(size, list) and len(size) == 2):
        raise ManifestError(f"{where}: 'size' must be [height, width]; fix it")
    height, width = (_count(v, f"{where}: 'size'") for v in size)
    value_range = raw["value_range"]
    if not (
        isinstance(value_range, list)
        and len(value_range) == 2
        and all(_is_number(v) for v in value_range)
        and value_range[0] < value_range[1]
    ):
        raise ManifestError(f"{where}: 'value_range' must be [low, high], e.g. [0, 1]; fix it")
    return InputSpec(
        size=(height, width),
        framing=_typed(raw["framing"], str, f"{where}: 'framing'"),
        value_range=(float(value_range[0]), float(value_range[1])),
    )


def _parse_metric(raw: Any, where: str) -> Metric:
    _check_keys(raw, where, required={"name", "value", "dataset", "command"})
    if not _is_number(raw["value"]):
        raise ManifestError(f"{where}: 'value' must be a number; fix it")
    return Metric(
        name=_typed(raw["name"], str, f"{where}: 'name'"),
        value=float(raw["value"]),
        dataset=_typed(raw["dataset"], str, f"{where}: 'dataset'"),
        command=_typed(raw["command"], str, f"{where}: 'command'"),
    )


def _check_unique(entries: tuple[WeightsEntry, ...], source: str) -> None:
    """Ids and file names must be unique (files share one cache directory)."""
    seen_ids: set[str] = set()
    seen_files: set[str] = set()
    defaults: dict[str, str] = {}
    for entry in entries:
        if entry.id in seen_ids:
            raise ManifestError(f"{source}: id {entry.id!r} appears twice; remove one")
        if entry.file in seen_files:
            raise ManifestError(
                f"{source}: file {entry.file!r} appears in two entries; give each its own"
            )
        if entry.default and entry.config in defaults:
            raise ManifestError(
                f"{source}: {defaults[entry.config]!r} and {entry.id!r} are both the default "
                f"for {entry.config!r}; keep one"
            )
        seen_ids.add(entry.id)
        seen_files.add(entry.file)
        if entry.default:
            defaults[entry.config] = entry.id


def _check_keys(
    raw: Any, where: str, *, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> None:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object, got {type(raw).__name__}; fix it")
    unknown = set(raw) - required - set(optional)
    if unknown:
        raise ManifestError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(required | optional)}"
        )
    missing = required - set(raw)
    if missing:
        raise ManifestError(f"{where}: missing key(s) {sorted(missing)}; add them")


def _typed(value: Any, kind: type, where: str) -> Any:
    # bool is a subclass of int; a manifest saying "size": true is still wrong.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ManifestError(
            f"{where} must be a {kind.__name__}, got {type(value).__name__}; fix it"
        )
    return value


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ManifestError(f"{where} must be a positive integer; fix it")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(raw: dict[str, Any], key: str, where: str) -> list[Any]:
    return _typed(raw[key], list, f"{where}: {key!r}")


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ManifestError(f"{where} is {value!r}; must be one of {list(allowed)}")
    return value
