"""controller: the MQTT side of mudcrack (daemon, control law, vision node, virtual line node, demo).

Public API (everything else is private, ``_name.py``):

- Messages (docs/mqtt.md): `Topics`, `parse_topic`, `MessageKind`, `POLICY`, `encode`,
  `decode`, `Limits`, `MessageError`, `Reason`; message classes `ZoneSensors`,
  `LineSensors`, `CrackEstimate`, `ZoneCommand`, `LineCommand`, `ControllerStatus`,
  `Decision`, `Metrics`; camera frames `Frame`, `FrameMeta` (`encode_frame`, `decode_frame`).
- Control law (pure, replayable): `load_controller_config` -> `ControllerConfig`,
  `ControlLaw` (``initial_state`` / ``step``), `Inputs`, `LinePredictor` (the drying model
  the supervisor runs; sim_line physics), `replay`.
- Nodes (asyncio, aiomqtt): `ControllerDaemon` / `run_daemon`, `run_vision_node` with
  `SurfaceEstimator`, `run_sim_line` (the virtual line as an MQTT plant), `run_demo`
  (open vs closed loop with a report).
- Clocks shared by the nodes: `SystemClock`, `ScaledClock` (accelerated real time),
  `LockstepClock` (simulated time that waits for every node), `FakeClock` (tests).
"""

import importlib
from typing import Any

from ._frames import Frame, FrameMeta, decode_frame, encode_frame
from ._messages import (POLICY, ControllerStatus, CrackEstimate, Decision, Limits, LineCommand, LineSensors,
                        Message, MessageError, MessageKind, Metrics, Reason, Topics, ZoneCommand, ZoneSensors,
                        decode, encode, parse_topic)
from ._mqtt import FakeClock, LockstepClock, ScaledClock, SystemClock

#: imported on first use (PEP 562): the law, the nodes and the demo pull in scipy, pandas,
#: sim_line and aiomqtt, which ``mudcrack --help`` and message handling do not need
_LAZY = {
    "ControllerConfig": "._config", "load_controller_config": "._config",
    "ControllerDaemon": "._daemon", "run_daemon": "._daemon", "run_demo": "._demo",
    "ControlLaw": "._law", "Inputs": "._law", "replay": "._law", "LinePredictor": "._predictor",
    "run_sim_line": "._sim_node", "SurfaceEstimator": "._vision_estimate", "run_vision_node": "._vision_node",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'controller' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "POLICY", "ControlLaw", "ControllerConfig", "ControllerDaemon", "ControllerStatus", "CrackEstimate", "Decision",
    "FakeClock", "Frame", "FrameMeta", "Inputs", "Limits", "LineCommand", "LinePredictor", "LineSensors",
    "LockstepClock", "Message", "MessageError", "MessageKind", "Metrics", "Reason", "ScaledClock", "SurfaceEstimator",
    "SystemClock", "Topics", "ZoneCommand", "ZoneSensors", "decode", "decode_frame", "encode", "encode_frame",
    "load_controller_config", "parse_topic", "replay", "run_daemon", "run_demo", "run_sim_line", "run_vision_node",
]
