"""``mudcrack replay LOG --out CSV``: the decisions the control law would have made on a recorded log.

Edge code: loads the controller configuration, wires in the drying-model predictor, checks
the log file, runs the pure `controller._law.replay` and writes the decisions CSV
(`controller._law.write_decisions_csv`). The replay is deterministic: the same log and
configuration give the same decisions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from ._config import ControllerConfig, load_controller_config
from ._law import replay, write_decisions_csv

__all__ = ["check_log", "run_replay", "run_replay_config"]


def check_log(log_csv: str | Path) -> Path:
    """Check that ``log_csv`` is a readable CSV log with a ``t_s`` column and at least one row.

    Raises
    ------
    ValueError
        Missing, unreadable or garbled file; the message names the file.
    """
    path = Path(log_csv)
    if not path.is_file():
        raise ValueError(f"{path}: log file not found (expected a CSV log such as a run folder's timeseries.csv)")
    try:
        head = pd.read_csv(path, dtype=object, keep_default_na=False, nrows=5)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: not a readable CSV log ({type(exc).__name__}: {exc})") from exc
    if "t_s" not in head.columns:
        cols = ", ".join(map(str, head.columns[:8])) or "none"
        raise ValueError(f"{path}: expected a 't_s' column (step time, s) in the log, found columns: {cols}")
    if head.empty:
        raise ValueError(f"{path}: the log has a header but no rows")
    return path


def run_replay_config(log_csv: str | Path, out_csv: str | Path, config: ControllerConfig) -> str:
    """`run_replay` with a configuration object (tests and callers that built one).

    Returns
    -------
    str
        One paragraph: steps, decisions by action, output path.

    Raises
    ------
    ValueError
        Missing or garbled log (the message names the file).
    """
    from ._daemon import default_predictor  # wiring: the predictor imports sim_line's physics

    path = check_log(log_csv)
    predictor = default_predictor(config)
    try:
        decisions = replay(path, config, predictor)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: cannot replay the log: {exc}") from exc
    out = write_decisions_csv(decisions, out_csv)
    steps = int(decisions.attrs.get("steps", 0))
    actions = Counter(str(a) for a in decisions["action"])
    by_action = ", ".join(f"{a} {n}" for a, n in sorted(actions.items())) or "none"
    return (f"replayed {steps} steps of {path}: {len(decisions)} decisions ({by_action}); "
            f"wrote {out}")


def run_replay(log_csv: str | Path, out_csv: str | Path, *, config_path: str | Path | None = None) -> str:
    """Run the control law over a recorded log and write the decisions it would have made.

    Parameters
    ----------
    log_csv : path
        One row per control step (the columns of `controller._law.replay`; the virtual
        line's ``timeseries.csv`` has this layout, but carries no crack estimates: replay it
        with ``safe_state.surface_estimate_stale_after_s: null``, or every step is the
        safe state).
    out_csv : path
        Decisions CSV (`controller._law_state.DECISION_COLUMNS`); parent folders are created.
    config_path : path, optional
        Controller configuration (default ``configs/controller.yaml``); its ``predictor``
        section selects the drying model.

    Returns
    -------
    str
        One paragraph for the console.

    Raises
    ------
    ConfigError
        Bad configuration file.
    ValueError
        Missing or garbled log; the message names the file.

    Examples
    --------
    >>> print(run_replay("runs/sim/timeseries.csv", "runs/sim/decisions.csv"))  # doctest: +SKIP
    """
    return run_replay_config(log_csv, out_csv, load_controller_config(config_path))
