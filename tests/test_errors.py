"""Typed errors are also the builtin a library caller would naturally catch."""

from __future__ import annotations

import pytest

from umsn_cli import errors


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (errors.UsageError, ValueError),
        (errors.UnknownWeightsError, ValueError),
        (errors.ImageError, OSError),
        (errors.DownloadError, ConnectionError),
        (errors.OfflineError, ConnectionError),
        (errors.HashMismatchError, ValueError),
        (errors.MissingExtraError, ImportError),
        (errors.BackendUnavailableError, RuntimeError),
    ],
)
def test_typed_errors_subclass_the_matching_builtin(error, builtin):
    with pytest.raises(builtin) as caught:
        raise error("what happened; what to do")
    assert isinstance(caught.value, errors.UmsnError)
    assert str(caught.value) == "what happened; what to do"


def test_an_unreadable_image_is_an_oserror_for_api_callers(tmp_path):
    from umsn_cli.images import read_image

    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"bad\.png"):
        read_image(tmp_path / "bad.png")


def test_a_failed_download_stays_one_download_error(tmp_path):
    """A DownloadError is an OSError now: the download's own OSError handler must not
    wrap it into a misleading 'cannot write' message."""
    from umsn_cli.weights.download import download

    with pytest.raises(errors.DownloadError) as caught:
        download(["http://127.0.0.1:9/x.pt"], tmp_path / "x.pt", sha256="0" * 64, tries=1)
    assert "cannot write" not in str(caught.value)
