"""Downloads and cache resolution against a local HTTP server.

After every failure the cache must hold no temp file and no file with a wrong hash:
that is the invariant the whole download design exists for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from umsn_cli.errors import DownloadError, HashMismatchError, OfflineError, WeightsError
from umsn_cli.weights import store
from umsn_cli.weights.download import download

BODY = os.urandom(200_000)
SHA = hashlib.sha256(BODY).hexdigest()
FAST = {"progress": False, "backoff": 0.01}


def cache() -> Path:
    return store.cache_dir()


def assert_clean(folder: Path, expected: dict[str, str] | None = None) -> None:
    """No temp or lock files; only the ``expected`` files, each with its hash."""
    expected = expected or {}
    found = {p.name: p for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}
    assert set(found) == set(expected), f"unexpected cache contents: {sorted(found)}"
    for name, sha in expected.items():
        assert hashlib.sha256(found[name].read_bytes()).hexdigest() == sha


def test_download_success(weights_server):
    url = weights_server.serve("/w/a.pt", BODY)
    target = download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert target.read_bytes() == BODY
    assert_clean(cache(), {"a.pt": SHA})


def test_404_fails_at_once_without_retry(weights_server):
    url = weights_server.base_url + "/w/missing.pt"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="404") as info:
        download([url], cache() / "a.pt", sha256=SHA, backoff=5.0)
    assert time.monotonic() - start < 2  # a retry would have slept 5 s
    assert url in str(info.value)
    assert weights_server.count("/w/missing.pt") == 1
    assert_clean(cache())


def test_5xx_is_retried_until_it_succeeds(weights_server):
    url = weights_server.serve("/w/a.pt", BODY, fail_first=2)
    download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert weights_server.count("/w/a.pt") == 3
    assert_clean(cache(), {"a.pt": SHA})


def test_5xx_gives_up_after_the_tries(weights_server):
    url = weights_server.serve("/w/a.pt", BODY, fail_first=99)
    with pytest.raises(DownloadError, match="after 3 tries"):
        download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert weights_server.count("/w/a.pt") == 3
    assert_clean(cache())


def test_truncated_body_is_retried_and_never_kept(weights_server):
    # Content-Length announces the whole file, then the connection closes halfway.
    url = weights_server.serve("/w/a.pt", BODY, send=len(BODY) // 2)
    with pytest.raises(DownloadError, match="before the whole file arrived"):
        download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert weights_server.count("/w/a.pt") == 3
    assert_clean(cache())


def test_wrong_hash_is_never_kept(weights_server):
    wrong = bytes(len(BODY))
    url = weights_server.serve("/w/a.pt", wrong)
    with pytest.raises(HashMismatchError, match="sha256"):
        download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert weights_server.count("/w/a.pt") == 1  # the same server would send it again
    assert_clean(cache())


def test_wrong_size_is_refused_before_downloading(weights_server):
    url = weights_server.serve("/w/a.pt", BODY + b"extra")
    with pytest.raises(HashMismatchError, match="expects"):
        download([url], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert_clean(cache())


def test_hash_mismatch_moves_on_to_the_next_url(weights_server):
    bad = weights_server.serve("/bad/a.pt", bytes(len(BODY)))
    good = weights_server.serve("/good/a.pt", BODY)
    download([bad, good], cache() / "a.pt", sha256=SHA, size=len(BODY), **FAST)
    assert (weights_server.count("/bad/a.pt"), weights_server.count("/good/a.pt")) == (1, 1)
    assert_clean(cache(), {"a.pt": SHA})


def test_stalled_server_times_out(weights_server):
    url = weights_server.serve("/w/a.pt", BODY, stall=True)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download(
            [url], cache() / "a.pt", sha256=SHA, size=len(BODY), tries=2, read_timeout=0.5, **FAST
        )
    assert time.monotonic() - start < 5
    assert_clean(cache())


def test_two_processes_fetching_at_once_both_succeed(weights_server, tmp_path):
    url = weights_server.serve("/w/a.pt", BODY, chunk_delay=0.03)
    target = cache() / "a.pt"
    script = (
        "import sys; from umsn_cli.weights.download import download; "
        "download([sys.argv[1]], sys.argv[2], sha256=sys.argv[3], size=int(sys.argv[4]))"
    )
    argv = [sys.executable, "-c", script, url, str(target), SHA, str(len(BODY))]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    assert 1 <= weights_server.count("/w/a.pt") <= 2
    assert_clean(cache(), {"a.pt": SHA})


def test_offline_never_opens_a_socket(weights_server, make_entry, monkeypatch):
    url = weights_server.serve("/w/a.pt", BODY)
    entry = make_entry(BODY, urls=(url,))

    def no_connect(self: socket.socket, address: object) -> None:
        raise AssertionError(f"offline mode opened a connection to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"offline mode is on.*umsn weights import FILE"):
        store.resolve(entry)
    monkeypatch.delenv("UMSN_OFFLINE")
    with pytest.raises(OfflineError):
        store.resolve(entry, offline=True)
    assert weights_server.hits == []
    assert_clean(cache())


def test_offline_still_uses_the_cache(weights_server, make_entry, monkeypatch):
    entry = make_entry(BODY, urls=(weights_server.serve("/w/a.pt", BODY),))
    path = store.resolve(entry)
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    assert store.resolve(entry) == path
    assert weights_server.count("/w/a.pt") == 1


def test_mirror_replaces_scheme_host_and_directory(weights_server, make_entry, monkeypatch):
    weights_server.serve("/mirror/umsn-lite.test-v1.pt", BODY)
    entry = make_entry(BODY, urls=("https://weights.example.invalid/some/dir/other-name.pt",))
    monkeypatch.setenv("UMSN_WEIGHTS_MIRROR", weights_server.base_url + "/mirror/")
    assert store.download_urls(entry) == (weights_server.base_url + "/mirror/umsn-lite.test-v1.pt",)
    path = store.resolve(entry)
    assert path == cache() / entry.file
    assert weights_server.hits == ["/mirror/umsn-lite.test-v1.pt"]
    assert_clean(cache(), {entry.file: SHA})


def test_mirror_must_be_a_url(make_entry, monkeypatch):
    monkeypatch.setenv("UMSN_WEIGHTS_MIRROR", "/some/folder")
    with pytest.raises(WeightsError, match="UMSN_WEIGHTS_MIRROR"):
        store.download_urls(make_entry(BODY, urls=("https://example.invalid/a.pt",)))


def test_cache_hit_does_not_contact_the_server(weights_server, make_entry):
    entry = make_entry(BODY, urls=(weights_server.serve("/w/a.pt", BODY),))
    first = store.resolve(entry)
    second = store.resolve(entry)
    assert first == second == cache() / entry.file
    assert weights_server.count("/w/a.pt") == 1


def test_corrupt_cached_file_is_replaced(weights_server, make_entry, caplog):
    entry = make_entry(BODY, urls=(weights_server.serve("/w/a.pt", BODY),))
    cached = store.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(BODY[:-1] + bytes([BODY[-1] ^ 1]))  # right size, wrong hash
    with caplog.at_level(logging.WARNING, logger="umsn_cli.weights"):
        path = store.resolve(entry)
    assert "did not match the manifest hash" in caplog.text
    assert "a fresh copy is needed" in caplog.text
    assert path.read_bytes() == BODY
    assert weights_server.count("/w/a.pt") == 1
    assert_clean(cache(), {entry.file: SHA})


def test_corrupt_cached_file_is_deleted_even_when_offline(make_entry, monkeypatch):
    entry = make_entry(BODY, urls=("https://example.invalid/a.pt",))
    cached = store.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    with pytest.raises(OfflineError):
        store.resolve(entry)
    assert_clean(cache())


def test_a_damaged_cache_says_the_bundled_copy_is_used(make_entry, monkeypatch, tmp_path, caplog):
    bundled = tmp_path / "bundled.pt"
    bundled.write_bytes(BODY)
    entry = make_entry(BODY, urls=("https://example.invalid/a.pt",), bundled="b/a.pt")
    monkeypatch.setattr(store, "bundled_path", lambda e: bundled)
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    cached = store.cached_path(entry)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="umsn_cli.weights"):
        assert store.resolve(entry) == bundled
    assert "the bundled copy is used" in caplog.text and "fresh copy" not in caplog.text
    assert not cached.exists()


def test_bundled_copy_is_used_and_verified(weights_server, make_entry, monkeypatch, tmp_path):
    bundled = tmp_path / "bundled.pt"
    bundled.write_bytes(BODY)
    entry = make_entry(BODY, urls=(weights_server.serve("/w/a.pt", BODY),), bundled="b/a.pt")
    monkeypatch.setattr(store, "bundled_path", lambda e: bundled)
    assert store.resolve(entry) == bundled
    assert store.location(entry) == "bundled"
    bundled.write_bytes(bytes(len(BODY)))  # damaged: falls through to the download
    assert store.resolve(entry) == cache() / entry.file
    assert weights_server.count("/w/a.pt") == 1


def test_bundled_path_points_inside_the_package(make_entry):
    import umsn_cli

    path = store.bundled_path(make_entry(BODY, bundled="bundled/x.pt"))
    assert path == Path(umsn_cli.__file__).parent / "bundled" / "x.pt"


def test_unpublished_weights_say_how_to_get_them(make_entry):
    entry = make_entry(BODY)
    assert store.location(entry) == "missing"
    with pytest.raises(WeightsError, match=r"not published.*umsn weights import FILE"):
        store.resolve(entry)


def test_cache_dir_follows_umsn_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("UMSN_CACHE", str(tmp_path / "c"))
    assert store.cache_dir() == tmp_path / "c" / "weights"
    monkeypatch.delenv("UMSN_CACHE")
    assert store.cache_dir().name == "weights"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False)])
def test_umsn_offline_values(monkeypatch, value, expected):
    monkeypatch.setenv("UMSN_OFFLINE", value)
    assert store.is_offline() is expected
    assert store.is_offline(False) is expected  # the variable cannot be overridden
    assert store.is_offline(True) is True


def test_offline_runs_never_import_requests(tmp_path):
    """Importing requests can open a socket; a deblur that downloads nothing never does."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from umsn_cli.cli import app\n"
        f"args = ['deblur', '--example', '-o', {str(tmp_path)!r}, '--offline']\n"
        "r = CliRunner().invoke(app, args)\n"
        "assert r.exit_code == 0, r.output\n"
        "print('requests' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
