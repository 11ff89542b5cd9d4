"""The ``mudcrack`` command line (entry point of the console script).

Subcommands
-----------
demo       run the main job on embedded defaults (now: the virtual line's default scenario)
simulate   simulate the virtual line (``--config``) or a lab pin sample (``--lab --gap``)
dic        2D DIC between two frames (points CSV, PNG maps)
dvc        3D DVC between two CT volumes (points CSV, slice maps)
daemon     the crack-aware drying controller on MQTT
vision-node  camera frames in, surface crack estimates out (MQTT)
replay     run the control law over a recorded CSV log and write its decisions
sim-line   the virtual line as an MQTT plant (sensors, frames, set-points, scenarios)
eval       offline evaluation (``eval surface FRAMES``, ``eval ct SCAN...``: metrics, onset, report)
check      validate a configuration file and print it

Errors in arguments, configuration files or outputs print one line to stderr and exit
with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("mudcrack")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one clear line, not usage + message
        raise SystemExit(_fail(f"{self.prog}: {message} (see --help)"))


def _fail(message: str) -> int:
    print(f"mudcrack: error: {message}", file=sys.stderr)
    return 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, found {text!r}")
    return value


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, disable=None, leave=False)
    return bar, bar.update


def _cmd_simulate(args: argparse.Namespace) -> int:
    from sim_line._runner import run_lab, run_line

    out = Path(args.out)
    if args.lab:
        if args.gap is None:
            return _fail("simulate --lab needs --gap UM (the doctor-blade gap, e.g. 300)")
        bar, update = _progress(9, f"lab sample {args.gap:g} um")
        with bar:
            summary = run_lab(args.gap, out, config=args.config, seed=args.seed, progress=update)
    else:
        if args.gap is not None:
            return _fail("--gap applies to lab samples only; add --lab")
        bar, update = _progress(int(round(args.minutes * 60)), "virtual line")
        with bar:
            summary = run_line(out, config=args.config, minutes=args.minutes, seed=args.seed, progress=update)
    print(summary.text)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from controller._demo import main_demo

    scenario = None if args.scenario == "none" else args.scenario
    return main_demo(args.out, minutes=args.minutes, speedup=args.speedup, broker_url=args.broker, seed=args.seed,
                     scenario=scenario)


def _cmd_check(args: argparse.Namespace) -> int:
    import dataclasses

    from sim_line._config import load_lab, load_line

    text = Path(args.file).read_text(encoding="utf-8") if Path(args.file).is_file() else ""
    kind = args.kind or ("lab" if "mass_transfer_m_s" in text else "line")
    cfg, slurry = (load_lab if kind == "lab" else load_line)(args.file)
    print(f"{args.file}: valid {kind} configuration (slurry: {slurry.name})")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not dataclasses.is_dataclass(value) and not (isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0])):
            print(f"  {f.name}: {value}")
    return 0


def _cmd_dic(args: argparse.Namespace) -> int:
    from controller._vision_cmd import run_dic

    print(run_dic(args.reference, args.current, args.out, subset_size=args.subset_size, step=args.step))
    return 0


def _cmd_eval_surface(args: argparse.Namespace) -> int:
    from controller._vision_cmd import run_eval_surface
    from vision._io import open_frames

    n = len(open_frames(args.frames))
    bar, update = _progress(n, "surface frames")
    with bar:
        text = run_eval_surface(args.frames, args.out, times_file=args.times, fps=args.fps, um_per_px=args.um_per_px, progress=update)
    print(text)
    return 0


def _cmd_dvc(args: argparse.Namespace) -> int:
    from controller._ct_cmd import run_dvc

    bar = None
    update = None
    if args.memory_budget_mb is not None or args.scheduler is not None:
        from tqdm import tqdm

        bar = tqdm(desc="DVC blocks", unit="block", file=sys.stderr, disable=None, leave=False)

        def _update(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        update = _update
    try:
        print(run_dvc(args.reference, args.current, args.out, voxel_um=args.voxel_um, subset_size=args.subset_size,
                      step=args.step, background=args.background, memory_budget_mb=args.memory_budget_mb,
                      scheduler=args.scheduler, progress=update))
    finally:
        if bar is not None:
            bar.close()
    return 0


def _cmd_eval_ct(args: argparse.Namespace) -> int:
    from controller._ct_cmd import run_eval_ct

    bar, update = _progress(len(args.scans), "CT scans")
    with bar:
        text = run_eval_ct(args.scans, args.out, voxel_um=args.voxel_um, times_file=args.times,
                           interval_min=args.interval_min, with_solvent=args.with_solvent,
                           scheduler=args.scheduler, progress=update)
    print(text)
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from controller._daemon import main_daemon

    return main_daemon(args.config, broker_url=args.broker, speedup=args.speedup, clock_anchor_s=args.clock_anchor,
                       metrics_port=args.metrics_port, log_format=args.log_format, log_level=args.log_level)


def _cmd_vision_node(args: argparse.Namespace) -> int:
    from controller._vision_node import main_vision_node

    return main_vision_node(broker_url=args.broker, line_id=args.line_id, speedup=args.speedup,
                            web_registered=args.web_registered)


def _cmd_replay(args: argparse.Namespace) -> int:
    from controller._replay_cmd import run_replay

    print(run_replay(args.log, args.out, config_path=args.config))
    return 0


def _cmd_sim_line(args: argparse.Namespace) -> int:
    from controller._sim_node import main_sim_line

    return main_sim_line(config=args.config, broker_url=args.broker, speedup=args.speedup,
                         duration_s=None if args.minutes is None else args.minutes * 60.0,
                         scenario=args.scenario, line_id=args.line_id, seed=args.seed,
                         publish_frames=not args.no_frames)


def _odd_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
    if value < 7 or value % 2 == 0:
        raise argparse.ArgumentTypeError(f"expected an odd subset size >= 7 px, found {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mudcrack`` (exposed for the docs and tests)."""
    parser = _Parser(prog="mudcrack", description="Crack-aware drying control for electrode coating lines.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="the main job: open vs closed loop on the virtual line over MQTT, with a report")
    demo.add_argument("--out", default="runs/demo", help="report folder (default: runs/demo)")
    demo.add_argument("--minutes", type=_positive_float, default=12.0, help="simulated minutes per loop (default 12)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--scenario", default="demo",
                      help="disturbance scenario: a YAML path, a shipped name (demo, default, all_disturbances) or "
                           "none (default: demo = configs/scenarios/demo.yaml)")
    demo.add_argument("--broker", help="use this broker (mqtt://host:port) instead of the embedded amqtt broker")
    demo.add_argument("--speedup", type=_positive_float,
                      help="pace the loops on the wall clock at this many simulated seconds per second (default: "
                           "lockstep, as fast as the nodes compute)")
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser("simulate", help="simulate the virtual line or a lab pin sample")
    sim.add_argument("--config", help="line YAML (default configs/line.yaml) or, with --lab, lab YAML (default configs/lab_ambient.yaml)")
    sim.add_argument("--lab", action="store_true", help="simulate a stationary lab pin sample instead of the line")
    sim.add_argument("--gap", type=_positive_float, help="doctor-blade gap of the lab sample, um (with --lab)")
    sim.add_argument("--minutes", type=_positive_float, default=10.0, help="simulated minutes of line time (default: 10)")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--out", required=True, help="run folder to write")
    sim.set_defaults(func=_cmd_simulate)

    dic = sub.add_parser("dic", help="2D DIC between two frames: points CSV and PNG maps")
    dic.add_argument("reference", help="reference frame (PNG/TIFF, 8/16 bit)")
    dic.add_argument("current", help="deformed frame, same size")
    dic.add_argument("--out", required=True, help="output folder")
    dic.add_argument("--subset-size", type=_odd_int, default=31, help="subset size, odd, px (default 31)")
    dic.add_argument("--step", type=int, default=8, help="grid step, px (default 8)")
    dic.set_defaults(func=_cmd_dic)

    dm = sub.add_parser("daemon", help="the crack-aware drying controller on MQTT (runs until SIGTERM/SIGINT)")
    dm.add_argument("--config", help="controller YAML (default configs/controller.yaml)")
    dm.add_argument("--broker", help="broker URL overriding the config (mqtt://[user:pw@]host:port or mqtts://)")
    dm.add_argument("--speedup", type=_positive_float, default=1.0,
                    help="simulated seconds per real second, to run against an accelerated sim-line (default 1)")
    dm.add_argument("--clock-anchor", type=float, help="epoch time where the scaled clock equals the wall clock")
    dm.add_argument("--metrics-port", type=int, help="serve Prometheus text metrics on this port")
    dm.add_argument("--log-format", choices=("kv", "json"), default="kv", help="structured log lines (default kv)")
    dm.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    dm.set_defaults(func=_cmd_daemon)

    vn = sub.add_parser("vision-node", help="camera frames in, surface crack estimates out (MQTT)")
    vn.add_argument("--broker", default="mqtt://localhost:1883", help="broker URL (default mqtt://localhost:1883)")
    vn.add_argument("--line-id", default="pilot-1", help="topic level mudcrack/<line_id>/ (default pilot-1)")
    vn.add_argument("--speedup", type=_positive_float, default=1.0, help="clock speedup shared with sim-line (default 1)")
    vn.add_argument("--web-registered", action="store_true",
                    help="consecutive frames show the same material: also run the DIC onset detector")
    vn.set_defaults(func=_cmd_vision_node)

    rp = sub.add_parser("replay", help="run the control law over a recorded log (CSV) and write its decisions")
    rp.add_argument("log", help="CSV log (e.g. a run folder's timeseries.csv)")
    rp.add_argument("--out", required=True, help="decisions CSV to write")
    rp.add_argument("--config", help="controller YAML (default configs/controller.yaml); logs without crack "
                                     "estimates replay to the safe state unless surface_estimate_stale_after_s is null")
    rp.set_defaults(func=_cmd_replay)

    sl = sub.add_parser("sim-line", help="run the virtual line as an MQTT plant (sensors, camera frames, set-points)")
    sl.add_argument("--config", help="line YAML (default configs/line.yaml)")
    sl.add_argument("--broker", default="mqtt://localhost:1883", help="broker URL (mqtt:// or mqtts://; default localhost)")
    sl.add_argument("--speedup", type=_positive_float, default=1.0, help="simulated seconds per real second (default 1)")
    sl.add_argument("--minutes", type=_positive_float, help="simulated minutes to run (default: until interrupted)")
    sl.add_argument("--scenario", help="scenario YAML of timed disturbances (e.g. configs/scenarios/default.yaml)")
    sl.add_argument("--line-id", help="topic level mudcrack/<line_id>/ (default: the config's line_id)")
    sl.add_argument("--seed", type=int, default=0)
    sl.add_argument("--no-frames", action="store_true", help="do not render and publish camera frames")
    sl.set_defaults(func=_cmd_sim_line)

    dvc = sub.add_parser("dvc", help="3D DVC between two CT volumes: points CSV and slice maps")
    dvc.add_argument("reference", help="reference volume (TIFF slice folder or multipage, HDF5/NeXus, zarr)")
    dvc.add_argument("current", help="deformed volume, same shape")
    dvc.add_argument("--out", required=True, help="output folder")
    dvc.add_argument("--voxel-um", type=_positive_float, help="voxel size, um (default: from the file)")
    dvc.add_argument("--subset-size", type=_odd_int, default=21, help="subvolume size, odd, voxels (default 21)")
    dvc.add_argument("--step", type=int, default=10, help="grid step, voxels (default 10)")
    dvc.add_argument("--background", choices=("rigid", "translation", "affine", "none"), default="rigid",
                     help="background motion removed for the residual columns (default rigid)")
    dvc.add_argument("--memory-budget-mb", type=_positive_float, help="correlate chunk by chunk within this memory")
    dvc.add_argument("--scheduler", help="dask.distributed scheduler address (e.g. tcp://host:8786)")
    dvc.set_defaults(func=_cmd_dvc)

    ev = sub.add_parser("eval", help="offline evaluation of recorded data")
    ev_sub = ev.add_subparsers(dest="what", required=True, parser_class=_Parser)
    surf = ev_sub.add_parser("surface", help="surface frames: crack metrics per frame, onset time and sites, plots, report")
    surf.add_argument("frames", help="folder of frames (natural sort; PNG/TIFF, 8/16 bit) or a video file")
    surf.add_argument("--out", required=True, help="output folder")
    timing = surf.add_mutually_exclusive_group()
    timing.add_argument("--times", help="CSV with a t_min (or t_s) column, or one time in minutes per line")
    timing.add_argument("--fps", type=_positive_float, help="frame rate, frames per second")
    surf.add_argument("--um-per-px", type=_positive_float, default=5.0, help="pixel size, um (default 5)")
    surf.set_defaults(func=_cmd_eval_surface)
    ct = ev_sub.add_parser("ct", help="CT scan series: height, porosity, CIF time series, 2D CIF profiles, DVC maps, "
                                      "predicted sites, report")
    ct.add_argument("scans", nargs="+", help="volumes in time order (TIFF folder/multipage, HDF5/NeXus, zarr)")
    ct.add_argument("--out", required=True, help="output folder")
    ct.add_argument("--voxel-um", type=_positive_float, help="voxel size, um (default: from the files)")
    ct_time = ct.add_mutually_exclusive_group()
    ct_time.add_argument("--times", help="CSV with a t_min column, or one time in minutes per line")
    ct_time.add_argument("--interval-min", type=_positive_float, default=2.0,
                         help="minutes between scans when --times is not given (default 2)")
    ct.add_argument("--with-solvent", action="store_true", help="segment a free solvent phase (wet scans)")
    ct.add_argument("--scheduler", help="dask.distributed scheduler address: per-scan analytics run there")
    ct.set_defaults(func=_cmd_eval_ct)

    check = sub.add_parser("check", help="validate a configuration file")
    check.add_argument("file")
    check.add_argument("--kind", choices=("line", "lab"), help="file kind (default: guessed from its keys)")
    check.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mudcrack``; returns the exit status."""
    from sim_line._schema import ConfigError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except ConfigError as exc:
        return _fail(str(exc))
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def console() -> None:
    """Console-script entry: exit with `main`'s status."""
    sys.exit(main())
