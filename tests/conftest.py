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

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller._broker import MosquittoBroker, find_mosquitto


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """The Mosquitto executable (``$MOSQUITTO``, ``PATH``, ``/usr/sbin``); skips the test if absent."""
    path = find_mosquitto()
    if path is not None:
        return path
    pytest.skip("mosquitto binary not found (install the 'mosquitto' package or set MOSQUITTO=/path/to/mosquitto)")


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
