"""Fixtures shared by the test suite.

Two autouse fixtures protect every test: the umsn cache points at a fresh temp
folder (no test reads or writes the user's real cache, and a developer's
``UMSN_OFFLINE``/``UMSN_WEIGHTS_MIRROR``/proxy settings cannot change results), and
sockets may only connect to the loopback address (tests never reach the internet).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from umsn_cli.nn.config import BNetConfig, FNetConfig, ModelConfig, SNetConfig

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_ISOLATED_ENV = (
    "UMSN_OFFLINE",
    "UMSN_WEIGHTS_MIRROR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def _isolated_umsn_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMSN_CACHE", str(tmp_path / "umsn-cache"))
    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise OSError(f"tests may only connect to 127.0.0.1, not {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def tiny_config() -> ModelConfig:
    """A UMSN config with every stage but almost no channels: builds and runs in ms."""
    return ModelConfig(
        name="test-tiny",
        snet=SNetConfig(width=4, stem_growth=4, growth=4, quarter_blocks=1, full_growth=4),
        fnet=FNetConfig(width=4, stem_growth=4, dilated_blocks=1),
        bnet=BNetConfig(
            width=4,
            full_growth=4,
            fuse_width=4,
            dilated_blocks=1,
            head_width=4,
            refine_width=4,
        ),
        confidence_width=4,
    )


@pytest.fixture
def tiny_fast_config() -> ModelConfig:
    """The ``fast`` family with a few channels: every part, built and run in ms."""
    from umsn_cli.nn.config import FastBNetConfig, FastFNetConfig, FastSNetConfig

    return ModelConfig(
        name="test-tiny-fast",
        family="fast",
        snet=FastSNetConfig(widths=(4, 8, 8), blocks=(1, 1, 1)),
        fnet=FastFNetConfig(width=4, blocks=1),
        bnet=FastBNetConfig(widths=(4, 8, 8), blocks=(1, 1, 1)),
        confidence_width=4,
    )


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, tiny_config: ModelConfig) -> Path:
    """A umsn checkpoint of a freshly initialised tiny model."""
    import torch

    from umsn_cli.nn import build_model
    from umsn_cli.weights import save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", build_model(tiny_config), {"note": "test"})


# --- a local HTTP server standing in for the weights host ---------------------------


@dataclass
class Route:
    """How the test server answers one path."""

    body: bytes = b""
    status: int = 200
    fail_first: int = 0  # answer this many requests with 503 before behaving
    send: int | None = None  # send only this many body bytes, then close (truncation)
    stall: bool = False  # send half the body, then hang until the test ends
    chunk_delay: float = 0.0  # send the body in 16 pieces with this pause between


@dataclass
class WeightsServer:
    """A threaded HTTP server on 127.0.0.1 that records every GET it receives."""

    base_url: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, body: bytes = b"", **behaviour: Any) -> str:
        """Serve ``body`` at ``path`` (e.g. "/w/a.pt"); returns its URL."""
        self.routes[path] = Route(body=body, **behaviour)
        return self.base_url + path

    def count(self, path: str) -> int:
        return self.hits.count(path)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        state.hits.append(self.path)
        route = state.routes.get(self.path)
        if route is None or route.status != 200:
            self.send_error(404 if route is None else route.status)
            return
        if state.count(self.path) <= route.fail_first:
            self.send_error(503)
            return
        body = route.body
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if route.stall:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                state.release.wait(30)
            elif route.send is not None:
                self.wfile.write(body[: route.send])
            elif route.chunk_delay:
                step = max(1, len(body) // 16)
                for start in range(0, len(body), step):
                    self.wfile.write(body[start : start + step])
                    self.wfile.flush()
                    state.release.wait(route.chunk_delay)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test); nothing to clean up

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: WeightsServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up early is expected here; do not print tracebacks."""


@pytest.fixture
def weights_server() -> Iterator[WeightsServer]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.state = WeightsServer(base_url=f"http://{host}:{port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def make_entry() -> Callable[..., Any]:
    """Build a valid :class:`WeightsEntry` for ``body``; keyword arguments override fields."""
    from umsn_cli.weights.manifest import InputSpec, WeightsEntry

    def build(body: bytes, **overrides: Any) -> WeightsEntry:
        fields: dict[str, Any] = {
            "id": "umsn-lite.test-v1",
            "task": "deblur",
            "architecture": "umsn",
            "config": "umsn-lite",
            "file": "umsn-lite.test-v1.pt",
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "num_params": 1,
            "urls": (),
            "input": InputSpec(size=(128, 128), framing="aligned face", value_range=(0.0, 1.0)),
            "metrics": (),
            "license": "Apache-2.0",
            "data_terms": "test data",
            "training_config": "configs/test.toml",
        }
        fields.update(overrides)
        return WeightsEntry(**fields)

    return build
