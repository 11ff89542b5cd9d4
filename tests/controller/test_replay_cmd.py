"""``mudcrack replay``: the control law over a recorded log of the virtual line, deterministic, clear errors."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest

from controller._config import default_controller_config_path, load_controller_config
from controller._law_state import DECISION_COLUMNS
from controller._replay_cmd import run_replay, run_replay_config
from sim_line._runner import run_line


@pytest.fixture(scope="module")
def recorded_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two minutes of the virtual line on its fixed recipe (``timeseries.csv``, a row every 5 s)."""
    out = tmp_path_factory.mktemp("run")
    run_line(out, minutes=2)
    return out / "timeseries.csv"


@pytest.fixture(scope="module")
def config_without_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``configs/controller.yaml`` with ``surface_estimate_stale_after_s: null`` (the log has no crack estimates)."""
    src = default_controller_config_path()
    text = src.read_text(encoding="utf-8")
    text, n = re.subn(r"surface_estimate_stale_after_s:\s*[0-9.]+", "surface_estimate_stale_after_s: null", text)
    assert n == 1
    text = text.replace("line_config: line.yaml", f"line_config: {(src.parent / 'line.yaml').as_posix()}")
    path = tmp_path_factory.mktemp("cfg") / "controller.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_replay_of_the_virtual_line_is_deterministic(recorded_log, config_without_camera, tmp_path):
    a = run_replay(recorded_log, tmp_path / "a.csv", config_path=config_without_camera)
    b = run_replay(recorded_log, tmp_path / "sub" / "b.csv", config_path=config_without_camera)
    assert "replayed 25 steps" in a and str(tmp_path / "a.csv") in a
    assert a.rsplit("wrote", 1)[0] == b.rsplit("wrote", 1)[0]
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "sub" / "b.csv").read_bytes()
    df = pd.read_csv(tmp_path / "a.csv")
    assert list(df.columns) == DECISION_COLUMNS
    assert len(df) >= 1 and "safe_state" not in set(df["action"])  # the inputs are complete: no safe state
    assert df["reason"].notna().all() and df["text"].notna().all()


def test_config_object_gives_the_same_decisions_as_the_file(recorded_log, config_without_camera, tmp_path):
    cfg = load_controller_config()
    cfg = dataclasses.replace(cfg, safe_state=dataclasses.replace(cfg.safe_state, surface_estimate_stale_after_s=None))
    run_replay_config(recorded_log, tmp_path / "obj.csv", cfg)
    run_replay(recorded_log, tmp_path / "file.csv", config_path=config_without_camera)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "obj.csv"), pd.read_csv(tmp_path / "file.csv"))


def test_default_config_requires_a_crack_estimate_so_the_log_replays_to_the_safe_state(recorded_log, tmp_path):
    text = run_replay(recorded_log, tmp_path / "d.csv")
    assert "safe_state" in text
    assert set(pd.read_csv(tmp_path / "d.csv")["action"]) == {"safe_state"}


@pytest.mark.parametrize(("content", "match"), [
    (None, "log file not found"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage \x00\x01", "not a readable CSV log|expected a 't_s' column"),
    (b"", "not a readable CSV log"),
    (b"time,speed\n1,2\n", "expected a 't_s' column"),
    (b"t_s,web_speed_m_min\n", "header but no rows"),
    (b"t_s,web_speed_m_min\nabc,3\n", "cannot replay the log: t_s"),
])
def test_missing_or_garbled_log_raises_a_value_error_naming_the_file(content, match, tmp_path):
    log = tmp_path / "bad_log.csv"
    if content is not None:
        log.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        run_replay(log, tmp_path / "out.csv")
    assert "bad_log.csv" in str(info.value)
    assert not (tmp_path / "out.csv").exists()
