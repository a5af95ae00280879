"""``umsn weights ...`` end to end: exit codes, stdout for results, one-line errors."""

from __future__ import annotations

import hashlib
import os

import pytest
from typer.testing import CliRunner

from umsn_cli.cli import app
from umsn_cli.weights import store
from umsn_cli.weights.manifest import Manifest, WeightsEntry

BODY = os.urandom(50_000)
SHA = hashlib.sha256(BODY).hexdigest()


def run(*args: str):
    return CliRunner().invoke(app, ["weights", *args])


def assert_one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.fixture
def use_manifest(monkeypatch):
    """Make the CLI and the store see a manifest holding the given entries."""

    def install(*entries: WeightsEntry) -> None:
        monkeypatch.setattr("umsn_cli.cli.weights.load_manifest", lambda: Manifest(entries))
        monkeypatch.setattr(store, "load_manifest", lambda: Manifest(entries))

    return install


@pytest.fixture
def published(weights_server, make_entry, use_manifest):
    """A manifest with one downloadable entry, served by the local test server."""
    entry = make_entry(BODY, urls=(weights_server.serve("/w/a.pt", BODY),), default=True)
    use_manifest(entry)
    return entry


def test_list_with_nothing_installed(use_manifest):
    use_manifest()  # nothing published, bundled or cached
    result = run("list")
    assert result.exit_code == 0
    assert "umsn weights import FILE" in result.stderr


def test_import_then_use_by_id(tiny_checkpoint):
    result = run("import", str(tiny_checkpoint))
    assert result.exit_code == 0, result.output
    ident = result.stdout.strip()
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert ident == f"imported.test-tiny.{sha[:12]}"
    assert f"--model {ident}" in result.stderr

    copy = store.imported_dir() / f"test-tiny.{sha[:12]}.pt"
    assert run("path", ident).stdout.strip() == str(copy)
    assert store.resolve_model_ref(ident) == (copy, sha)

    listing = run("list")
    assert listing.exit_code == 0
    assert ident in listing.stdout and "imported" in listing.stdout

    assert run("import", str(tiny_checkpoint)).stdout.strip() == ident  # idempotent
    assert sorted(p.name for p in store.imported_dir().iterdir()) == [
        f"test-tiny.{sha[:12]}.json",
        f"test-tiny.{sha[:12]}.pt",
    ]


def test_verify_reports_a_damaged_import(tiny_checkpoint):
    ident = run("import", str(tiny_checkpoint)).stdout.strip()
    ok = run("verify")
    assert ok.exit_code == 0 and ok.stdout.startswith("OK") and ident in ok.stdout
    copy = store.get_imported(ident).path
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 1
    copy.write_bytes(bytes(data))
    bad = run("verify", ident)
    assert bad.stdout.startswith("BAD")
    assert "1 local file(s) are damaged" in assert_one_line_error(bad)
    # Using a damaged import removes it and says how to recover.
    message = assert_one_line_error(run("fetch", ident))
    assert "damaged" in message and "umsn weights import" in message
    assert not copy.exists()


def test_importing_published_weights_fills_the_cache(
    tiny_checkpoint, make_entry, use_manifest, monkeypatch
):
    """The offline recipe: copy the published file over, import it, use its id."""
    entry = make_entry(tiny_checkpoint.read_bytes(), urls=("https://example.invalid/a.pt",))
    use_manifest(entry)
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    assert "offline mode is on" in assert_one_line_error(run("fetch", entry.id))
    assert run("import", str(tiny_checkpoint)).stdout.strip() == entry.id
    assert run("fetch", entry.id).stdout.strip() == str(store.cached_path(entry))
    assert store.list_imported() == []


def test_checkpoint_file_works_directly(tiny_checkpoint):
    result = run("fetch", str(tiny_checkpoint))
    assert result.exit_code == 0
    assert result.stdout.strip() == str(tiny_checkpoint)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"garbage" * 10, "corrupt or truncated"), (None, "does not exist")],
)
def test_import_refuses_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    assert match in assert_one_line_error(run("import", str(path)))
    assert not store.imported_dir().exists() or not any(store.imported_dir().iterdir())


def test_config_without_weights_says_how_to_get_them(use_manifest):
    use_manifest()
    message = assert_one_line_error(run("fetch", "umsn-lite"))
    assert "no weights for 'umsn-lite' are installed" in message
    assert "umsn weights import FILE" in message


def test_config_without_weights_suggests_an_import(tmp_path, use_manifest):
    use_manifest()
    from umsn_cli.nn import build_model, get_config
    from umsn_cli.weights import save_checkpoint

    path = save_checkpoint(tmp_path / "lite.pt", build_model(get_config("umsn-lite")))
    ident = run("import", str(path)).stdout.strip()
    assert f"--model {ident}" in assert_one_line_error(run("fetch", "umsn-lite"))


def test_unknown_reference():
    message = assert_one_line_error(run("fetch", "nope"), code=2)
    assert "unknown model 'nope'" in message
    assert "does not exist" in assert_one_line_error(run("fetch", "missing/file.pt"))


def test_fetch_path_verify_list_with_a_published_entry(published, weights_server):
    listing = run("list")
    assert published.id in listing.stdout and "remote" in listing.stdout
    assert "not downloaded" in assert_one_line_error(run("path", published.id))
    assert "not downloaded" in assert_one_line_error(run("verify", published.id))

    fetched = run("fetch", "umsn-lite")  # the config name means its default entry
    assert fetched.exit_code == 0, fetched.output
    target = store.cache_dir() / published.file
    assert fetched.stdout.strip() == str(target)
    assert target.read_bytes() == BODY

    assert run("path", published.id).stdout.strip() == str(target)
    assert "cached" in run("list").stdout
    verified = run("verify")
    assert verified.exit_code == 0 and verified.stdout.startswith("OK")
    assert run("fetch", published.id).exit_code == 0
    assert weights_server.count("/w/a.pt") == 1


def test_fetch_offline(published, weights_server, monkeypatch):
    message = assert_one_line_error(run("fetch", published.id, "--offline"))
    assert "offline mode is on" in message
    monkeypatch.setenv("UMSN_OFFLINE", "1")
    assert "offline mode is on" in assert_one_line_error(run("fetch", published.id))
    assert weights_server.hits == []


def test_fetch_failure_is_one_line(published, weights_server):
    weights_server.routes.clear()  # the server now answers 404
    message = assert_one_line_error(run("fetch", published.id))
    assert "404" in message
    assert list(store.cache_dir().iterdir()) == []


def test_damaged_cache_is_a_warning_then_refetched(published, weights_server):
    target = store.cached_path(published)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x" * published.size)
    assert run("verify").stdout.startswith("BAD")
    result = run("fetch", published.id)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "deleted" in result.stderr
    assert target.read_bytes() == BODY


def test_list_marks_only_the_weights_a_bare_deblur_uses_as_default():
    """Each config has a default entry; "(default)" is the one with no --model."""
    from umsn_cli.weights.manifest import DEFAULT_MODEL, load_manifest

    result = run("list")
    assert result.exit_code == 0, result.output
    marked = [line.split()[0] for line in result.stdout.splitlines() if "(default)" in line]
    assert marked == [load_manifest().get(DEFAULT_MODEL).id]
