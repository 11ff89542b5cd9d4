"""Shared fixtures: a real Mosquitto broker per test, unique line ids (topic trees) per test.

``mosquitto``            a broker on a free loopback port (anonymous allowed), stopped at the end
``mosquitto_factory``    start more brokers, or one with extra config lines (auth, ACL, limits)
``line_id``              a unique ``mudcrack/<line_id>/`` topic tree for this test (the root stays
                         ``mudcrack``: `controller._messages.decode` accepts only that root)
``topics``               `controller._messages.Topics` of ``line_id``
``mosquitto_binary``     path of the ``mosquitto`` executable (session; skips if missing)

The broker object has ``host``, ``port``, ``url`` (``mqtt://127.0.0.1:PORT``),
``stop()``, ``start()``, ``restart()`` (same port, same config), ``running`` and
``log_text()``. Set ``MOSQUITTO`` to use another binary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_START_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """The Mosquitto executable (``$MOSQUITTO``, ``PATH``, ``/usr/sbin``); skips the test if absent."""
    candidates = [os.environ.get("MOSQUITTO"), shutil.which("mosquitto"), "/usr/sbin/mosquitto",
                  "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip("mosquitto binary not found (install the 'mosquitto' package or set MOSQUITTO=/path/to/mosquitto)")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class MosquittoBroker:
    """A Mosquitto process on a fixed loopback port with a generated config file.

    Parameters
    ----------
    binary : str
        Mosquitto executable.
    workdir : Path
        Where the config and the log go.
    extra_config : str
        Lines appended to the generated config (e.g. ``password_file``, ``acl_file``,
        ``message_size_limit``). With a password file, set ``allow_anonymous=False``.
    allow_anonymous : bool
        ``allow_anonymous`` of the listener.
    """

    def __init__(self, binary: str, workdir: Path, *, extra_config: str = "", allow_anonymous: bool = True) -> None:
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = _free_port(self.host)
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"mosquitto-{self.port}.conf"
        self.log_path = workdir / f"mosquitto-{self.port}.log"
        self.config_path.write_text(
            "\n".join([
                f"listener {self.port} {self.host}",
                f"allow_anonymous {'true' if allow_anonymous else 'false'}",
                "persistence false",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "connection_messages true",
                extra_config,
                "",
            ]),
            encoding="utf-8",
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """``mqtt://host:port``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_text(self) -> str:
        """The broker's log so far (all runs)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        """Start the broker and wait until it accepts TCP connections (same port every time)."""
        if self.running:
            return
        with open(self.log_path, "ab") as log_file:  # the child keeps its own copy of the descriptor
            self._proc = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
                                          stdout=log_file, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise RuntimeError(f"mosquitto exited with status {code} on port {self.port}:\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mosquitto did not accept connections on port {self.port} within "
                                       f"{_START_TIMEOUT_S} s:\n{self.log_text()}") from None
                time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL with ``kill=True``; SIGKILL after 5 s anyway)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)
        else:
            proc.wait()

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.url}, running={self.running})"


@pytest.fixture
def mosquitto_factory(mosquitto_binary: str, tmp_path: Path) -> Iterator[Callable[..., MosquittoBroker]]:
    """Start brokers: ``mosquitto_factory(extra_config="...", allow_anonymous=True)``; all stopped at the end."""
    brokers: list[MosquittoBroker] = []

    def start(*, extra_config: str = "", allow_anonymous: bool = True) -> MosquittoBroker:
        broker = MosquittoBroker(mosquitto_binary, tmp_path / "mosquitto", extra_config=extra_config,
                                 allow_anonymous=allow_anonymous)
        brokers.append(broker)
        broker.start()
        return broker

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., MosquittoBroker]) -> MosquittoBroker:
    """A running Mosquitto on a free loopback port, anonymous access allowed."""
    return mosquitto_factory()


@pytest.fixture
def line_id() -> str:
    """A line id unique to this test: its topic tree ``mudcrack/<line_id>/`` is its own."""
    return f"t{uuid.uuid4().hex[:16]}"


@pytest.fixture
def topics(line_id: str):
    """`controller._messages.Topics` of this test's unique line id."""
    from controller._messages import Topics

    return Topics(line_id)
