"""MQTT brokers to run the nodes against: Mosquitto as a child process, amqtt in process.

`MosquittoBroker` starts the ``mosquitto`` executable on a free loopback port with a
generated configuration (anonymous or with extra lines: password file, ACL, limits, TLS)
and can stop, kill and restart it on the same port: the tests' HIL fixtures and the
benchmarks use it. `EmbeddedBroker` runs an amqtt broker inside the caller's event loop
(``mudcrack demo`` when no ``--broker`` is given). `find_mosquitto` locates the executable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Self

__all__ = ["EmbeddedBroker", "MosquittoBroker", "find_mosquitto", "free_port"]

_START_TIMEOUT_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    """The Mosquitto executable: ``$MOSQUITTO``, ``PATH``, then the usual sbin folders; None if absent."""
    candidates = [os.environ.get("MOSQUITTO"), shutil.which("mosquitto"), "/usr/sbin/mosquitto",
                  "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


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
        self.port = free_port(self.host)
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

    def version(self) -> str:
        """``mosquitto version X.Y.Z`` as the executable reports it (``mosquitto`` if it does not)."""
        try:
            out = subprocess.run([self.binary, "-h"], check=False, capture_output=True, text=True, timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return "mosquitto"
        return out.splitlines()[0].split(" running")[0].strip() if out else "mosquitto"

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


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1) in this event loop on 127.0.0.1, anonymous clients allowed.

    Use ``async with EmbeddedBroker() as broker: broker.url``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the embedded broker needs amqtt (pip install amqtt), or pass --broker URL") from exc
        config = {"listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}}
        self._broker = Broker(config)
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(broker.shutdown(), 10.0)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


# ----------------------------------------------------------------------------- recording
