"""Writing files: temp names within the name limit, writability known before any work."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from umsn_cli.files import NAME_MAX, check_writable_folder, temporary_file, write_bytes

UNWRITABLE = Path("/proc/umsn-test")  # not even root can create files in /proc
linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="uses /proc, which root cannot write"
)


@pytest.mark.parametrize("name", ["a" * 245 + ".png", "é" * 122 + ".jpg"])
def test_a_legal_long_name_is_written_and_its_temp_name_fits(tmp_path, name):
    target = tmp_path / name
    assert len(os.fsencode(target.name)) <= NAME_MAX
    with temporary_file(target) as tmp:
        assert len(os.fsencode(tmp.name)) <= NAME_MAX
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    write_bytes(target, b"again")
    assert target.read_bytes() == b"again" and os.listdir(tmp_path) == [name]


def test_writable_folders_pass_and_leave_nothing(tmp_path):
    check_writable_folder(tmp_path)
    check_writable_folder(tmp_path / "not" / "yet")  # made later: its parent decides
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        check_writable_folder(tmp_path / "file" / "below")


@linux_only
def test_an_unwritable_folder_is_found_before_any_work():
    with pytest.raises(OSError):
        check_writable_folder(UNWRITABLE)
