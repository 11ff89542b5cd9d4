"""Ground-truth inputs of the control law from a virtual line (HIL wiring for tests and benchmarks).

The daemon's job in miniature, without MQTT: the readings of a `sim_line.Line` and the
camera's view as validated `Inputs`. The surface estimate comes from the simulator's ground
truth at the camera instead of the vision node (which is tested on rendered frames
elsewhere): a cracked parcel is an onset (score 8), a precursor opening above 1 um scores
over the alarm threshold (6.5), otherwise 1.
"""

from __future__ import annotations

import sim_line

from ._law_inputs import Inputs, Reading, SurfaceEstimate, ZoneMeasurement

__all__ = ["line_inputs", "surface_truth"]


def surface_truth(snapshot: sim_line.FilmSnapshot) -> tuple[float, bool, float]:
    """``(score, onset, surface_cif)`` of the parcel under the camera, from the simulator's truth."""
    score = 8.0 if snapshot.cracked else (6.5 if snapshot.precursor_opening_um > 1.0 else 1.0)
    return score, bool(snapshot.cracked), float(snapshot.cif_2d_top)


def line_inputs(line: sim_line.Line, readings: sim_line.LineReadings) -> Inputs:
    """The law's `Inputs` at the time of ``readings`` (zones with their solvent load, speed, thickness, camera)."""
    r = readings
    zones = {z.name: ZoneMeasurement(z.temperature_c, z.airflow_m3_h, r.t_s, r.t_s, z.solvent_concentration_g_m3,
                                     z.fresh_air_m3_h) for z in r.zones}
    score, onset, cif = surface_truth(line.camera_snapshot())
    return Inputs(zones, Reading(r.web_speed_m_min, r.t_s), Reading(r.wet_thickness_um, r.t_s),
                  SurfaceEstimate(r.t_s, score, onset, cif))
