"""``mudcrack demo``: the virtual line open loop vs closed loop over MQTT, with a report.

`run_demo` starts an embedded MQTT broker (amqtt, in-process, 127.0.0.1 on a free port)
unless ``broker_url`` is given, then runs the same scenario (``configs/scenarios/demo.yaml``:
the fixed recipe, which cracks the coating at ~7 m, and a camera flicker) twice, one
loop after the other, each on its own `LockstepClock` (time moves only when the line, the
vision node and the controller have all finished the current instant, so the run is as
fast as the machine computes and nobody lags, whatever the load):

open loop   ``<run>-open``: the line on its fixed recipe + the vision node (no controller)
closed loop ``<run>-closed``: the line + the vision node + the controller daemon

Both lines are `controller._sim_node.run_sim_line` plants; the vision nodes are the real
`run_vision_node` (segmentation of rendered frames). The configured camera at 7.0 m sits
at the crack point of the fixed recipe and sees no cracks yet, so the demo moves it a
little downstream (``camera_position_m``, default 7.5 m, still in zone 3).

The lines' data are recorded from the `Line` objects themselves (parcels leaving the
line, readings every few steps); the estimates and the controller's decisions from the
broker. The report (``report.md`` + PNG plots + CSVs) compares crack intensity of the
coating leaving the line, residual solvent at the exit, an energy proxy (heater + fan
power) and the set-points with the controller's decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


import aiomqtt
import numpy as np
import pandas as pd

from ._broker import EmbeddedBroker
from ._config import load_controller_config
from ._messages import CrackEstimate, Decision, MessageError, MessageKind, Topics, decode
from ._mqtt import LockstepClock, ScaledClock, clock_hold, parse_broker_url

__all__ = ["DemoSummary", "EmbeddedBroker", "main_demo", "run_demo"]

Progress = Callable[[int], None]

#: parcels exiting in this last part of the run are the "settled" numbers
TAIL_FRACTION = 0.25
#: the demo's camera takes a frame every 4 s of line time (configs/line.yaml: 2 s): in lockstep
#: every frame is rendered and estimated, and half the frames halve the demo's wall time
DEMO_FRAME_INTERVAL_S = 4.0


@dataclass
class _Run:
    """One line of the demo (open or closed loop) and what was recorded of it."""

    name: str
    line_id: str
    config: tuple
    line: object | None = None
    rows: list[dict] = field(default_factory=list)
    estimates: list[dict] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    plant: object | None = None
    vision: object | None = None
    daemon: object | None = None
    t0_s: float | None = None

    def on_step(self, every: int, progress: Progress | None, clock) -> Progress:
        count = [0]

        def step(n: int) -> None:
            count[0] += n
            if self.t0_s is None and self.line is not None:  # clock time of line time 0 (stamps - t0 = line time)
                self.t0_s = clock.now_s() - self.line.t_s
            if self.line is not None and count[0] % every == 0:
                self.rows.append(self.line.readings().as_dict())
            if progress is not None:
                progress(n)

        return step


async def _listen(address, run: _Run, clock, ready: asyncio.Event) -> None:
    """Record the surface estimates and the controller's decisions of one line."""
    topics = Topics(run.line_id)
    async with aiomqtt.Client(address.host, address.port, username=address.username, password=address.password,
                              identifier=f"demo-rec-{uuid.uuid4().hex[:8]}") as c:
        await c.subscribe(topics.filter(MessageKind.SURFACE_ESTIMATE), qos=1)
        await c.subscribe(topics.filter(MessageKind.DECISION), qos=1)
        ready.set()
        async for m in c.messages:
            try:
                msg = decode(str(m.topic), bytes(m.payload), now_s=None, line_id=run.line_id)
            except MessageError:
                continue
            if isinstance(msg, CrackEstimate):
                run.estimates.append({"t_s": msg.timestamp_s, "score": msg.score, "alarm": msg.alarm,
                                      "surface_cif": msg.evidence.get("surface_cif", math.nan),
                                      "sample_t_s": msg.sample_timestamp_s})
            elif isinstance(msg, Decision):
                run.decisions.append({"t_s": msg.timestamp_s, "action": msg.action, "zone": msg.zone,
                                      "reason": msg.reason})


# ----------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class DemoSummary:
    """What `run_demo` wrote and its headline numbers (``numbers[loop][key]``, loop ``open`` / ``closed``)."""

    out_dir: Path
    files: tuple[Path, ...]
    numbers: dict[str, dict[str, float]]
    text: str
    wall_s: float
    broker: str


def _pace(speedup: float | None) -> str:
    return "in lockstep (as fast as the nodes compute)" if speedup is None else f"at {speedup:g}x real time"


#: NFPA 86: zone solvent vapour at most 25 % of the LEL (50 % with continuous monitoring and interlocks)
LEL_WARNING_PCT = 25.0


def _lel_warnings(numbers: dict[str, dict[str, float]]) -> list[str]:
    """One warning per loop whose zone air exceeded `LEL_WARNING_PCT` of the lower explosive limit."""
    out = []
    for name, label in (("open", "open loop"), ("closed", "closed loop")):
        pct = numbers[name].get("max_zone_lel_pct", math.nan)
        if math.isfinite(pct) and pct > LEL_WARNING_PCT:
            out.append(f"WARNING: the {label} ran a zone at {pct:.0f} % of the solvent's lower explosive limit "
                       f"(NFPA 86: <= 25 %, <= 50 % with continuous monitoring and an interlock)")
    return out


def _fmt(value: float, unit: str = "", digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}{unit}"


def _numbers(run: _Run, minutes: float, t0_s: float, ctl) -> dict[str, float]:
    from ._law_supervisor import lel_g_m3

    ex = run.line.exited()
    ts = pd.DataFrame(run.rows)
    end = minutes * 60.0 * (1.0 - TAIL_FRACTION)
    tail = ex[ex["t_s"] >= end]
    zones = run.line.zone_names
    power = sum(ts[f"{z}_heater_power_kw"] + ts[f"{z}_fan_power_kw"] for z in zones) if len(ts) else pd.Series([])
    energy = float(np.trapezoid(power, ts["t_s"]) / 3600.0) if len(ts) > 1 else math.nan
    lel_pct = math.nan  # highest zone solvent vapour, % of the lower explosive limit at the zone temperature
    if len(ts) and all(f"{z}_solvent_concentration_g_m3" in ts for z in zones):
        lel_pct = 100.0 * float(max(np.nanmax(ts[f"{z}_solvent_concentration_g_m3"]
                                              / lel_g_m3(ctl, ts[f"{z}_temperature_c"])) for z in zones))
    # coating produced (web length through the coater) and the energy per square metre of it
    coated_m = float(np.trapezoid(ts["web_speed_m_min"] / 60.0, ts["t_s"])) if len(ts) > 1 else math.nan
    area_m2 = coated_m * run.line.config.web.width_m
    return {
        "parcels_exited": float(len(ex)),
        "max_zone_lel_pct": lel_pct,
        "cracked_pct": 100.0 * float(ex["cracked"].mean()) if len(ex) else math.nan,
        "cracked_tail_pct": 100.0 * float(tail["cracked"].mean()) if len(tail) else math.nan,
        "mean_exit_cif_3d_pct": 100.0 * float(ex["cif_3d"].mean()) if len(ex) else math.nan,
        "tail_exit_cif_3d_pct": 100.0 * float(tail["cif_3d"].mean()) if len(tail) else math.nan,
        "max_exit_residual_g_m2": float(np.nanmax(ex["residual_solvent_g_m2"])) if len(ex) else math.nan,
        "energy_kwh": energy,
        "mean_power_kw": float(power.mean()) if len(ts) else math.nan,
        "coated_m": coated_m,
        "final_speed_m_min": float(ts["web_speed_m_min"].iloc[-1]) if len(ts) else math.nan,
        "energy_kwh_per_m2": energy / area_m2 if area_m2 > 0 else math.nan,
        "estimates": float(len(run.estimates)),
        "estimates_alarm": float(sum(e["alarm"] for e in run.estimates)),
        "decisions": float(len(run.decisions)),
        "moves": float(sum(d["action"] != "hold" and not str(d["reason"]).startswith("shutdown")
                           for d in run.decisions)),
    }


# ----------------------------------------------------------------------------- report
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _report(out: Path, runs: dict[str, _Run], numbers: dict, *, scenario_text: str, minutes: float,
            speedup: float | None, seed: int, t0: dict[str, float], camera_m: float, limit: float, broker: str, wall_s: float) -> list[Path]:
    plt = _plt()
    files: list[Path] = []
    colors = {"open": "tab:red", "closed": "tab:blue"}
    label = {"open": "open loop (fixed recipe)", "closed": "closed loop (controller)"}
    tail_min = minutes * (1.0 - TAIL_FRACTION)
    data = {}
    for name, run in runs.items():
        ex = run.line.exited()
        ts = pd.DataFrame(run.rows)
        est = pd.DataFrame(run.estimates, columns=["t_s", "score", "alarm", "surface_cif", "sample_t_s"])
        dec = pd.DataFrame(run.decisions, columns=["t_s", "action", "zone", "reason"])
        est["t_s"] -= t0[name]
        dec["t_s"] -= t0[name]
        prof = run.line.parcels()
        for df, stem in ((ts, "timeseries"), (ex, "exited"), (est, "estimates"), (dec, "decisions"),
                         (prof, "profile")):
            p = out / f"{stem}_{name}.csv"
            df.to_csv(p, index=False)
            files.append(p)
        data[name] = (ex, ts, est, dec, prof)

    # 1. cracks of the coating leaving the line, and along the web at the end
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, (ex, ts, est, dec, prof) in data.items():
        if len(ex):
            ax[0].plot(ex.t_s / 60.0, 100 * ex.cif_3d, color=colors[name], label=f"{label[name]}: 3D CIF at exit")
        if len(est):
            ax[0].plot(est.t_s / 60.0, 100 * est.surface_cif, ".", ms=3, color=colors[name], alpha=0.4,
                       label=f"vision node at {camera_m:g} m: surface CIF")
        ax[1].plot(prof.position_m, 100 * prof.cif_3d, color=colors[name], label=label[name])
    ax[0].axvline(tail_min, color="grey", ls=":", label="settled window")
    ax[0].set_xlabel("time (min)")
    ax[0].set_ylabel("crack intensity (%)")
    ax[0].set_title("coating leaving the line")
    ax[0].legend(fontsize=7)
    ax[1].axvline(camera_m, color="k", ls=":", label="camera")
    ax[1].set_xlabel("position along the web (m)")
    ax[1].set_ylabel("3D CIF (%)")
    ax[1].set_title(f"along the web at t = {minutes:g} min")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    files.append(out / "cracks.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    # 2. exit residual solvent and energy
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, (ex, ts, est, dec, prof) in data.items():
        if len(ex):
            ax[0].plot(ex.t_s / 60.0, ex.residual_solvent_g_m2, color=colors[name], label=label[name])
        zones = runs[name].line.zone_names
        power = sum(ts[f"{z}_heater_power_kw"] + ts[f"{z}_fan_power_kw"] for z in zones)
        ax[1].plot(ts.t_s / 60.0, power, color=colors[name],
                   label=f"{label[name]}: {numbers[name]['energy_kwh']:.2f} kWh")
    ax[0].axhline(limit, color="k", ls="--", label=f"limit {limit:g} g/m2")
    ax[0].set_xlabel("time (min)")
    ax[0].set_ylabel("residual NMP at the exit (g/m2)")
    ax[0].legend(fontsize=8)
    ax[1].set_xlabel("time (min)")
    ax[1].set_ylabel("heater + fan power (kW)")
    ax[1].set_title("energy proxy")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    files.append(out / "exit_and_energy.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    # 3. set-points and the controller's decisions
    from ._law_supervisor import lel_g_m3

    ctl = load_controller_config()
    zones = runs["closed"].line.zone_names
    fig, ax = plt.subplots(4, 1, figsize=(13, 14), sharex=True)
    zc = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ts_c, ts_o = data["closed"][1], data["open"][1]
    for i, z in enumerate(zones):
        for k, (var, unit) in enumerate((("temperature", "c"), ("airflow", "m3_h"), ("fresh_air", "m3_h"))):
            ax[k].plot(ts_c.t_s / 60.0, ts_c[f"{z}_{var}_setpoint_{unit}"], color=zc[i], label=f"{z} set-point")
            ax[k].plot(ts_c.t_s / 60.0, ts_c[f"{z}_{var}_{unit}"], color=zc[i], lw=0.8, alpha=0.6)
            ax[k].plot(ts_o.t_s / 60.0, ts_o[f"{z}_{var}_setpoint_{unit}"], color=zc[i], ls=":", lw=0.8)
        for df, ls, lab in ((ts_c, "-", f"{z}"), (ts_o, ":", None)):
            ax[3].plot(df.t_s / 60.0, 100 * df[f"{z}_solvent_concentration_g_m3"] / lel_g_m3(ctl, df[f"{z}_temperature_c"]),
                       color=zc[i], ls=ls, lw=1.0 if ls == "-" else 0.8, label=lab)
    sl = ctl.solvent_load
    for pct, text in ((sl.target_lel_pct, "exhaust loop target"), (LEL_WARNING_PCT, "NFPA 86 (25 %)"),
                      (sl.trip_lel_pct, "interlock trip")):
        ax[3].axhline(pct, color="k", ls="--" if pct == sl.trip_lel_pct else ":", lw=0.8)
        ax[3].annotate(text, (0.0, pct), fontsize=7, va="bottom")
    speed_ax = ax[3].twinx()
    speed_ax.plot(ts_c.t_s / 60.0, ts_c.web_speed_m_min, color="k", lw=1.5, label="web speed (closed loop)")
    speed_ax.set_ylabel("web speed (m/min)")
    speed_ax.set_ylim(0.0, max(float(ts_c.web_speed_m_min.max()), float(ts_o.web_speed_m_min.max())) * 1.3)
    speed_ax.legend(fontsize=7, loc="upper right")
    dec = data["closed"][3]
    # moves: what the law changed (not holds, not the daemon's own safe state when it stops)
    moves = dec[(dec.action != "hold") & ~dec.reason.astype(str).str.startswith("shutdown")] if len(dec) else dec
    for _, d in moves.iterrows():
        for a in ax:
            a.axvline(d.t_s / 60.0, color="grey", lw=0.5, alpha=0.5)
    if len(moves):
        ymax = ax[0].get_ylim()[1]
        shown = moves.drop_duplicates("action")
        for _, d in shown.iterrows():
            ax[0].annotate(str(d.action), (d.t_s / 60.0, ymax), fontsize=7, rotation=90, va="top", ha="right")
    ax[0].set_ylabel("zone air temperature (C)")
    ax[0].set_title("closed loop set-points (solid), actual (thin), fixed recipe (dotted); grey: controller moves")
    ax[0].legend(fontsize=7, ncol=4)
    ax[1].set_ylabel("zone nozzle airflow (m3/h)")
    ax[1].legend(fontsize=7, ncol=4)
    ax[2].set_ylabel("zone exhaust / fresh air (m3/h)")
    ax[2].legend(fontsize=7, ncol=4)
    ax[3].set_ylabel("zone solvent vapour (% LEL)")
    ax[3].set_xlabel("time (min)")
    ax[3].legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    files.append(out / "setpoints.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)

    o, c = numbers["open"], numbers["closed"]
    dec_counts = moves.groupby("action").size().to_dict() if len(moves) else {}
    md = [
        "# mudcrack demo: open loop vs closed loop",
        "",
        (f"Scenario {scenario_text}, {minutes:g} simulated min {_pace(speedup)}, seed {seed}; "
        f"broker {broker}; wall time {wall_s:.0f} s. Camera (vision node) at {camera_m:g} m. "
        f"Settled window: coating leaving after {tail_min:g} min."),
        "",
        "| | open loop (fixed recipe) | closed loop (controller) |",
        "|---|---|---|",
        f"| coating cracked, whole run | {_fmt(o['cracked_pct'], ' %', 0)} | {_fmt(c['cracked_pct'], ' %', 0)} |",
        (f"| coating cracked, settled window | {_fmt(o['cracked_tail_pct'], ' %', 0)} | "
        f"{_fmt(c['cracked_tail_pct'], ' %', 0)} |"),
        (f"| mean 3D CIF at exit, settled window | {_fmt(o['tail_exit_cif_3d_pct'], ' %', 2)} | "
        f"{_fmt(c['tail_exit_cif_3d_pct'], ' %', 2)} |"),
        (f"| max residual NMP at exit (limit {limit:g} g/m2) | {_fmt(o['max_exit_residual_g_m2'], ' g/m2', 3)} | "
        f"{_fmt(c['max_exit_residual_g_m2'], ' g/m2', 3)} |"),
        f"| dryer energy (heater + fans) | {_fmt(o['energy_kwh'], ' kWh', 2)} | {_fmt(c['energy_kwh'], ' kWh', 2)} |",
        (f"| highest zone solvent vapour (% of the LEL; exhaust loop target {ctl.solvent_load.target_lel_pct:g} %, "
         f"interlock {ctl.solvent_load.trip_lel_pct:g} %) | "
         f"{_fmt(o['max_zone_lel_pct'], ' %', 0)} | {_fmt(c['max_zone_lel_pct'], ' %', 0)} |"),
        (f"| web speed at the end | {_fmt(o['final_speed_m_min'], ' m/min', 2)} | "
         f"{_fmt(c['final_speed_m_min'], ' m/min', 2)} |"),
        (f"| coating produced | {_fmt(o['coated_m'], ' m', 1)} | {_fmt(c['coated_m'], ' m', 1)} |"),
        (f"| energy per m2 of coating | {_fmt(o['energy_kwh_per_m2'], ' kWh/m2', 3)} | "
         f"{_fmt(c['energy_kwh_per_m2'], ' kWh/m2', 3)} |"),
        (f"| vision estimates (alarming) | {o['estimates']:.0f} ({o['estimates_alarm']:.0f}) | "
        f"{c['estimates']:.0f} ({c['estimates_alarm']:.0f}) |"),
        f"| controller decisions (moves) | - | {c['decisions']:.0f} ({c['moves']:.0f}) |",
        "",
        "Controller moves: " + (", ".join(f"{k} x{v}" for k, v in sorted(dec_counts.items())) or "none") + ".",
        "",
        *[f"**{w}**" for w in _lel_warnings(numbers)],
        "",
        "![cracks](cracks.png)",
        "",
        "![exit residual and energy](exit_and_energy.png)",
        "",
        "![set-points](setpoints.png)",
        "",
        ("Data: `timeseries_*.csv` (line readings), `exited_*.csv` (every parcel leaving the line), "
        "`profile_*.csv` (parcels along the web at the end), `estimates_*.csv`, `decisions_*.csv` "
        "(times in s since the line started)."),
        "",
    ]
    for name in ("open", "closed"):
        r = runs[name]
        md.append(f"- {r.plant.text()}" if r.plant is not None else f"- {name}: no line summary")
        if r.vision is not None:
            md.append(f"- {r.vision.text()}")
        if r.daemon is not None:
            md.append(f"- {r.daemon.text()}")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    files.append(out / "report.md")
    return files


# ----------------------------------------------------------------------------- the demo
def _open_loop_offline(run: _Run, scenario, seed: int, duration_s: float, every: int,
                       progress: Progress | None) -> None:
    """The fixed recipe without MQTT: what `run_sim_line` does with no set-points (deterministic)."""
    from sim_line._line import Line
    from sim_line._scenario import ScenarioPlayer

    line = Line(run.config, seed=seed)
    run.line, run.t0_s = line, 0.0
    player = ScenarioPlayer(scenario, line, seed=seed)
    steps = math.ceil(duration_s - 1e-9)
    for k in range(1, steps + 1):
        player.step(min(1.0, duration_s - line.t_s), {})
        if k % every == 0:
            run.rows.append(line.readings().as_dict())
        if progress is not None:
            progress(1)


def demo_steps(minutes: float) -> int:
    """Progress units of a run (line steps of both lines), for a progress bar's total."""
    return 2 * math.ceil(minutes * 60.0)


async def run_demo_async(out_dir: str | Path, *, minutes: float = 12.0, speedup: float | None = None,
                         broker_url: str | None = None, seed: int = 0, progress: Progress | None = None,
                         camera_position_m: float = 7.5, frame_shape_px: tuple[int, int] = (256, 256),
                         record_every_s: int = 5, scenario: str | Path | None = "demo",
                         frame_interval_s: float | None = DEMO_FRAME_INTERVAL_S,
                         open_loop_over_mqtt: bool = True) -> DemoSummary:
    """`run_demo` inside a running event loop."""
    from sim_line._config import default_config_dir, load_line
    from controller._sim_node import run_sim_line

    from ._daemon import ControllerDaemon, with_broker_url
    from ._vision_estimate import SurfaceEstimator
    from ._vision_node import run_vision_node

    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and 0 < minutes <= 24 * 60):
        raise ValueError(f"minutes: expected 0 < minutes <= 1440, found {minutes!r}")
    if speedup is not None and not (isinstance(speedup, (int, float)) and math.isfinite(speedup) and speedup > 0):
        raise ValueError(f"speedup: expected a positive number or None (lockstep), found {speedup!r}")
    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from sim_line._scenario import load_scenario

    if scenario in ("demo", "default", "all_disturbances"):
        scenario = default_config_dir() / "scenarios" / f"{scenario}.yaml"
    scenario = load_scenario(scenario) if scenario is not None else None
    line_cfg, slurry = load_line(None)
    line_cfg = dataclasses.replace(line_cfg, camera=dataclasses.replace(line_cfg.camera,
                                                                        position_m=float(camera_position_m)))
    ctl = load_controller_config()
    tag = f"demo-{uuid.uuid4().hex[:6]}"  # fresh topic trees: no retained set-points of an earlier run
    runs = {name: _Run(name, f"{tag}-{name}", (line_cfg, slurry)) for name in ("open", "closed")}
    duration_s = minutes * 60.0

    async def phase(run: _Run, broker_url: str, address, *, with_daemon: bool) -> None:
        """One loop: the recorder, the vision node, (the daemon) and the line, on a fresh clock.

        On the lockstep clock time stands still until every node is connected, then moves
        only when all of them have finished the current instant (nobody lags)."""
        clock = LockstepClock() if speedup is None else ScaledClock(speedup)
        stop_vision, stop_daemon = asyncio.Event(), asyncio.Event()
        with contextlib.ExitStack() as held:
            held.enter_context(clock_hold(clock))
            async with asyncio.TaskGroup() as tg:
                ready, vision_ready = asyncio.Event(), asyncio.Event()
                listener = tg.create_task(_listen(address, run, clock, ready))
                await asyncio.wait_for(ready.wait(), 30.0)
                vision = tg.create_task(run_vision_node(
                    broker_url=broker_url, line_id=run.line_id, clock=clock, stop_event=stop_vision,
                    estimator=SurfaceEstimator(source=f"vision-{run.name}"), ready_event=vision_ready))
                await asyncio.wait_for(vision_ready.wait(), 30.0)
                daemon_task = None
                if with_daemon:
                    cfg = with_broker_url(ctl, broker_url)
                    cfg = dataclasses.replace(cfg, line_id=run.line_id,
                                              mqtt=dataclasses.replace(cfg.mqtt, client_id=f"ctl-{run.line_id}"))
                    daemon = ControllerDaemon(cfg, clock=clock, seed=seed, startup_grace_s=60.0)
                    daemon_task = tg.create_task(daemon.run(stop_daemon))
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + 30.0
                    while not daemon.connected and not daemon_task.done() and loop.time() < deadline:
                        await asyncio.sleep(0.01)
                    if not daemon.connected:
                        raise RuntimeError(f"the controller daemon did not connect to {broker_url} within 30 s")
                plant = tg.create_task(run_sim_line(
                    broker_url=broker_url, config=run.config, line_id=run.line_id, clock=clock,
                    duration_s=duration_s, scenario=scenario, seed=seed, frame_shape_px=frame_shape_px,
                    frame_interval_s=frame_interval_s, publish_frames=True,
                    progress=run.on_step(record_every_s, progress, clock),
                    on_line=lambda line: setattr(run, "line", line)))
                held.close()  # every node is up: let time run
                run.plant = await plant
                if daemon_task is not None:
                    stop_daemon.set()
                    run.daemon = await daemon_task
                stop_vision.set()
                run.vision = await vision
                await asyncio.sleep(0.2)  # the last decisions / estimates reach the recorder
                listener.cancel()
        if isinstance(clock, LockstepClock):
            await clock.aclose()

    async with contextlib.AsyncExitStack() as stack:
        if broker_url is None:
            broker = await stack.enter_async_context(EmbeddedBroker())
            broker_url = broker.url
            broker_text = f"embedded amqtt {broker_url}"
        else:
            broker_text = broker_url
        address = parse_broker_url(broker_url)
        if open_loop_over_mqtt:
            await phase(runs["open"], broker_url, address, with_daemon=False)
            await phase(runs["closed"], broker_url, address, with_daemon=True)
        else:  # the open loop in a worker thread (same physics, no MQTT, no camera) alongside the closed loop
            offline = asyncio.create_task(asyncio.to_thread(_open_loop_offline, runs["open"], scenario, seed,
                                                            duration_s, record_every_s, progress))
            try:
                await phase(runs["closed"], broker_url, address, with_daemon=True)
            finally:
                await offline
    t0 = {name: run.t0_s if run.t0_s is not None else 0.0 for name, run in runs.items()}
    numbers = {name: _numbers(run, minutes, t0[name], ctl) for name, run in runs.items()}
    wall_s = time.perf_counter() - wall0
    limit = line_cfg.exit_residual_solvent_limit_g_m2
    scenario_text = f"`{scenario.name}` ({scenario.description})" if scenario is not None else "none (no disturbance)"
    files = _report(out, runs, numbers, scenario_text=scenario_text, minutes=minutes, speedup=speedup, seed=seed, t0=t0,
                    camera_m=camera_position_m, limit=limit, broker=broker_text, wall_s=wall_s)
    o, c = numbers["open"], numbers["closed"]
    text = "\n".join([
        (f"mudcrack demo: scenario {scenario.name if scenario is not None else 'none'}, {minutes:g} min "
         f"{_pace(speedup)}, seed {seed} ({broker_text})  ->  {out}"),
        "                               open loop    closed loop",
        f"  cracked (whole run)          {_fmt(o['cracked_pct'], ' %', 0):>9}    {_fmt(c['cracked_pct'], ' %', 0):>9}",
        (f"  cracked (last {100 * TAIL_FRACTION:.0f} % of run)   "
        f"{_fmt(o['cracked_tail_pct'], ' %', 0):>9}    {_fmt(c['cracked_tail_pct'], ' %', 0):>9}"),
        (f"  max exit NMP (limit {limit:g} g/m2) {_fmt(o['max_exit_residual_g_m2'], '', 3):>7}    "
        f"{_fmt(c['max_exit_residual_g_m2'], '', 3):>9}"),
        f"  energy heater+fans (kWh)     {_fmt(o['energy_kwh'], '', 2):>9}    {_fmt(c['energy_kwh'], '', 2):>9}",
        f"  max zone solvent (% LEL)     {_fmt(o['max_zone_lel_pct'], '', 0):>9}    {_fmt(c['max_zone_lel_pct'], '', 0):>9}",
        f"  web speed at end (m/min)     {_fmt(o['final_speed_m_min'], '', 2):>9}    {_fmt(c['final_speed_m_min'], '', 2):>9}",
        f"  energy per m2 coated (kWh)   {_fmt(o['energy_kwh_per_m2'], '', 3):>9}    {_fmt(c['energy_kwh_per_m2'], '', 3):>9}",
        (f"  controller decisions: {c['decisions']:.0f} ({c['moves']:.0f} moves); vision estimates "
        f"{o['estimates']:.0f} / {c['estimates']:.0f}"),
        f"  report: {out / 'report.md'} (cracks.png, exit_and_energy.png, setpoints.png); wall {wall_s:.0f} s",
        *[f"  {w}" for w in _lel_warnings(numbers)],
    ])
    (out / "summary.txt").write_text(text + "\n", encoding="utf-8")
    files.append(out / "summary.txt")
    return DemoSummary(out, tuple(files), numbers, text, wall_s, broker_text)


def run_demo(out_dir: str | Path, *, minutes: float = 12.0, speedup: float | None = None, broker_url: str | None = None,
             seed: int = 0, progress: Progress | None = None, **kw) -> DemoSummary:
    """Run the open- and closed-loop demo and write its report (see the module docstring).

    Parameters
    ----------
    out_dir : path
        Report folder: ``report.md``, ``cracks.png``, ``exit_and_energy.png``, ``setpoints.png``,
        ``summary.txt`` and CSVs.
    minutes : float
        Simulated minutes of each run (the web needs 4 min from the coater to the exit and the
        controller ~5 min to settle; the settled numbers are over the last quarter).
    speedup : float, optional
        None (default): one `LockstepClock` per loop, time moves when the line, the vision
        node and the controller have all finished the current instant (as fast as the
        machine computes, nobody lags); a number: `ScaledClock`, simulated seconds per real
        second (to watch it live, e.g. on a dashboard subscribed to the broker).
    broker_url : str, optional
        ``mqtt://host[:port]`` of a running broker; default: an embedded amqtt broker.
    seed : int
        Seed of the lines and the scenario.
    progress : callable, optional
        Called with 1 after every line step of either line (`demo_steps` of them in all).
    **kw
        ``camera_position_m`` (7.5), ``frame_shape_px`` ((256, 256)), ``record_every_s`` (5),
        ``frame_interval_s`` (4), ``scenario`` (a path, a shipped name ``demo`` / ``default`` /
        ``all_disturbances``, or None for no disturbance).

    Returns
    -------
    DemoSummary
    """
    return asyncio.run(run_demo_async(out_dir, minutes=minutes, speedup=speedup, broker_url=broker_url, seed=seed,
                                      progress=progress, **kw))


def main_demo(out_dir: str | Path = "runs/demo", *, minutes: float = 12.0, speedup: float | None = None,
              broker_url: str | None = None, seed: int = 0, scenario: str | Path | None = "demo",
              show_progress: bool = True) -> int:
    """``mudcrack demo``: run, print the summary; exit status 0."""
    bar = None
    update = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=demo_steps(minutes), desc="demo: open + closed loop", unit="step", file=sys.stderr,
                   disable=None, leave=False)
        update = bar.update
    try:
        summary = run_demo(out_dir, minutes=minutes, speedup=speedup, broker_url=broker_url, seed=seed,
                           progress=update, scenario=scenario)
    finally:
        if bar is not None:
            bar.close()
    print(summary.text)
    return 0
