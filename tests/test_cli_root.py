"""The root command: version, help, and only working commands advertised."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from umsn_cli import __version__
from umsn_cli.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"umsn {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)


def test_help_lists_only_commands_that_work():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("deblur", "segment", "weights", "synth-blur", "train", "benchmark"):
        assert command in result.output


def test_unknown_command_is_a_usage_error():
    result = runner.invoke(app, ["frobnicate"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("args", "needle", "where"),
    [
        (["frobnicate"], "no such command 'frobnicate'", "umsn -h"),
        (["--bogus"], "no such option: --bogus", "umsn -h"),
        (["deblur", "a.png"], "missing option '-o' / '--output'", "umsn deblur -h"),
        (["deblur", "a.png", "-o", "o", "--batch-size", "0"], "'--batch-size'", "umsn deblur -h"),
        (["deblur", "a.png", "-o", "o", "--mode", "x"], "'x' is not one of", "umsn deblur -h"),
        (["weights", "list", "--zz"], "no such option: --zz", "umsn weights list -h"),
        (["train", "bnet", "--perceptual", "off"], "unexpected extra argument", "umsn train -h"),
    ],
)
def test_clicks_usage_errors_are_one_line_too(args, needle, where):
    """Click prints usage, a hint and the error on three lines; umsn prints one."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and needle in line and line.endswith(f"see `{where}`")


def test_a_bare_umsn_still_shows_the_help():
    result = runner.invoke(app, [])
    assert "Commands:" in result.output and "error:" not in result.output
