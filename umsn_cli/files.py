"""Writing files so that nobody ever sees half of one, and hashing them.

Every file umsn writes (images, weights, checkpoints, caches, logs, reports) goes
through :func:`temporary_file`, the shape pooch and huggingface_hub use: the data is
written to a hidden temp file beside the target, flushed to disk, given the usual
permissions, and only then renamed onto the target (``os.replace``, atomic on one file
system) or, when the target must not be replaced, hard-linked to it (which fails if
the name was taken meanwhile, so two writers never clobber each other). Whatever stops
the writer (an exception, Ctrl-C, SIGTERM) removes the temp file. Errors are the
builtin ``OSError``\\ s; callers turn them into their own one-line messages.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from umsn_cli.errors import UsageError, one_line

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large files never sit in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def temporary_file(target: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """A temp path beside ``target`` to write; on a clean exit it becomes ``target``.

    The temp name keeps ``target``'s suffix (``np.savez`` and image encoders look at
    it). With ``overwrite=False`` an existing ``target`` raises ``FileExistsError``,
    also when it appears while the data is being written.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise FileExistsError(errno.EEXIST, "already exists", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{target.suffix}"
    fd, name = tempfile.mkstemp(
        dir=target.parent, prefix=_temp_prefix(target.name, suffix), suffix=suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        tmp.chmod(new_file_mode())
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


#: The longest file name most file systems take, in bytes (ext4, XFS, APFS, NTFS in UTF-16).
NAME_MAX = 255
_RANDOM = 8  # the characters mkstemp puts between prefix and suffix


def _temp_prefix(name: str, suffix: str) -> str:
    """``.NAME.`` with NAME shortened so that the temp name fits in :data:`NAME_MAX` bytes:
    a legal target name of 250 bytes must not fail for its hidden temp name's sake."""
    room = NAME_MAX - len(os.fsencode(suffix)) - _RANDOM - 2
    encoded = os.fsencode(name)
    if len(encoded) > room:
        name = encoded[:room].decode("utf-8", errors="ignore")  # never half a character
    return f".{name}."


def check_writable_folder(folder: str | os.PathLike[str]) -> None:
    """Raise the ``OSError`` that writing into ``folder`` would meet, before any work.

    The folder may not exist yet: then its nearest existing parent must take the new
    folder. A probe file is created and removed, since permission bits do not tell
    (root, read-only mounts, ACLs).
    """
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(existing))
    fd, name = tempfile.mkstemp(dir=existing, prefix=".umsn-write-check.")
    os.close(fd)
    os.unlink(name)


def check_file_destination(path: str | os.PathLike[str]) -> None:
    """Refuse, as a usage error, a file the user named (``--json``, ``--report``) whose
    folder cannot be written: found before the work, not after it. A missing folder is
    made when the file is written (:func:`temporary_file`)."""
    path = Path(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"{path}: {path.parent} is a file, not a folder; choose another")
    try:
        check_writable_folder(path.parent)
    except OSError as exc:
        raise UsageError(
            f"{path}: its folder cannot be written ({one_line(exc)}); choose another"
        ) from exc


def write_bytes(target: str | os.PathLike[str], data: bytes, *, overwrite: bool = True) -> None:
    """``data`` into ``target`` through :func:`temporary_file`, its length checked.

    The check catches a writer that lost a short write without raising (a full disk
    under Pillow's JPEG encoder did that) before the file gets its final name.
    """
    with temporary_file(target, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
        if tmp.stat().st_size != len(data):
            raise OSError(errno.ENOSPC, "the file came out shorter than its data (disk full?)")


def write_text(target: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    write_bytes(target, text.encode("utf-8"), overwrite=overwrite)


@functools.cache
def new_file_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask); mkstemp's is 0600."""
    umask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(umask)
    return 0o666 & ~umask


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Give the finished file its name only if nobody has taken it meanwhile.

    File systems without hard links get the rename after a last check.
    """
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        if target.exists():
            raise FileExistsError(errno.EEXIST, "already exists", str(target)) from None
        os.replace(tmp, target)
