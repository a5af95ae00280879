"""The root command: version, help, and only working commands advertised."""

from __future__ import annotations

import re

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
