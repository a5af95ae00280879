"""Tests for umsn_cli.inputs: files, globs and directories become a safe, sorted plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from umsn_cli.errors import UsageError
from umsn_cli.inputs import (
    IMAGE_SUFFIXES,
    Job,
    check_not_input,
    expand_inputs,
    plan_jobs,
    resolved_sources,
)


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """photos/ with images at two levels, hidden files and folders, and a non-image."""
    touch(
        tmp_path,
        "photos/b.jpg",
        "photos/a.PNG",
        "photos/notes.txt",
        "photos/.hidden.jpg",
        "photos/2019/c.jpeg",
        "photos/2019/deep/d.tif",
        "photos/.thumbs/e.jpg",
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sources(jobs: list[Job]) -> list[str]:
    return [job.source.as_posix() for job in jobs]


def stems(jobs: list[Job]) -> list[str]:
    return [job.target_stem.as_posix() for job in jobs]


def test_directory_gives_its_own_images_only(tree):
    jobs = plan_jobs(["photos"], Path("out"), recursive=False)
    assert sources(jobs) == ["photos/a.PNG", "photos/b.jpg"]
    assert stems(jobs) == ["out/a", "out/b"]


def test_recursive_directory_mirrors_structure_and_skips_hidden(tree):
    jobs = plan_jobs(["photos"], Path("out"), recursive=True, suffix="_sharp")
    assert sources(jobs) == [
        "photos/2019/c.jpeg",
        "photos/2019/deep/d.tif",
        "photos/a.PNG",
        "photos/b.jpg",
    ]
    assert stems(jobs) == [
        "out/2019/c_sharp",
        "out/2019/deep/d_sharp",
        "out/a_sharp",
        "out/b_sharp",
    ]


def test_files_go_straight_into_out_dir(tree):
    jobs = plan_jobs(["photos/2019/deep/d.tif", "photos/b.jpg"], Path("out"), recursive=False)
    assert sources(jobs) == ["photos/2019/deep/d.tif", "photos/b.jpg"]
    assert stems(jobs) == ["out/d", "out/b"]


def test_named_file_with_unknown_suffix_is_still_attempted(tree):
    assert sources(plan_jobs(["photos/notes.txt"], Path("out"), recursive=False)) == [
        "photos/notes.txt"
    ]


def test_quoted_globs_are_expanded(tree):
    assert [f.as_posix() for f, _ in expand_inputs(["photos/*.jpg"], recursive=False)] == [
        "photos/b.jpg"
    ]
    matched = expand_inputs(["photos/**/*.*"], recursive=False)
    assert [f.as_posix() for f, _ in matched] == [
        "photos/2019/c.jpeg",
        "photos/2019/deep/d.tif",
        "photos/a.PNG",
        "photos/b.jpg",
    ]
    assert all(base == file.parent for file, base in matched)  # globs do not mirror


def test_glob_matching_directories_walks_them(tree):
    assert [f.as_posix() for f, _ in expand_inputs(["photos/20*"], recursive=True)] == [
        "photos/2019/c.jpeg",
        "photos/2019/deep/d.tif",
    ]


def test_duplicates_are_removed_and_results_sorted(tree):
    pairs = expand_inputs(
        ["photos/b.jpg", "photos", "./photos/b.jpg", "photos/*.jpg"], recursive=False
    )
    assert [(f.as_posix(), b.as_posix()) for f, b in pairs] == [
        ("photos/a.PNG", "photos"),
        ("photos/b.jpg", "photos"),
    ]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("photos/x.jpg", "photos/x.jpg: no such file or directory"),
        ("photos/*.heic", r"photos/\*.heic: matches no image files"),
        ("nowhere/*.jpg", "matches no image files"),
    ],
)
def test_missing_inputs_are_usage_errors(tree, item, match):
    with pytest.raises(UsageError, match=match):
        expand_inputs([item], recursive=False)


def test_empty_directory_suggests_recursive(tree):
    touch(tree, "nested/only/f.jpg")
    with pytest.raises(UsageError, match="--recursive"):
        expand_inputs(["nested"], recursive=False)
    assert len(expand_inputs(["nested"], recursive=True)) == 1


def test_no_inputs_is_a_usage_error():
    with pytest.raises(UsageError, match="no inputs"):
        expand_inputs([], recursive=False)


def test_colliding_outputs_name_both_inputs(tree):
    touch(tree, "other/b.png")
    with pytest.raises(UsageError, match=r"other/b\.png and photos/b\.jpg would both") as caught:
        plan_jobs(["photos/b.jpg", "other/b.png"], Path("out"), recursive=False)
    assert "\n" not in str(caught.value)
    with pytest.raises(UsageError, match="would both"):
        plan_jobs(["photos", "other"], Path("out"), recursive=False)
    # A folder holding both, walked recursively, keeps them apart by mirroring.
    jobs = plan_jobs(["."], Path("out"), recursive=True)
    assert {"out/other/b", "out/photos/b"} <= set(stems(jobs))


def test_results_inside_the_walked_directory_are_not_inputs(tree):
    touch(tree, "photos/restored/b.jpg")
    jobs = plan_jobs(["photos"], Path("photos/restored"), recursive=True)
    assert "photos/restored/b.jpg" not in sources(jobs)
    assert len(jobs) == 4


def test_suffix_must_not_be_a_path():
    with pytest.raises(UsageError, match="--suffix"):
        plan_jobs(["anything"], Path("out"), recursive=False, suffix="/x")


def test_target_appends_suffix_to_dotted_stems(tree):
    touch(tree, "my.holiday.jpg")
    (job,) = plan_jobs(["my.holiday.jpg"], Path("out"), recursive=False)
    assert job.target(".png") == Path("out/my.holiday.png")


def test_check_not_input_refuses_to_overwrite_inputs(tree):
    jobs = plan_jobs(["photos"], Path("photos"), recursive=False)
    known = resolved_sources(jobs)
    with pytest.raises(UsageError, match="refusing to write over the input"):
        check_not_input(jobs[1].target(".jpg"), known)
    with pytest.raises(UsageError):
        check_not_input(Path("./photos/../photos/b.jpg"), known)
    check_not_input(jobs[1].target(".png"), known)
    sharp = plan_jobs(["photos"], Path("photos"), recursive=False, suffix="_sharp")
    check_not_input(sharp[1].target(".jpg"), known)


def test_suffix_set_is_lower_case_with_dots():
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
