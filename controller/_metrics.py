"""Health output of the controller daemon: counters, the ``controller/metrics`` message, a Prometheus
endpoint and structured logs.

`DaemonMetrics` holds monotonic counters (``received.total``, ``accepted.<kind>``,
``rejected.<reason>``, ``steps``, ``reconnects``, ``published.setpoints``, ...) and gauges
(``last_step_latency_s``, ``connected``, ``safe``, ...). Names match the key pattern of
`controller._messages.Metrics` (``[a-z][a-z0-9_.]{0,63}``), so a snapshot is a valid
metrics message. `serve_prometheus` exposes the same numbers as Prometheus text on a small
asyncio TCP server (``GET /metrics``), for plants that scrape instead of subscribing.

Logs are events with fields: `log_event` writes ``event=<name> key=value ...`` (lazy
formatting) and attaches the fields to the record, so `JsonLinesFormatter` can write them as
JSON lines; `configure_logging` (CLI entry points only) installs one of the two formatters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ._messages import Metrics

__all__ = ["DaemonMetrics", "JsonLinesFormatter", "KeyValueFormatter", "configure_logging", "log_event", "metric_key",
           "serve_prometheus"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")
#: Label name of the part after the first dot, per counter family (Prometheus text).
_LABELS = {"accepted": "kind", "rejected": "reason", "published": "kind", "errors": "what", "setpoints": "what",
           "decisions": "what"}


def metric_key(text: str) -> str:
    """``text`` as a metrics key: lower case, ``[a-z0-9_.]``, starting with a letter, at most 64 characters."""
    key = re.sub(r"[^a-z0-9_.]", "_", str(text).lower())
    if not key or not key[0].isalpha():
        key = "k_" + key
    return key[:64]


class DaemonMetrics:
    """Counters and gauges of one daemon run (not thread-safe: the event loop owns it)."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.gauges: dict[str, float] = {}
        self._t0 = time.monotonic()

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"name: expected a key matching {_NAME.pattern}, found {name!r}")
        self.counters[name] += n

    def set(self, name: str, value: float) -> None:
        """Set gauge ``name`` (non-finite values are dropped: the message refuses them)."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"name: expected a key matching {_NAME.pattern}, found {name!r}")
        if math.isfinite(value):
            self.gauges[name] = float(value)
        else:
            self.gauges.pop(name, None)

    def by_prefix(self, prefix: str) -> dict[str, int]:
        """Counters ``<prefix>.<rest>`` as ``{rest: count}``."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.counters.items() if k.startswith(p)}

    @property
    def uptime_s(self) -> float:
        """Real seconds since the metrics were created."""
        return time.monotonic() - self._t0

    def message(self, *, timestamp_s: float, source: str, seq: int) -> Metrics:
        """The ``controller/metrics`` message of the current values."""
        return Metrics(timestamp_s=timestamp_s, source=source, seq=seq, uptime_s=self.uptime_s,
                       counters=dict(sorted(self.counters.items())), gauges=dict(sorted(self.gauges.items())))

    def prometheus_text(self, prefix: str = "mudcrack_controller", labels: dict[str, str] | None = None) -> str:
        """Prometheus text exposition format (version 0.0.4) of the counters and gauges."""
        base = dict(labels or {})
        families: dict[str, list[tuple[dict[str, str], float]]] = {}
        kinds: dict[str, str] = {}
        for name, value in sorted(self.counters.items()):
            family, _, rest = name.partition(".")
            lab = dict(base)
            if rest:
                lab[_LABELS.get(family, "key")] = rest
            fam = f"{prefix}_{family}_total"
            families.setdefault(fam, []).append((lab, float(value)))
            kinds[fam] = "counter"
        for name, gauge in sorted(self.gauges.items()):
            fam = f"{prefix}_{name.replace('.', '_')}"
            families.setdefault(fam, []).append((dict(base), gauge))
            kinds[fam] = "gauge"
        families.setdefault(f"{prefix}_uptime_seconds", []).append((dict(base), self.uptime_s))
        kinds[f"{prefix}_uptime_seconds"] = "gauge"
        lines = []
        for fam, samples in families.items():
            lines.append(f"# TYPE {fam} {kinds[fam]}")
            for lab, sample in samples:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in lab.items())
                lines.append(f"{fam}{{{text}}} {sample:.17g}" if text else f"{fam} {sample:.17g}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


async def serve_prometheus(metrics: DaemonMetrics, *, host: str = "127.0.0.1", port: int = 0,
                           labels: dict[str, str] | None = None) -> asyncio.Server:
    """Serve ``metrics`` as Prometheus text on ``http://host:port/metrics`` (an asyncio TCP server).

    Parameters
    ----------
    metrics : DaemonMetrics
    host : str
        Interface to bind (loopback by default).
    port : int
        TCP port; 0 picks a free one (``server.sockets[0].getsockname()[1]``).
    labels : dict, optional
        Labels added to every sample (e.g. ``{"line_id": "pilot-1"}``).

    Returns
    -------
    asyncio.Server
        Close it with ``server.close(); await server.wait_closed()``.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            first = request.split(b"\r\n", 1)[0].decode("latin-1").split()
            path = first[1].split("?", 1)[0] if len(first) >= 2 else ""
            if len(first) >= 2 and first[0] == "GET" and path in ("/", "/metrics"):
                body = metrics.prometheus_text(labels=labels).encode("utf-8")
                head = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            else:
                body = b"not found\n"
                head = "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as exc:
            log.debug("metrics request dropped: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)


# ----------------------------------------------------------------------------- structured logs
class _Event:
    """A structured log line, formatted lazily as ``event=... key=value ...``."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: Mapping[str, Any]) -> None:
        self.event, self.fields = event, fields

    def __str__(self) -> str:
        return " ".join([f"event={self.event}"] + [f"{k}={_kv(v)}" for k, v in self.fields.items()])


def _kv(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) >= 1e6 else f"{value:.6g}"  # epoch times keep their milliseconds
    else:
        text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        text = json.dumps(text)
    return text


def log_event(logger: logging.Logger, level: int, event: str, *, exc_info: bool = False, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as ``event=<event> key=value ...`` (fields also on the record)."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s", _Event(event, fields), exc_info=exc_info, extra={"event": event, "fields": fields})


def _json_value(v: Any) -> Any:
    if isinstance(v, (bool, int, type(None))) or (isinstance(v, float) and math.isfinite(v)):
        return v
    return str(v)


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event and its fields (or the message)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 6), "level": record.levelname, "logger": record.name}
        event = getattr(record, "event", None)
        if event is not None:
            out["event"] = event
            out.update({k: _json_value(v) for k, v in getattr(record, "fields", {}).items()})
        else:
            out["msg"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class KeyValueFormatter(logging.Formatter):
    """``ts=... level=... logger=... event=... key=value`` lines (other records: ``msg="..."``)."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"ts={record.created:.3f} level={record.levelname} logger={record.name}"
        msg = record.getMessage()
        text = f"{head} {msg}" if getattr(record, "event", None) is not None else f"{head} msg={_kv(msg)}"
        if record.exc_info:
            text += " exc=" + _kv(self.formatException(record.exc_info))
        return text


def configure_logging(log_format: str = "kv", level: str | int = "INFO") -> None:
    """Structured logs on stderr for a CLI entry point: ``kv`` (key=value lines) or ``json`` (JSON lines)."""
    if log_format not in ("kv", "json"):
        raise ValueError(f"log_format: expected 'kv' or 'json', found {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
