"""Turn command-line inputs (files, quoted globs, directories) into a plan of jobs.

Planning is separate from decoding so that every usage mistake — a typo in a path, a
pattern that matches nothing, two photos that would land on one output name — is
reported before the first, slow, restoration starts, not halfway through a batch.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from umsn_cli.errors import UsageError, one_line

#: Suffixes a directory walk or a glob picks up (compared case-insensitively).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp", ".gif"})
_GLOB_CHARS = frozenset("*?[")
_SUFFIX_LIST = ", ".join(sorted(IMAGE_SUFFIXES))


@dataclass(frozen=True)
class Job:
    """One input and where its result goes, less the extension: that depends on the decoded
    image (see :func:`umsn_cli.images.output_suffix`)."""

    source: Path
    target_stem: Path

    def target(self, suffix: str) -> Path:
        """The output path with ``suffix`` (".png") appended; stems may hold dots ("a.b")."""
        return self.target_stem.with_name(self.target_stem.name + suffix)


def expand_inputs(
    items: Sequence[str], *, recursive: bool, missing: list[tuple[Path, str]] | None = None
) -> list[tuple[Path, Path]]:
    """Expand files, globs and directories to sorted, de-duplicated ``(file, base)`` pairs;
    ``file.relative_to(base)`` is the part of the path mirrored in the output.

    An item that names nothing is a :class:`UsageError`, unless ``missing`` is given:
    then it is recorded there (item, message) and the others go on, so one mistyped
    path does not stop a batch; if no item names anything, it is still an error.
    """
    if not items:
        raise UsageError(
            "no inputs given; pass image files, directories or quoted glob patterns (or --example)"
        )
    pairs = []
    problems = []
    for item in items:
        try:
            pairs += _expand_one(item, recursive=recursive)
        except UsageError as exc:
            if missing is None:
                raise
            problems.append((Path(item), str(exc)))
    unique: dict[Path, tuple[Path, Path]] = {}
    for file, base in sorted(pairs):  # the same file reached twice keeps its first spelling
        try:
            resolved = file.resolve()
        except (OSError, RuntimeError) as exc:  # a symbolic link loop (RuntimeError < 3.13)
            problems.append((file, f"{file}: a link that cannot be followed ({one_line(exc)})"))
            continue
        unique.setdefault(resolved, (file, base))
    if problems and (missing is None or not unique):
        raise UsageError(problems[0][1])
    if missing is not None:
        missing += problems
    return sorted(unique.values())


def plan_jobs(
    items: Sequence[str],
    out_dir: Path,
    *,
    recursive: bool,
    suffix: str = "",
    missing: list[tuple[Path, str]] | None = None,
    by_name: bool = False,
) -> list[Job]:
    """Plan one job per input file: directory inputs mirror their tree below ``out_dir``,
    files and glob matches go straight into it; ``suffix`` is appended to every stem.
    ``missing``: see :func:`expand_inputs`.

    Two inputs with one stem (``a.png``, ``a.jpg``) are refused, because their outputs
    are named by the stem, unless ``by_name``: outputs keep the input's type, so they
    differ, and the caller checks the real output names once it knows them.
    """
    if "/" in suffix or os.sep in suffix:
        raise UsageError(f"--suffix {suffix!r} contains a path separator; use -o to pick a folder")
    out_dir = Path(out_dir)
    out_resolved = out_dir.resolve()
    jobs: list[Job] = []
    claimed: dict[str, Path] = {}
    for file, base in expand_inputs(items, recursive=recursive, missing=missing):
        base_resolved = base.resolve()
        if base_resolved in out_resolved.parents and out_resolved in file.resolve().parents:
            continue  # an earlier run's results inside the walked directory, not inputs
        stem = out_dir / file.relative_to(base).parent / (file.stem + suffix)
        # Case-folded: on macOS and Windows "A.jpg" and "a.jpg" are one output file.
        key = str(stem).casefold() + (file.suffix.casefold() if by_name else "")
        if key in claimed:
            raise UsageError(
                f"{claimed[key]} and {file} would both be written as {stem}.*; rename one, "
                "run them with different -o, or pass a folder holding both with --recursive "
                "to mirror its structure"
            )
        claimed[key] = file
        jobs.append(Job(source=file, target_stem=stem))
    return jobs


def resolved_sources(jobs: Iterable[Job]) -> set[Path]:
    """The resolved input paths, computed once, for :func:`check_not_input`."""
    return {job.source.resolve() for job in jobs}


def check_not_input(target: Path, sources: set[Path]) -> None:
    """Refuse to write a result over one of the inputs, which would destroy the original.

    ``sources`` must hold resolved paths (see :func:`resolved_sources`).
    """
    if Path(target).resolve() in sources:
        raise UsageError(
            f"refusing to write over the input {target}; choose another -o or a --suffix"
        )


def _expand_one(item: str, *, recursive: bool) -> list[tuple[Path, Path]]:
    """One argument: an existing path first (names may contain '[' or '*'), else a glob."""
    path = Path(item)
    if path.is_dir():
        pairs = _walk(path, recursive=recursive)
        if not pairs:
            hint = "check the path" if recursive else "pass --recursive to look in subfolders"
            raise UsageError(f"{item}: no image files ({_SUFFIX_LIST}) in this directory; {hint}")
        return pairs
    if path.exists():
        return [(path, path.parent)]  # named explicitly: tried whatever its suffix
    if not _GLOB_CHARS.intersection(item):
        raise UsageError(f"{item}: no such file or directory; check the path")
    pairs = []
    for match in map(Path, sorted(glob.glob(item, recursive=True))):
        if match.is_dir():  # as if the shell had expanded the pattern
            pairs.extend(_walk(match, recursive=recursive))
        elif match.suffix.lower() in IMAGE_SUFFIXES:
            pairs.append((match, match.parent))
    if not pairs:
        raise UsageError(f"{item}: matches no image files ({_SUFFIX_LIST}); check the pattern")
    return pairs


def _walk(directory: Path, *, recursive: bool) -> list[tuple[Path, Path]]:
    """Image files in ``directory`` (and below, if recursive), skipping hidden files and
    folders: thumbnails caches, ``.git`` and half-written temporary outputs."""
    pairs = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        pairs.extend(
            (Path(root, name), directory)
            for name in sorted(files)
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return pairs


def shard(jobs: Sequence[Job], spec: str | None) -> list[Job]:
    """The K-th of N interleaved parts of ``jobs`` for ``--shard K/N`` (K from 1).

    Deterministic and coordination-free: every process of a SLURM array or an indexed
    job plans the same sorted list and keeps every N-th job from its own offset, so the
    N shards together cover each input exactly once.
    """
    if spec is None:
        return list(jobs)
    k, sep, n = spec.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise UsageError(f"--shard {spec}: give K/N with 1 ≤ K ≤ N, e.g. --shard 2/8")
    return list(jobs[int(k) - 1 :: int(n)])
