"""Download a weights file so that the cache never holds a wrong or partial file.

The recipe (as in pooch and huggingface_hub):

1. stream the body into a uniquely named temp file *beside* the target, hashing as
   it is written (no second pass, no whole file in memory);
2. check the size and sha256 the manifest records;
3. ``os.replace`` the temp file onto the target - atomic on one file system, so a
   reader sees either no file or the complete, verified one;
4. on any failure, delete the temp file.

Transient trouble (connection errors, timeouts, 5xx, a body cut short) is retried
with exponential backoff; a 4xx answer is final. A read timeout bounds how long a
stalled server can hold us. Two processes fetching the same file are safe by
construction (unique temp names + atomic rename); a lock on ``<target>.lock``
(``filelock``, which works on Windows too) only saves the second one from
downloading the file again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from umsn_cli import __version__
from umsn_cli.errors import DownloadError, HashMismatchError, UmsnError, WeightsError
from umsn_cli.files import sha256_file, temporary_file

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

#: How a caller shows a transfer: called with a label and the expected bytes (None if
#: unknown), it returns a context manager yielding ``advance(bytes)``. The CLI passes a
#: rich bar; the library itself draws nothing.
TransferProgress = Callable[[str, "int | None"], AbstractContextManager[Callable[[int], None]]]

_CHUNK = 1 << 16
_LOCK_POLL_S = 0.1


class _Transient(Exception):
    """A failure worth retrying (network trouble, 5xx, truncated body)."""


def download(
    urls: Sequence[str],
    target: str | os.PathLike[str],
    *,
    sha256: str,
    size: int | None = None,
    progress: TransferProgress | None = None,
    tries: int = 3,
    backoff: float = 0.5,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    lock_timeout: float = 600.0,
) -> Path:
    """Fetch ``target`` from the first of ``urls`` that serves the right bytes.

    Each URL gets ``tries`` attempts for transient errors, sleeping
    ``backoff * 2**k`` seconds between them. A wrong size or hash moves on to the next
    URL at once (retrying the same server would get the same wrong file). Raises
    :class:`DownloadError` or :class:`HashMismatchError`; on return, ``target``
    exists and has the expected sha256.
    """
    target = Path(target)
    if not urls:
        raise DownloadError(f"no URL to download {target.name} from; pass at least one")
    if tries < 1:
        raise ValueError(f"tries must be at least 1, not {tries}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target, lock_timeout):
        if target.is_file() and _matches(target, sha256, size):
            return target  # another process finished it while we waited for the lock
        failure: WeightsError | None = None
        for url in urls:
            try:
                _fetch_url(
                    url,
                    target,
                    sha256=sha256,
                    size=size,
                    progress=progress,
                    tries=tries,
                    backoff=backoff,
                    timeout=(connect_timeout, read_timeout),
                )
            except (DownloadError, HashMismatchError) as exc:
                failure = exc
                continue
            # Checked again on the final path: what we return is what a reader gets.
            if not _matches(target, sha256, size):
                target.unlink(missing_ok=True)
                raise HashMismatchError(
                    f"{target} changed while it was being installed; run the fetch again"
                )
            return target
    assert failure is not None
    if len(urls) == 1:
        raise failure
    raise type(failure)(
        f"all {len(urls)} URLs for {target.name} failed; last: {failure}"
    ) from failure


def _fetch_url(
    url: str,
    target: Path,
    *,
    sha256: str,
    size: int | None,
    progress: TransferProgress | None,
    tries: int,
    backoff: float,
    timeout: tuple[float, float],
) -> None:
    reason = ""
    for attempt in range(tries):
        try:
            _fetch_once(url, target, sha256=sha256, size=size, progress=progress, timeout=timeout)
            return
        except _Transient as exc:
            reason = str(exc)
            log.debug(
                "download of %s failed (%s), attempt %d of %d", url, reason, attempt + 1, tries
            )
            if attempt + 1 < tries:
                time.sleep(backoff * 2**attempt)
    raise DownloadError(
        f"downloading {url} failed after {tries} tries ({reason}); check the network "
        "(or set UMSN_WEIGHTS_MIRROR) and try again"
    )


def _fetch_once(
    url: str,
    target: Path,
    *,
    sha256: str,
    size: int | None,
    progress: TransferProgress | None,
    timeout: tuple[float, float],
) -> None:
    """One attempt: stream into a temp file, verify, rename. Never leaves the temp file."""
    try:
        with temporary_file(target) as tmp:
            with open(tmp, "wb") as out:
                digest, received = _stream(url, out, size=size, progress=progress, timeout=timeout)
            if size is not None and received < size:
                raise _Transient(f"connection closed after {received} of {size} bytes")
            if digest != sha256:
                raise HashMismatchError(
                    f"{url} served a file whose sha256 is {digest[:12]}…, not the expected "
                    f"{sha256[:12]}…; the file on the server is wrong or was replaced, report it"
                )
    except UmsnError:  # already one line (and a DownloadError is an OSError too)
        raise
    except OSError as exc:  # the network errors were already translated by _stream
        raise DownloadError(
            f"cannot write {target.parent} ({exc.strerror or exc}); free some disk space "
            "or point UMSN_CACHE at a writable folder"
        ) from exc


def _stream(
    url: str,
    out: BinaryIO,
    *,
    size: int | None,
    progress: TransferProgress | None,
    timeout: tuple[float, float],
) -> tuple[str, int]:
    """GET ``url`` into ``out``; returns (sha256 hex, bytes received).

    requests is imported here, not at module level: importing it can open a socket
    (its optional dependencies probe the system), and ``--offline`` runs never download.
    """
    import requests

    digest = hashlib.sha256()
    received = 0
    headers = {"User-Agent": f"umsn/{__version__}", "Accept-Encoding": "identity"}
    try:
        with requests.get(url, stream=True, timeout=timeout, headers=headers) as response:
            _check_status(url, response)
            announced = response.headers.get("Content-Length")
            announced_size = int(announced) if announced and announced.isdigit() else None
            if size is not None and announced_size is not None and announced_size != size:
                raise HashMismatchError(
                    f"{url} offers {announced_size} bytes but the manifest expects {size}; "
                    "the file on the server is wrong or was replaced, report it"
                )
            total = size if size is not None else announced_size
            bar = progress(Path(url).name, total) if progress else nullcontext(_ignore)
            with bar as advance:
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if size is not None and received > size:
                        raise HashMismatchError(
                            f"{url} sent more than the expected {size} bytes; the file on "
                            "the server is wrong or was replaced, report it"
                        )
                    digest.update(chunk)
                    out.write(chunk)
                    advance(len(chunk))
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
    ) as exc:
        raise _Transient(_describe(exc)) from exc
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {url} ({_describe(exc)}); check the URL") from exc
    return digest.hexdigest(), received


def _check_status(url: str, response: requests.Response) -> None:
    status = response.status_code
    if status >= 500 or status == 429:
        raise _Transient(f"HTTP {status}")
    if status != 200:
        raise DownloadError(
            f"{url} answered HTTP {status} {response.reason}; the file is not available "
            "there, check the URL (or UMSN_WEIGHTS_MIRROR)"
        )


def _describe(exc: BaseException) -> str:
    """A short reason: requests nests urllib3 errors into very long messages."""
    import requests

    if isinstance(exc, requests.Timeout) or "timed out" in str(exc).lower():
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed before the whole file arrived"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect or connection lost"
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _ignore(_bytes: int) -> None:
    """``advance`` when no progress is shown."""


def _matches(path: Path, sha256: str, size: int | None) -> bool:
    return (size is None or path.stat().st_size == size) and sha256_file(path) == sha256


@contextmanager
def _lock(target: Path, timeout: float) -> Iterator[None]:
    """Hold ``<target>.lock`` (filelock: flock on Unix, msvcrt on Windows) while
    downloading.

    It only avoids a duplicate download; correctness never depends on it. So if the
    lock cannot be had within ``timeout`` (a hung process holds it), we go on without
    it, and the lock file is removed afterwards so the cache holds only weights (at
    worst a process that waited on the removed file downloads once more).
    """
    from filelock import FileLock, Timeout

    lock = FileLock(target.with_name(target.name + ".lock"))
    try:
        lock.acquire(timeout=timeout, poll_interval=_LOCK_POLL_S)
    except Timeout:
        log.warning("%s is still locked after %.0f s; downloading anyway", lock.lock_file, timeout)
        yield
        return
    try:
        yield
    finally:
        Path(lock.lock_file).unlink(missing_ok=True)
        lock.release()
