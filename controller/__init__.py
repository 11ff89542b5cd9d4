"""controller: the MQTT side of mudcrack (messages now; the daemon and control law follow).

Public API so far:

- `Topics`, `parse_topic`, `MessageKind`, `POLICY`: the topic tree ``mudcrack/<line_id>/...``
  with QoS / retain / maximum age per message kind.
- `encode`, `decode`, `Limits`, `MessageError`, `Reason`: JSON payloads with schema version,
  timestamp and units in the field names; every received payload is validated (size, JSON,
  schema, keys, types, ranges, age, topic) and rejected with a reason code.
- Message classes `ZoneSensors`, `LineSensors`, `CrackEstimate`, `ZoneCommand`, `LineCommand`,
  `ControllerStatus`, `Decision`, `Metrics`; camera frames `Frame`, `FrameMeta`
  (`encode_frame`, `decode_frame`). See docs/mqtt.md.
"""

from ._frames import Frame, FrameMeta, decode_frame, encode_frame
from ._messages import (POLICY, ControllerStatus, CrackEstimate, Decision, Limits, LineCommand, LineSensors,
                        Message, MessageError, MessageKind, Metrics, Reason, Topics, ZoneCommand, ZoneSensors,
                        decode, encode, parse_topic)

__all__ = [
    "POLICY", "ControllerStatus", "CrackEstimate", "Decision", "Frame", "FrameMeta", "Limits", "LineCommand",
    "LineSensors", "Message", "MessageError", "MessageKind", "Metrics", "Reason", "Topics", "ZoneCommand",
    "ZoneSensors", "decode", "decode_frame", "encode", "encode_frame", "parse_topic",
]
