"""The reference pages of docs/ are generated (docs/generate.py), never edited by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def generate():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_page_is_current(generate):
    """A flag, a manifest entry or a lever record changed without its page: rerun
    `python docs/generate.py`."""
    assert {
        "docs/cli.md",
        "docs/models.md",
        "docs/results.md",
        "docs/levers.md",
        "README.md",
    } == set(generate.PAGES)
    assert generate.stale_pages() == []


def test_the_cli_page_documents_every_command_and_option(generate):
    page = generate.cli_page()
    for command in ("deblur", "segment", "synth-blur", "prepare", "train", "benchmark",
                    "weights list", "weights import"):  # fmt: skip
        assert f"## `umsn {command}`" in page, command
    assert "* `--time-limit <float" in page and "* `--print0`" in page


def test_the_models_page_lists_every_manifest_entry_with_its_terms(generate):
    from umsn_cli.weights.manifest import DEFAULT_MODEL, load_manifest

    page = generate.models_page()
    for entry in load_manifest():
        assert f"## `{entry.id}`" in page and entry.sha256 in page
        assert entry.data_terms in page
    default = load_manifest().get(DEFAULT_MODEL)
    row = next(line for line in page.splitlines() if line.startswith(f"| `{default.id}`"))
    assert "umsn's default" in row and "+4.01 dB" in row


def test_a_recorded_benchmark_keeps_its_scores_and_command_not_its_cases(generate, tmp_path):
    bench = {"model": "m", "count": 2, "overall": {"psnr": 30.0}, "by_size": {},
             "command": "umsn benchmark …", "cases": [{"file": "a.png"}] * 2}  # fmt: skip
    (tmp_path / "b.json").write_text(json.dumps(bench))
    generate.record(tmp_path / "b.json", tmp_path / "kept" / "b.json")
    kept = json.loads((tmp_path / "kept" / "b.json").read_text())
    assert kept == {k: v for k, v in bench.items() if k != "cases"}


def test_the_readme_is_short_and_its_results_table_is_generated(generate):
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    table = text.split("<!-- results:begin -->")[1].split("<!-- results:end -->")[0]
    assert "+4.01 dB" in table and "unblurred faces" in table  # the manifest's, a recorded test
