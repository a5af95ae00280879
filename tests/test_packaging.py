"""The wheel: what it installs, and what it must not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "runs",
    "data",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build with ``python -m build`` (sdist, then the wheel from the sdist) from a clean
    copy of the source tree; no isolation, so no package is downloaded."""
    pytest.importorskip("build")
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, symlinks=True, ignore=_SKIP)
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work)],
        cwd=source,
        check=True,
        capture_output=True,
    )
    (built,) = work.glob("umsn-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_carries_the_weights_manifest(wheel: zipfile.ZipFile):
    packaged = json.loads(wheel.read("umsn_cli/weights_manifest.json"))
    assert packaged == json.loads((ROOT / "weights_manifest.json").read_text())


def test_every_module_of_the_source_tree_is_in_the_wheel(wheel: zipfile.ZipFile):
    names = set(wheel.namelist())
    sources = [p.relative_to(ROOT).as_posix() for p in (ROOT / "umsn_cli").rglob("*.py")]
    sources += [
        f"umsn_cli/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "backends").glob("*.py")
    ]
    missing = [s for s in sources if "__pycache__" not in s and s not in names]
    assert not missing, f"listed in no [tool.setuptools] packages entry: {missing}"


def test_backends_are_installed_inside_the_package(wheel: zipfile.ZipFile):
    names = wheel.namelist()
    assert "umsn_cli/backends/__init__.py" in names
    assert "umsn_cli/backends/cpu.py" in names
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"umsn_cli", next(n for n in top_level if n.endswith(".dist-info"))}


def test_wheel_declares_the_console_script_and_backend_plugins(wheel: zipfile.ZipFile):
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = wheel.read(info).decode()
    assert "umsn = umsn_cli.cli:main" in text
    for name in ("cpu", "torchscript", "cuda"):
        assert f"{name} = umsn_cli.backends." in text


def test_wheel_holds_no_data_or_tests(wheel: zipfile.ZipFile):
    for name in wheel.namelist():
        assert not name.startswith("tests/")
        assert not name.lower().endswith((".jpg", ".jpeg"))


def test_every_declared_dependency_is_imported_by_the_package():
    """A dependency nobody imports is an install cost for nothing (tqdm, imageio were)."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    module_of = {"pillow": "PIL", "scikit-image": "skimage", "pypng": "png"}
    sources = "\n".join(
        p.read_text() for folder in ("umsn_cli", "backends") for p in (root / folder).rglob("*.py")
    )
    unused = []
    for requirement in declared:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement)[0].lower()
        module = module_of.get(name, name.replace("-", "_"))
        if not re.search(rf"^\s*(import|from) {re.escape(module)}\b", sources, re.MULTILINE):
            unused.append(name)
    assert unused == []
