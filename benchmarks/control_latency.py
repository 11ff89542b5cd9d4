"""Control-loop latency: 1-megapixel camera frame received -> set-point published, over a real broker.

Run from the repository root: ``.venv/bin/python benchmarks/control_latency.py``
(``--repeats N`` end-to-end frames per size, default 20; ``--quick``: 5 frames, fewer
stage repetitions; ``--broker amqtt`` forces the embedded broker; ``--in-process`` runs
the vision node and the daemon in this script's event loop, as ``mudcrack demo``
does, instead of one process each as deployed). ~2.5 min on 2 cores.

What runs: the script starts Mosquitto (``$MOSQUITTO``, ``PATH`` or ``/usr/sbin``) on a
free loopback port with a generated config (falls back to the embedded amqtt broker
`controller._broker.EmbeddedBroker` if Mosquitto is missing; the tables say which), then
the real components (their code unchanged, observed through the hooks below):
`controller._vision_node.run_vision_node` with the
default `SurfaceEstimator`, and `controller._daemon.ControllerDaemon` with the shipped
``configs/controller.yaml`` (sample time 1 s, supervisor every 10 s) and the real
`LinePredictor`, both on `SystemClock`. The script itself plays the line: zone and line
sensors at nominal values every 0.5 s (fresh inputs: the daemon runs in AUTO, not in its safe
state; the stand-in plant does not follow the set-points), and
camera frames; a second client watches ``estimates/surface`` and ``setpoints/zone/+``.
Everything is stopped at the end (nodes via their stop events, broker by SIGTERM).

Frames: one snapshot of the fixed recipe with visible cracks (`sim_line.Line(seed=0)`, the
parcel at 7.5 m: at the 7 m camera the cracks have only just opened, 0 um wide and
invisible; 7.5 m is where the closed-loop demo puts its camera), rendered with
`sim_line.render_surface` at 1024x1024 (1 MP) and 512x512 (the configured camera, the
baseline), 8 bit, encoded ``raw-u8`` (the sim node's default); each publication gets a
fresh ``frame_id`` and timestamp. The script checks that the estimator alarms on it (and
not on a crack-free frame at 3 m, used to warm the pipeline up), and counts the estimates
that saw the cracks. The estimate's cost depends on the content: a 1 MP frame without
visible cracks costs ~0.5 s (`segment_cracks` stops early), one with cracks 1-2 s.
Sustained rows: 1 MP frames at the camera's 2 s frame interval.

Stage table (in this process, ``time.perf_counter``, median / p95 / max over repetitions):
frame encode / decode (raw and PNG, 8 and 16 bit; the 16-bit frame is a real 16-bit
render), ``SurfaceEstimator.estimate``, ``ControlLaw.step`` with the real predictor for
a PID-only sample, a supervisor sample that only judges the plan (2 recipes) and a
supervisor sample that judges candidate moves (the heavy one), and the MQTT transport of a
frame publish -> receive (QoS 0, two clients of this process, through the broker).

End to end (one frame at a time, after a random 0-1 s pause so the frames fall at random
phases of the daemon's 1 s sample grid; the two sizes alternate so that load drifts hit
both alike). Timestamps come from light hooks in the components' processes
(`time.perf_counter` is CLOCK_MONOTONIC on Linux, one time base for all processes): a
wrapper around ``decode`` in the vision node module (frame received and validated), a
wrapper estimator (estimate start / end), a `ControllerDaemon` subclass (estimate handled)
whose law is wrapped (step start / end, and which ``frame_id`` the step's surface input
came from); the watcher client stamps the arrival of the estimate and of the four zone
set-points of that step (matched by their ``timestamp_s``, the step time). Rows:

- transport: camera publish -> the vision node starts validating the frame;
- decode: validation + pixel decode in the vision node's event loop;
- handoff: mailbox -> the worker thread starts the estimate;
- estimate: ``SurfaceEstimator.estimate`` in the worker thread;
- estimate -> daemon: encode, QoS-1 publish, broker, the daemon's validation;
- sample wait: the daemon has the estimate -> the next control step starts (the daemon
  steps on its 1 s grid; expected uniform in [0, 1 s)); NOT processing;
- step: ``ControlLaw.step`` in the daemon's worker thread (mostly PID-only samples; the
  supervisor runs every 10th);
- step -> set-points: the four zone set-points (QoS 1, retained) reach the watcher;
- processing latency = end to end minus the sample wait;
- end to end: camera publish -> the last of the four set-points of the first step whose
  inputs include the frame's estimate.

"Reacts" means the first set-points computed with the frame's estimate as input; the
estimate only changes the set-point values on a supervisor sample (every
``supervisor.period_s`` = 10 s) and only when no move was made within
``estimate_dead_time_s``, so the table also gives the wait from the estimate to the next
supervisor sample. Budget lines compare with the sample time (1 s) and the camera frame
interval (2 s, configs/line.yaml). No assertion on wall-clock time anywhere: the script
prints tables and a verdict; it exits non-zero only when something did not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

SAMPLE_S = 1.0  # configs/controller.yaml zones[].sample_time_s (checked against the config at run time)
FRAME_INTERVAL_S = 2.0  # configs/line.yaml camera.frame_interval_s (checked too)
UM_PER_PX = 5.0
CAMERA_M = 7.0
#: Where the rendered cracked coating comes from: at the camera (7.0 m) the fixed recipe's cracks have
#: just opened (zero width, invisible); 0.5 m on they are 19 um wide (surface CIF 0.16), and the
#: closed-loop demo puts its camera there (``camera_position_m=7.5``).
SNAPSHOT_M = 7.5
SENSOR_PERIOD_S = 0.5
WAIT_TIMEOUT_S = 40.0  # one frame through the whole pipeline
START_TIMEOUT_S = 90.0  # processes started, imports done, daemon in AUTO

Emit = Callable[..., None]


# ----------------------------------------------------------------------------- statistics and printing
def _stats(values: list[float]) -> tuple[float, float, float]:
    a = np.asarray(values, dtype=float) * 1e3
    return float(np.median(a)), float(np.percentile(a, 95)), float(a.max())


def _row(stage: str, values: list[float], note: str = "") -> str:
    if not values:
        return f"| {stage} | - | - | - | {note} (no samples) |"
    med, p95, mx = _stats(values)
    return f"| {stage} | {med:.1f} | {p95:.1f} | {mx:.1f} | {note} |"


def _header() -> str:
    return "| stage | median ms | p95 ms | max ms | note |\n|---|---|---|---|---|"


def _timed(fn: Callable[[], object], n: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ----------------------------------------------------------------------------- brokers
@contextlib.asynccontextmanager
async def broker(kind: str, workdir: Path):
    """Yield ``(url, label)`` of a running broker: Mosquitto if available (or asked), else embedded amqtt."""
    from controller._broker import EmbeddedBroker, MosquittoBroker, find_mosquitto

    binary = find_mosquitto() if kind in ("auto", "mosquitto") else None
    if kind == "mosquitto" and binary is None:
        raise RuntimeError("--broker mosquitto: no mosquitto binary ($MOSQUITTO, PATH, /usr/sbin)")
    if binary is not None:
        m = MosquittoBroker(binary, workdir)
        m.start()
        try:
            yield m.url, f"Mosquitto ({m.version()}, own process) {m.url}"
        finally:
            m.stop()
        return
    async with EmbeddedBroker() as b:
        why = "forced by --broker amqtt" if kind == "amqtt" else "mosquitto not installed"
        yield b.url, f"embedded amqtt in this script's event loop ({why}) {b.url}"


# ----------------------------------------------------------------------------- frames
def render_images() -> dict[str, np.ndarray]:
    """Snapshots of the fixed recipe with visible cracks (``SNAPSHOT_M``) and crack-free (3 m)."""
    import sim_line
    from controller._frames import Frame
    from controller._vision_estimate import SurfaceEstimator

    line = sim_line.Line(seed=0)
    snap, clean = line.snapshot_at(SNAPSHOT_M), line.snapshot_at(3.0)
    if not snap.cracked or clean.cracked:
        raise RuntimeError(f"sim_line changed: the parcel at {SNAPSHOT_M} m should be cracked and the one at 3 m not")
    out = {}
    for name, s, n, depth in (("1MP", snap, 1024, 8), ("512", snap, 512, 8), ("1MP-16bit", snap, 1024, 16),
                              ("clean-512", clean, 512, 8)):
        out[name] = np.ascontiguousarray(sim_line.render_surface(s, shape_px=(n, n), um_per_px=UM_PER_PX,
                                                                 bit_depth=depth, seed=1).image)
    est = SurfaceEstimator()
    for name, want in (("512", True), ("clean-512", False)):
        fr = Frame.from_image(out[name], frame_id=1, um_per_px=UM_PER_PX, position_m=CAMERA_M, timestamp_s=time.time(),
                              source="bench", seq=1)
        if est.estimate(fr, now_s=time.time()).alarm is not want:
            raise RuntimeError(f"the estimator {'misses the cracks of' if want else 'sees cracks in'} the {name} frame")
    return out


def frame_payload(image: np.ndarray, frame_id: int, encoding: str | None = None) -> bytes:
    from controller._frames import Frame
    from controller._messages import encode

    return encode(Frame.from_image(image, frame_id=frame_id, um_per_px=UM_PER_PX, position_m=CAMERA_M,
                                   timestamp_s=time.time(), source="bench-camera", seq=frame_id, encoding=encoding))


# ----------------------------------------------------------------------------- stage benchmarks (synchronous)
def stage_rows(images: dict[str, np.ndarray], quick: bool) -> list[str]:
    from controller._frames import Frame
    from controller._messages import Topics, decode, encode
    from controller._vision_estimate import SurfaceEstimator

    topic = Topics("bench").frame
    rows = []
    n_codec, n_png, n_est = (5, 3, 2) if quick else (20, 8, 5)
    for name, label in (("1MP", "1024^2 8 bit"), ("1MP-16bit", "1024^2 16 bit"), ("512", "512^2 8 bit")):
        img = images[name]
        for enc in (None, "png"):
            n = n_codec if enc is None else n_png
            kind = "raw" if enc is None else "PNG"
            payload = frame_payload(img, 1, enc)

            def build(img=img, enc=enc):
                return encode(Frame.from_image(img, frame_id=1, um_per_px=UM_PER_PX, position_m=CAMERA_M,
                                               timestamp_s=time.time(), source="bench", seq=1, encoding=enc))

            rows.append(_row(f"frame encode {kind}, {label}", _timed(build, n),
                             f"Frame.from_image + encode, {len(payload) / 1e6:.2f} MB on the wire"))
            rows.append(_row(f"frame decode {kind}, {label}", _timed(lambda p=payload: decode(topic, p, now_s=time.time()), n),
                             "decode(): validation + pixels (runs in the vision node's event loop)"))
    est = SurfaceEstimator()
    for name, label in (("1MP", "1024^2"), ("512", "512^2")):
        fr = Frame.from_image(images[name], frame_id=1, um_per_px=UM_PER_PX, position_m=CAMERA_M,
                              timestamp_s=time.time(), source="bench", seq=1)
        rows.append(_row(f"SurfaceEstimator.estimate, {label} cracked", _timed(lambda fr=fr: est.estimate(fr, now_s=time.time()), n_est),
                         "segment_cracks + crack_metrics (worker thread in the node)"))
    rows.extend(law_rows(quick))
    return rows


def law_rows(quick: bool) -> list[str]:
    from controller._config import load_controller_config
    from controller._daemon import default_predictor
    from controller._law import ControlLaw, Inputs, Reading, SurfaceEstimate, ZoneMeasurement

    cfg = load_controller_config()
    law = ControlLaw(cfg, default_predictor(cfg))
    t = 1_767_225_600.0

    def inputs(at: float) -> Inputs:
        zones = {z.name: ZoneMeasurement(z.nominal_temperature_c - 1.0, z.nominal_airflow_m3_h, at, at, 5.0,
                                         z.nominal_fresh_air_m3_h) for z in cfg.zones}
        return Inputs(zones=zones, web_speed_m_min=Reading(3.0, at), wet_thickness_um=Reading(180.0, at),
                      surface=SurfaceEstimate(at, 20.0, True, 0.26, (CAMERA_M,)))

    s0 = law.initial_state(inputs(t))
    first = law.step(s0, inputs(t), t)  # supervisor from the initial state: judges candidate moves
    moved = any(str(d.action) == "lower_drying_rate" for d in first.decisions)
    s1 = first.state
    pid_t, sup_t = t + 1.0, t + cfg.supervisor.period_s
    n, n_move = (5, 2) if quick else (30, 5)
    pid = _timed(lambda: law.step(s1, inputs(pid_t), pid_t), n)
    sup = _timed(lambda: law.step(s1, inputs(sup_t), sup_t), n_move if not quick else 2)
    mv = _timed(lambda: law.step(s0, inputs(t), t), n_move, warmup=0)
    return [
        _row("ControlLaw.step, PID-only sample", pid, "9 of 10 samples"),
        _row("ControlLaw.step, supervisor sample, no move", sup, "every supervisor.period_s (10 s): predictor judges the plan"),
        _row("ControlLaw.step, supervisor sample judging moves", mv,
             f"predictor judges the candidate moves ({'lower_drying_rate' if moved else 'no move'} on the nominal recipe)"),
    ]


async def transport_rows(url: str, images: dict[str, np.ndarray], n: int) -> list[str]:
    import aiomqtt

    from controller._mqtt import parse_broker_url

    addr = parse_broker_url(url)
    topic = f"mudcrack/bench{uuid.uuid4().hex[:8]}/camera/frame"
    arrived: asyncio.Queue[tuple[float, int]] = asyncio.Queue()
    rows = []
    async with aiomqtt.Client(addr.host, addr.port, identifier=f"bench-sub-{uuid.uuid4().hex[:6]}") as sub, \
            aiomqtt.Client(addr.host, addr.port, identifier=f"bench-pub-{uuid.uuid4().hex[:6]}") as pub:
        await sub.subscribe(topic, qos=0)

        async def read() -> None:
            async for m in sub.messages:
                arrived.put_nowait((time.perf_counter(), len(m.payload)))

        reader = asyncio.create_task(read())
        try:
            for name, label in (("1MP", "1024^2 raw-u8"), ("512", "512^2 raw-u8")):
                payload = frame_payload(images[name], 1)
                times = []
                for k in range(n + 1):
                    t0 = time.perf_counter()
                    await pub.publish(topic, payload, qos=0)
                    t1, size = await asyncio.wait_for(arrived.get(), 10.0)
                    if size != len(payload):
                        raise RuntimeError(f"transport: sent {len(payload)} bytes, received {size}")
                    if k:  # the first one warms the connection up
                        times.append(t1 - t0)
                    await asyncio.sleep(0.05)
                rows.append(_row(f"MQTT frame publish -> receive, {label}", times,
                                 f"QoS 0, {len(payload) / 1e6:.2f} MB, two aiomqtt clients of this process"))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader
    return rows


# ----------------------------------------------------------------------------- instrumented components
def _hook_vision_decode(emit: Emit) -> Callable[[], None]:
    """Wrap ``decode`` as the vision node module sees it: frame received / validated (returns an undo)."""
    from controller import _vision_node

    original = _vision_node.decode

    def timed_decode(topic, payload, **kw):
        t0 = time.perf_counter()
        msg = original(topic, payload, **kw)
        meta = getattr(msg, "meta", None)
        if meta is not None:
            emit("node_decode", meta.frame_id, t0, time.perf_counter())
        return msg

    _vision_node.decode = timed_decode

    def undo() -> None:
        _vision_node.decode = original

    return undo


class TimedEstimator:
    """The default `SurfaceEstimator`, timed (runs in the node's worker thread)."""

    def __init__(self, emit: Emit) -> None:
        from controller._vision_estimate import SurfaceEstimator

        self.inner, self.emit = SurfaceEstimator(), emit

    def estimate(self, frame, *, now_s: float):
        t0 = time.perf_counter()
        est = self.inner.estimate(frame, now_s=now_s)
        self.emit("estimate", frame.meta.frame_id, t0, time.perf_counter())
        return est


def make_daemon(config, emit: Emit):
    """A `ControllerDaemon` that reports when it takes a surface estimate and what each step used."""
    from controller._daemon import ControllerDaemon

    class _TimedLaw:
        def __init__(self, law, owner) -> None:
            self._law, self._owner = law, owner

        def __getattr__(self, name):
            return getattr(self._law, name)

        def step(self, state, inputs, t_s):  # called in the daemon's worker thread
            t0 = time.perf_counter()
            result = self._law.step(state, inputs, t_s)
            t1 = time.perf_counter()
            s = inputs.surface
            entry = self._owner.surface_ids.get(id(s)) if s is not None else None
            fid = entry[1] if entry is not None and entry[0] is s else None
            supervised = result.state.last_supervisor_s == t_s
            emit("step", fid, float(t_s), t0, t1, supervised, str(result.state.mode),
                 [str(d.action) for d in result.decisions])
            return result

    class TimedDaemon(ControllerDaemon):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.surface_ids: dict[int, tuple[object, int | None]] = {}
            self.law = _TimedLaw(self.law, self)

        def handle(self, topic, payload, *, retain=False):
            t0 = time.perf_counter()
            before = self._surface
            super().handle(topic, payload, retain=retain)
            if self._surface is not None and self._surface is not before:
                try:
                    fid = json.loads(payload).get("frame_id")
                except ValueError:
                    fid = None
                if len(self.surface_ids) > 256:
                    self.surface_ids.clear()
                self.surface_ids[id(self._surface)] = (self._surface, fid)
                emit("daemon_recv", fid, t0, time.perf_counter())

    return TimedDaemon(config, reconnect_initial_s=0.1, reconnect_max_s=1.0)


def daemon_config(url: str, line_id: str):
    from controller._config import load_controller_config
    from controller._daemon import with_broker_url

    cfg = with_broker_url(load_controller_config(), url)
    return dataclasses.replace(cfg, line_id=line_id, mqtt=dataclasses.replace(cfg.mqtt, client_id=f"bench-ctl-{line_id}"))


async def run_role(role: str, url: str, line_id: str, emit: Emit, stop: asyncio.Event) -> str:
    """Run the vision node or the daemon until ``stop``; returns its summary text."""
    if role == "vision":
        from controller._vision_node import run_vision_node

        undo = _hook_vision_decode(emit)
        try:
            summary = await run_vision_node(broker_url=url, line_id=line_id, stop_event=stop,
                                            estimator=TimedEstimator(emit), reconnect_initial_s=0.1,
                                            reconnect_max_s=1.0)
        finally:
            undo()
        return summary.text()
    daemon = make_daemon(daemon_config(url, line_id), emit)
    summary = await daemon.run(stop)
    return summary.text()


def _child_main(role: str, url: str, line_id: str, events, stop_flag) -> None:
    """Entry point of a component process: run the role, report events on ``events``."""
    import logging

    logging.basicConfig(level=logging.WARNING, format=f"[{role}] %(levelname)s %(name)s: %(message)s")

    def emit(*e) -> None:
        events.put(e)

    async def main() -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while not stop_flag.is_set():
                await asyncio.sleep(0.1)
            stop.set()

        watcher = asyncio.create_task(watch())
        try:
            text = await run_role(role, url, line_id, emit, stop)
        finally:
            watcher.cancel()
        emit("summary", role, text)

    try:
        asyncio.run(main())
    except BaseException as exc:  # report, then let the parent see the exit code
        emit("error", role, f"{type(exc).__name__}: {exc}")
        raise


# ----------------------------------------------------------------------------- the recorder
@dataclasses.dataclass
class Recorder:
    """Events of the components and the watcher, by frame id (thread-safe)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    frames: dict[int, dict] = dataclasses.field(default_factory=dict)
    steps: list[tuple] = dataclasses.field(default_factory=list)  # (t_s, start, end, supervised, mode, fid, actions)
    setpoints: dict[float, list[float]] = dataclasses.field(default_factory=dict)
    decisions: list[str] = dataclasses.field(default_factory=list)
    summaries: dict[str, str] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)

    def add(self, e: tuple) -> None:
        kind = e[0]
        with self.lock:
            if kind == "node_decode":
                self.frames.setdefault(e[1], {}).setdefault("node_decode", (e[2], e[3]))
            elif kind == "estimate":
                self.frames.setdefault(e[1], {}).setdefault("estimate", (e[2], e[3]))
            elif kind == "daemon_recv":
                if e[1] is not None:
                    self.frames.setdefault(e[1], {}).setdefault("daemon_recv", (e[2], e[3]))
            elif kind == "step":
                _, fid, t_s, t0, t1, sup, mode, actions = e
                self.steps.append((t_s, t0, t1, sup, mode, fid, actions))
                if fid is not None:
                    self.frames.setdefault(fid, {}).setdefault("step", (t_s, t0, t1, sup, mode))
            elif kind == "summary":
                self.summaries[e[1]] = e[2]
            elif kind == "error":
                self.errors.append(f"{e[1]}: {e[2]}")

    def frame(self, fid: int) -> dict:
        with self.lock:
            return dict(self.frames.get(fid, {}))

    def setpoint_arrivals(self, t_s: float) -> list[float]:
        with self.lock:
            return list(self.setpoints.get(t_s, ()))

    def complete(self, fid: int, n_zones: int) -> bool:
        f = self.frame(fid)
        return "step" in f and "est_seen" in f and len(self.setpoint_arrivals(f["step"][0])) >= n_zones

    def last_step(self) -> tuple | None:
        with self.lock:
            return self.steps[-1] if self.steps else None

    def next_supervised_start(self, after: float) -> float | None:
        with self.lock:
            starts = [s[1] for s in self.steps if s[3] and s[1] >= after]
        return min(starts) if starts else None


class Components:
    """The vision node and the daemon, in their own processes (default) or in this event loop."""

    def __init__(self, url: str, line_id: str, recorder: Recorder, in_process: bool) -> None:
        self.url, self.line_id, self.rec, self.in_process = url, line_id, recorder, in_process
        self.procs: list = []
        self.tasks: list[asyncio.Task] = []
        self._stop_async = asyncio.Event()
        self._ctx = mp.get_context("spawn")
        self._stop_flag = self._ctx.Event() if not in_process else None
        self._events = self._ctx.Queue() if not in_process else None
        self._drain: threading.Thread | None = None
        self._draining = True

    def start(self) -> None:
        if self.in_process:
            for role in ("vision", "daemon"):
                self.tasks.append(asyncio.create_task(run_role(role, self.url, self.line_id, self._emit_local,
                                                               self._stop_async), name=f"bench.{role}"))
            return
        for role in ("vision", "daemon"):
            p = self._ctx.Process(target=_child_main, args=(role, self.url, self.line_id, self._events,
                                                            self._stop_flag), name=f"bench-{role}", daemon=True)
            p.start()
            self.procs.append(p)
        self._drain = threading.Thread(target=self._drain_events, name="bench.events", daemon=True)
        self._drain.start()

    def _emit_local(self, *e) -> None:
        self.rec.add(e)

    def _drain_events(self) -> None:
        assert self._events is not None
        while self._draining or not self._events.empty():
            try:
                e = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            self.rec.add(e)

    def check_alive(self) -> None:
        """Raise if a component died (with its error when it reported one)."""
        for p in self.procs:
            if not p.is_alive():
                raise RuntimeError(f"{p.name} exited with status {p.exitcode}: {'; '.join(self.rec.errors) or 'no report'}")
        for t in self.tasks:
            if t.done():
                exc = t.exception() if not t.cancelled() else None
                raise RuntimeError(f"{t.get_name()} ended early: {exc!r}")

    async def stop(self) -> None:
        if self.in_process:
            self._stop_async.set()
            for t in self.tasks:
                try:
                    text = await asyncio.wait_for(t, 20.0)
                    self.rec.summaries[t.get_name().split(".")[1]] = text
                except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001  (teardown: report, go on)
                    self.rec.errors.append(f"{t.get_name()}: {exc!r}")
            return
        assert self._stop_flag is not None
        self._stop_flag.set()
        for p in self.procs:
            await asyncio.to_thread(p.join, 20.0)
            if p.is_alive():
                self.rec.errors.append(f"{p.name} did not stop within 20 s: terminated")
                p.terminate()
                await asyncio.to_thread(p.join, 5.0)
        self._draining = False
        if self._drain is not None:
            await asyncio.to_thread(self._drain.join, 5.0)


# ----------------------------------------------------------------------------- end to end
async def end_to_end(url: str, images: dict[str, np.ndarray], repeats: int, in_process: bool,
                     sustained_frames: int) -> tuple[dict[str, list[dict]], Recorder, dict]:
    import aiomqtt

    from controller._config import load_controller_config
    from controller._messages import (
        CrackEstimate,
        LineSensors,
        MessageKind,
        Topics,
        ZoneCommand,
        ZoneSensors,
        decode,
        encode,
    )
    from controller._mqtt import parse_broker_url

    cfg = load_controller_config()
    zones = cfg.zone_names
    line_id = f"bench{uuid.uuid4().hex[:10]}"
    topics = Topics(line_id)
    addr = parse_broker_url(url)
    rec = Recorder()
    info: dict = {"line_id": line_id}
    comps = Components(url, line_id, rec, in_process)
    results: dict[str, list[dict]] = {"1MP": [], "512": [], "sustained": []}

    async with aiomqtt.Client(addr.host, addr.port, identifier=f"bench-line-{line_id}") as line, \
            aiomqtt.Client(addr.host, addr.port, identifier=f"bench-watch-{line_id}") as watch:
        await watch.subscribe(topics.filter(MessageKind.ZONE_SETPOINT), qos=1)
        await watch.subscribe(topics.surface_estimate, qos=1)
        await watch.subscribe(topics.decision, qos=1)

        async def watcher() -> None:
            async for m in watch.messages:
                t = time.perf_counter()
                topic = str(m.topic)
                payload = bytes(m.payload)
                msg = decode(topic, payload, now_s=None, line_id=line_id)
                if isinstance(msg, ZoneCommand):
                    with rec.lock:
                        rec.setpoints.setdefault(msg.timestamp_s, []).append(t)
                elif isinstance(msg, CrackEstimate) and msg.frame_id is not None:
                    with rec.lock:
                        rec.frames.setdefault(msg.frame_id, {}).setdefault("est_seen", (t, msg.alarm))
                else:
                    with rec.lock:
                        rec.decisions.append(getattr(msg, "action", "?"))

        async def sensors() -> None:
            seq = 0
            while True:
                now = time.time()
                for z in cfg.zones:
                    await line.publish(topics.zone_sensors(z.name), encode(ZoneSensors(
                        timestamp_s=now, source="bench-line", seq=seq, zone=z.name,
                        temperature_c=z.nominal_temperature_c - 1.0, airflow_m3_h=z.nominal_airflow_m3_h,
                        fresh_air_m3_h=z.nominal_fresh_air_m3_h, solvent_concentration_g_m3=5.0)), qos=0)
                await line.publish(topics.line_sensors, encode(LineSensors(
                    timestamp_s=now, source="bench-line", seq=seq, web_speed_m_min=3.0, wet_thickness_um=180.0,
                    exit_residual_solvent_g_m2=0.1)), qos=0)
                seq += 1
                await asyncio.sleep(SENSOR_PERIOD_S)

        bg = [asyncio.create_task(watcher(), name="bench.watch"), asyncio.create_task(sensors(), name="bench.sensors")]
        fid_counter = [100]

        async def send(image: np.ndarray) -> tuple[int, float]:
            fid = fid_counter[0]
            fid_counter[0] += 1
            payload = frame_payload(image, fid)
            t0 = time.perf_counter()
            await line.publish(topics.frame, payload, qos=0)
            with rec.lock:
                rec.frames.setdefault(fid, {})["t0"] = t0
            return fid, t0

        async def wait_frame(fid: int, timeout: float = WAIT_TIMEOUT_S) -> dict:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while not rec.complete(fid, len(zones)):
                comps.check_alive()
                for t in bg:
                    if t.done():
                        raise RuntimeError(f"{t.get_name()} ended: {t.exception()!r}")
                if loop.time() > deadline:
                    raise TimeoutError(f"frame {fid}: no set-points of a step using its estimate within {timeout:g} s; "
                                       f"events so far: {sorted(rec.frame(fid))}")
                await asyncio.sleep(0.005)
            return rec.frame(fid)

        try:
            comps.start()
            # warm-up: until the daemon steps in AUTO on the estimate of a frame (imports, connections, predictor)
            t_start = time.monotonic()
            while True:
                comps.check_alive()
                if time.monotonic() - t_start > START_TIMEOUT_S:
                    raise TimeoutError(f"the components were not in closed loop within {START_TIMEOUT_S:g} s "
                                       f"(last step: {rec.last_step()}; errors: {rec.errors})")
                fid, _ = await send(images["clean-512"])
                try:
                    f = await wait_frame(fid, 5.0)
                except TimeoutError:
                    continue
                if f["step"][4] == "auto":
                    break
            info["startup_s"] = time.monotonic() - t_start
            for name in ("1MP", "512"):  # one untimed frame per size
                fid, _ = await send(images[name])
                await wait_frame(fid)
            # alternating sizes, random phase against the 1 s sample grid
            rng = random.Random(0)
            for k in range(repeats):
                for name in (("1MP", "512") if k % 2 == 0 else ("512", "1MP")):
                    await asyncio.sleep(rng.uniform(0.0, SAMPLE_S))
                    fid, _ = await send(images[name])
                    results[name].append({"fid": fid, **await wait_frame(fid)})
            # sustained: 1 MP frames at the camera's frame interval (the node keeps only the newest frame)
            if sustained_frames:
                await asyncio.sleep(1.0)
                sent = []
                t_next = time.perf_counter()
                for _ in range(sustained_frames):
                    t_next += FRAME_INTERVAL_S
                    sent.append((await send(images["1MP"]))[0])
                    await asyncio.sleep(max(t_next - time.perf_counter(), 0.0))
                deadline = time.perf_counter() + WAIT_TIMEOUT_S
                while time.perf_counter() < deadline and not rec.complete(sent[-1], len(zones)):
                    comps.check_alive()
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
                for fid in sent:
                    results["sustained"].append({"fid": fid, **rec.frame(fid)})
            steps = list(rec.steps)
            info["modes"] = sorted({s[4] for s in steps})
            info["safe_steps"] = sum(1 for s in steps if s[4] == "safe")
            info["steps"] = len(steps)
        finally:
            await comps.stop()
            for t in bg:
                t.cancel()
            await asyncio.gather(*bg, return_exceptions=True)
    info["summaries"] = dict(rec.summaries)
    info["errors"] = list(rec.errors)
    info["decisions"] = list(rec.decisions)
    return results, rec, info


def e2e_rows(frames: list[dict], rec: Recorder, label: str) -> tuple[list[str], dict[str, list[float]]]:
    """The end-to-end rows of one frame size (seconds in, ms out)."""
    cols: dict[str, list[float]] = {k: [] for k in (
        "transport", "decode", "handoff", "estimate", "to_daemon", "frame_to_daemon", "wait", "step", "to_setpoints",
        "processing", "total", "to_supervisor")}
    supervised = alarmed = 0
    for f in frames:
        if not all(k in f for k in ("t0", "node_decode", "estimate", "daemon_recv", "step")):
            continue
        t0 = f["t0"]
        d0, d1 = f["node_decode"]
        e0, e1 = f["estimate"]
        _r0, r1 = f["daemon_recv"]
        t_s, s0, s1, sup, _mode = f["step"]
        arrivals = rec.setpoint_arrivals(t_s)
        if not arrivals:
            continue
        sp = max(arrivals)
        supervised += bool(sup)
        alarmed += bool(f.get("est_seen", (0, False))[1])
        cols["transport"].append(d0 - t0)
        cols["decode"].append(d1 - d0)
        cols["handoff"].append(e0 - d1)
        cols["estimate"].append(e1 - e0)
        cols["to_daemon"].append(r1 - e1)
        cols["frame_to_daemon"].append(r1 - t0)
        cols["wait"].append(max(s0 - r1, 0.0))
        cols["step"].append(s1 - s0)
        cols["to_setpoints"].append(sp - s1)
        cols["total"].append(sp - t0)
        cols["processing"].append((sp - t0) - max(s0 - r1, 0.0))
        nxt = rec.next_supervised_start(r1)
        if nxt is not None:
            cols["to_supervisor"].append(nxt - r1)
    n = len(cols["total"])
    rows = [
        _row(f"{label}: transport, camera publish -> node validates", cols["transport"], "broker + client receive + node mailbox"),
        _row(f"{label}: decode + validation (node event loop)", cols["decode"], "blocks the node's event loop"),
        _row(f"{label}: handoff to the worker thread", cols["handoff"], "asyncio.to_thread"),
        _row(f"{label}: SurfaceEstimator.estimate (worker)", cols["estimate"], ""),
        _row(f"{label}: estimate -> daemon has it", cols["to_daemon"], "encode, QoS-1 publish, broker, daemon decode"),
        _row(f"{label}: frame published -> estimate at daemon", cols["frame_to_daemon"], "sum of the rows above"),
        _row(f"{label}: sample wait -> next control step", cols["wait"], f"not processing; uniform in [0, {SAMPLE_S:g} s) expected"),
        _row(f"{label}: ControlLaw.step (daemon worker)", cols["step"], f"{supervised}/{n} were supervisor samples"),
        _row(f"{label}: step -> 4 zone set-points at subscriber", cols["to_setpoints"], "QoS 1 retained, acked"),
        _row(f"**{label}: processing latency** (end to end - sample wait)", cols["processing"], "what the components cost"),
        _row(f"**{label}: end to end**, frame published -> set-points", cols["total"],
             f"n = {n}, {alarmed}/{n} estimates saw the cracks"),
        _row(f"{label}: estimate at daemon -> next supervisor sample", cols["to_supervisor"],
             "when the estimate can change set-point values (supervisor.period_s = 10 s)"),
    ]
    return rows, cols


def sustained_rows(frames: list[dict], rec: Recorder) -> list[str]:
    done = [f for f in frames if "step" in f and "t0" in f and rec.setpoint_arrivals(f["step"][0])]
    estimated = [f for f in frames if "estimate" in f]
    totals = [max(rec.setpoint_arrivals(f["step"][0])) - f["t0"] for f in done]
    mailbox = [f["estimate"][0] - f["node_decode"][1] for f in estimated if "node_decode" in f]
    waits = [max(f["step"][1] - f["daemon_recv"][1], 0.0) for f in done if "daemon_recv" in f]
    return [
        _row(f"1 MP every {FRAME_INTERVAL_S:g} s: mailbox wait (decoded -> estimate starts)", mailbox,
             "newest frame wins while the worker is busy"),
        _row(f"1 MP every {FRAME_INTERVAL_S:g} s: sample wait", waits,
             "periodic frames on a multiple of the sample grid: a fixed phase, set by when the nodes started"),
        _row(f"1 MP every {FRAME_INTERVAL_S:g} s: end to end of the estimated frames", totals,
             f"{len(estimated)}/{len(frames)} frames estimated, {len(frames) - len(estimated)} skipped by the node"),
    ]


# ----------------------------------------------------------------------------- main
async def amain(args: argparse.Namespace) -> int:
    from controller._config import load_controller_config
    from sim_line._config import load_line

    cfg = load_controller_config()
    line_cfg, _ = load_line(None)
    sample_s = min(z.sample_time_s for z in cfg.zones)
    frame_interval_s = line_cfg.camera.frame_interval_s if line_cfg.camera is not None else FRAME_INTERVAL_S
    if (sample_s, frame_interval_s) != (SAMPLE_S, FRAME_INTERVAL_S):
        print(f"note: configs say sample time {sample_s:g} s, frame interval {frame_interval_s:g} s "
              f"(the script's budget lines assume {SAMPLE_S:g} / {FRAME_INTERVAL_S:g} s)")
    repeats = 5 if args.quick and args.repeats is None else (args.repeats or 20)
    sustained = 0 if args.no_sustained else (4 if args.quick else 8)
    wall0 = time.perf_counter()
    load0 = os.getloadavg()
    print(f"control_latency: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} "
          f"(1/5/15 min) at start; repeats {repeats}; components "
          f"{'in this event loop (--in-process)' if args.in_process else 'one process each (spawn)'}")
    t = time.perf_counter()
    images = render_images()
    print(f"rendered the frames in {time.perf_counter() - t:.1f} s "
          f"(parcel at {SNAPSHOT_M:g} m of sim_line.Line(seed=0), visibly cracked; {UM_PER_PX:g} um/px)")
    stage = stage_rows(images, args.quick)
    with tempfile.TemporaryDirectory(prefix="mudcrack-latency-") as tmp:
        async with broker(args.broker, Path(tmp)) as (url, broker_label):
            stage += await transport_rows(url, images, 5 if args.quick else 15)
            results, rec, info = await end_to_end(url, images, repeats, args.in_process, sustained)
    load1 = os.getloadavg()

    print(f"\nbroker: {broker_label}\n")
    print("### Stages (this process)\n")
    print(_header())
    print("\n".join(stage))
    print(f"\n### End to end over the broker ({'in-process' if args.in_process else 'vision node and daemon in their own processes'}, "
          f"SystemClock, sample time {SAMPLE_S:g} s)\n")
    print(_header())
    rows_1mp, c1 = e2e_rows(results["1MP"], rec, "1 MP")
    rows_512, c5 = e2e_rows(results["512"], rec, "512^2 (baseline)")
    print("\n".join(rows_1mp))
    print("\n".join(rows_512))
    if results["sustained"]:
        print("\n".join(sustained_rows(results["sustained"], rec)))

    # comparison with the baseline and the budgets
    print()
    ok = bool(c1["processing"]) and bool(c5["processing"])
    if ok:
        p1, p5 = np.median(c1["processing"]), np.median(c5["processing"])
        e1, e5 = np.median(c1["estimate"]), np.median(c5["estimate"])
        tot95 = float(np.percentile(c1["total"], 95))
        proc95 = float(np.percentile(c1["processing"], 95))
        share = float(np.median(np.array(c1["estimate"]) / np.array(c1["processing"])))
        print(f"1 MP vs 512^2 baseline (same run): processing {p1 * 1e3:.0f} vs {p5 * 1e3:.0f} ms median "
              f"(x{p1 / p5:.1f}; 4x the pixels); estimate x{e1 / e5:.1f}; the estimate is {share:.0%} of the 1 MP "
              f"processing latency")
        print(f"budget: 1 MP processing p95 {proc95 * 1e3:.0f} ms vs sample time {SAMPLE_S * 1e3:.0f} ms "
              f"({'fits' if proc95 < SAMPLE_S else 'does NOT fit'}); end to end p95 {tot95 * 1e3:.0f} ms vs frame "
              f"interval {FRAME_INTERVAL_S * 1e3:.0f} ms ({'fits' if tot95 < FRAME_INTERVAL_S else 'does NOT fit'}); "
              f"512^2 processing p95 {np.percentile(c5['processing'], 95) * 1e3:.0f} ms")
        verdict = (f"VERDICT: 1 MP frame -> set-point takes {np.median(c1['total']) * 1e3:.0f} ms median "
                   f"(p95 {tot95 * 1e3:.0f} ms), of which {p1 * 1e3:.0f} ms processing, dominated by the estimate "
                   f"({e1 * 1e3:.0f} ms); it {'fits' if proc95 < SAMPLE_S else 'does not fit'} one sample period and "
                   f"{'fits' if tot95 < FRAME_INTERVAL_S else 'does not fit'} the {FRAME_INTERVAL_S:g} s frame interval; "
                   f"512^2 baseline {np.median(c5['total']) * 1e3:.0f} ms median.")
        print(verdict)
    steps = info.get("steps", 0)
    print(f"\ndaemon: {steps} steps seen, modes {info.get('modes')}, {info.get('safe_steps', 0)} in the safe state; "
          f"decisions published: {len(info['decisions'])} ({', '.join(sorted(set(map(str, info['decisions'])))) or 'none'}); "
          f"startup to closed loop {info.get('startup_s', float('nan')):.1f} s")
    for role, text in sorted(info["summaries"].items()):
        print(f"{role}: {text}")
    for err in info["errors"]:
        print(f"problem: {err}")
    print(f"load average at end {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}; wall {time.perf_counter() - wall0:.0f} s")
    return 0 if ok and not info["errors"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="end-to-end frames per size (default 20; --quick 5)")
    parser.add_argument("--quick", action="store_true", help="5 frames per size, fewer stage repetitions (~1 min)")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "amqtt"), default="auto",
                        help="auto: Mosquitto if installed, else the embedded amqtt broker")
    parser.add_argument("--in-process", action="store_true",
                        help="run the vision node and the daemon in this event loop (as the closed-loop demo)")
    parser.add_argument("--no-sustained", action="store_true",
                        help="skip the 1 MP frames at the camera's frame interval")
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats: expected a positive integer")
    try:
        return asyncio.run(amain(args))
    except (RuntimeError, TimeoutError) as exc:
        print(f"control_latency: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
