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

from ._config import ControllerConfig, load_controller_config
from ._daemon import ControllerDaemon, run_daemon
from ._demo import run_demo
from ._frames import Frame, FrameMeta, decode_frame, encode_frame
from ._law import ControlLaw, Inputs, replay
from ._messages import (POLICY, ControllerStatus, CrackEstimate, Decision, Limits, LineCommand, LineSensors,
                        Message, MessageError, MessageKind, Metrics, Reason, Topics, ZoneCommand, ZoneSensors,
                        decode, encode, parse_topic)
from ._mqtt import FakeClock, LockstepClock, ScaledClock, SystemClock
from ._predictor import LinePredictor
from ._sim_node import run_sim_line
from ._vision_estimate import SurfaceEstimator
from ._vision_node import run_vision_node

__all__ = [
    "POLICY", "ControlLaw", "ControllerConfig", "ControllerDaemon", "ControllerStatus", "CrackEstimate", "Decision",
    "FakeClock", "Frame", "FrameMeta", "Inputs", "Limits", "LineCommand", "LinePredictor", "LineSensors",
    "LockstepClock", "Message", "MessageError", "MessageKind", "Metrics", "Reason", "ScaledClock", "SurfaceEstimator",
    "SystemClock", "Topics", "ZoneCommand", "ZoneSensors", "decode", "decode_frame", "encode", "encode_frame",
    "load_controller_config", "parse_topic", "replay", "run_daemon", "run_demo", "run_sim_line", "run_vision_node",
]
