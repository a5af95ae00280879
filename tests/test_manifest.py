"""The manifest schema, and the promise that the real manifest tells the truth."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from umsn_cli.errors import ManifestError, UnknownWeightsError
from umsn_cli.weights import load_checkpoint, load_manifest, parse_manifest, sha256_file, store
from umsn_cli.weights.manifest import InputSpec, Metric

SHA = "ab" * 32


def raw_entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "id": "umsn-lite.celebamask-v1",
        "task": "deblur",
        "architecture": "umsn",
        "config": "umsn-lite",
        "file": "umsn-lite.celebamask-v1.pt",
        "sha256": SHA,
        "size": 1234,
        "num_params": 567,
        "urls": ["https://example.invalid/umsn-lite.celebamask-v1.pt"],
        "input": {"size": [128, 128], "framing": "aligned face crop", "value_range": [0, 1]},
        "metrics": [
            {"name": "PSNR", "value": 24.5, "dataset": "CelebA test", "command": "umsn eval"}
        ],
        "license": "Apache-2.0",
        "data_terms": "CelebAMask-HQ: non-commercial research only",
        "training_config": "configs/umsn-lite.toml",
        "default": True,
    }
    entry.update(overrides)
    return entry


def manifest(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "weights": list(entries)}


def test_packaged_manifest_validates():
    assert load_manifest().source == "the packaged weights_manifest.json"


def test_valid_entry_parses_to_typed_data():
    (entry,) = parse_manifest(manifest(raw_entry(bundled="bundled/x.pt")))
    assert entry.urls == ("https://example.invalid/umsn-lite.celebamask-v1.pt",)
    assert entry.input == InputSpec(
        size=(128, 128), framing="aligned face crop", value_range=(0, 1)
    )
    assert entry.metrics == (Metric("PSNR", 24.5, "CelebA test", "umsn eval"),)
    assert entry.bundled == "bundled/x.pt"
    assert entry.default is True


def test_optional_keys_default():
    raw = raw_entry()
    del raw["default"]
    (entry,) = parse_manifest(manifest(raw))
    assert (entry.bundled, entry.default) == (None, False)


def _without(key: str) -> dict[str, Any]:
    raw = raw_entry()
    del raw[key]
    return raw


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw_entry())
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (raw_entry(colour="blue"), r"unknown key\(s\) \['colour'\]"),
        (_without("sha256"), r"missing key\(s\) \['sha256'\]"),
        (_without("urls"), r"missing key\(s\) \['urls'\]"),
        (raw_entry(sha256="AB" * 32), "64 lowercase hex"),
        (raw_entry(sha256="ab" * 31), "64 lowercase hex"),
        (raw_entry(id="umsn-huge.v1", config="umsn-huge"), "id must look like"),
        (raw_entry(id="no-dot"), "id must look like"),
        (raw_entry(config="umsn"), "make them agree"),
        (raw_entry(task="denoise"), "'task'"),
        (raw_entry(architecture="unet"), "'architecture'"),
        (raw_entry(size="1234"), "'size' must be a positive integer"),
        (raw_entry(size=True), "'size' must be a positive integer"),
        (raw_entry(num_params=0), "'num_params' must be a positive integer"),
        (raw_entry(urls="https://x"), "'urls' must be a list"),
        (raw_entry(urls=["ftp://x/a.pt"]), "must start with https"),
        (raw_entry(file="../evil.pt"), "plain file name"),
        (raw_entry(file="weights.bin"), "ending in .pt"),
        (raw_entry(bundled="/abs/x.pt"), "relative path inside"),
        (raw_entry(bundled="../x.pt"), "relative path inside"),
        (raw_entry(default="yes"), "'default' must be a bool"),
        (raw_entry(license=None), "'license' must be a str"),
        (_nested(("input", "size"), [128]), r"\[height, width\]"),
        (_nested(("input", "value_range"), [1, 0]), "value_range"),
        (_nested(("input", "dpi"), 72), r"unknown key\(s\) \['dpi'\]"),
        (_nested(("metrics",), [{"name": "PSNR"}]), "missing key"),
        (
            _nested(("metrics",), [{"name": "P", "value": "1", "dataset": "", "command": ""}]),
            "number",
        ),
    ],
)
def test_invalid_entries_are_rejected(raw, match):
    with pytest.raises(ManifestError, match=match) as info:
        parse_manifest(manifest(raw))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"schema_version": 1}, "missing key"),
        ({"schema_version": 2, "weights": []}, "schema_version 2"),
        ({"schema_version": 1, "weights": [], "extra": 1}, "unknown key"),
        ({"schema_version": 1, "weights": {}}, "must be a list"),
        ([], "expected an object"),
        (manifest(raw_entry(), raw_entry()), "appears twice"),
        (manifest(raw_entry(), raw_entry(id="umsn-lite.other")), "file .* appears in two"),
        (
            manifest(raw_entry(), raw_entry(id="umsn-lite.b", file="b.pt")),
            "both the default",
        ),
    ],
)
def test_invalid_manifests_are_rejected(data, match):
    with pytest.raises(ManifestError, match=match):
        parse_manifest(data)


def test_load_manifest_reports_bad_json(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_manifest(tmp_path / "missing.json")


def test_load_manifest_from_a_path(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest(raw_entry())))
    assert [e.id for e in load_manifest(path)] == ["umsn-lite.celebamask-v1"]


def test_get_by_id_and_by_config_name():
    m = parse_manifest(
        manifest(
            raw_entry(),
            raw_entry(id="umsn-lite.old", file="old.pt", default=False),
            raw_entry(id="umsn.v1", config="umsn", file="umsn.pt", default=False),
        )
    )
    assert m.get("umsn-lite.old").file == "old.pt"
    assert m.get("umsn-lite").id == "umsn-lite.celebamask-v1"
    with pytest.raises(ManifestError, match=r"no default weights.*umsn\.v1"):
        m.get("umsn")
    with pytest.raises(UnknownWeightsError, match=r"unknown weights 'nope'.*umsn-lite\.old"):
        m.get("nope")


def test_get_config_without_weights_says_how_to_get_them():
    with pytest.raises(ManifestError) as info:
        parse_manifest(manifest()).get("umsn-lite")
    message = str(info.value)
    assert message.startswith("no weights for 'umsn-lite' are installed")
    assert "umsn weights import FILE" in message and "published" not in message
    assert "--model FILE" in message


# --- the real manifest: every entry must describe weights that exist ----------------

REAL = list(load_manifest())


@pytest.mark.parametrize("entry", REAL, ids=[e.id for e in REAL])
def test_every_entry_is_reachable(entry):
    """No manifest entry may point at weights that do not exist."""
    bundled = store.bundled_path(entry)
    assert entry.urls or (bundled is not None and bundled.is_file()), (
        f"{entry.id} has no urls and no bundled file"
    )


@pytest.mark.parametrize("entry", REAL, ids=[e.id for e in REAL])
def test_present_files_match_their_entry(entry):
    """Hash, size and parameter count of every local copy (bundled; the test cache is empty)."""
    from umsn_cli.nn import count_parameters, get_config

    present = [
        p
        for p in (store.cached_path(entry), store.bundled_path(entry))
        if p is not None and p.is_file()
    ]
    if not present:
        pytest.skip(f"{entry.id} is not present locally")
    for path in present:
        assert path.stat().st_size == entry.size
        assert sha256_file(path) == entry.sha256
        model, _ = load_checkpoint(path)
        assert model.config == get_config(entry.config)
        assert count_parameters(model) == entry.num_params


def test_the_manifest_and_weights_list_load_no_torch():
    """Reading the manifest needs no torch (seconds to import): `umsn weights list` stays
    quick. Checked in a fresh interpreter, since this one has torch loaded already."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from umsn_cli.weights.manifest import load_manifest\n"
        "import umsn_cli.cli.weights\n"
        "load_manifest()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
