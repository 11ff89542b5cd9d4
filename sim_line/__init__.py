"""sim_line: the virtual coating line (drying physics, renderers with ground truth)."""

from ._ct_series import CTSeries, ct_scan_series
from ._config import LabConfig, LineConfig, SlurryConfig, load_lab, load_line, load_slurry
from ._dvc_truth import CrackDisplacement, crack_displacement_truth
from ._lab import LAB_COLUMNS, LabRun, dry_lab_sample, simulate_lab
from ._line import Line, LineReadings, ZoneReading, ZoneSetpoint
from ._pattern import CrackPattern, crack_pattern
from ._physics import capillary_stress_max_kpa, critical_thickness_um
from ._schema import ConfigError
from ._snapshot import DryingPhase, FilmSnapshot
from ._surface import SurfaceFrame, render_surface
from ._volume import VolumeLabel, VolumeRender, render_volume

__all__ = [
    "CTSeries",
    "ct_scan_series",
    "CrackDisplacement",
    "crack_displacement_truth",
    "CrackPattern",
    "Line",
    "LineReadings",
    "SurfaceFrame",
    "VolumeLabel",
    "VolumeRender",
    "ZoneReading",
    "ZoneSetpoint",
    "crack_pattern",
    "render_surface",
    "render_volume",
    "LAB_COLUMNS",
    "ConfigError",
    "DryingPhase",
    "FilmSnapshot",
    "LabConfig",
    "LabRun",
    "LineConfig",
    "SlurryConfig",
    "capillary_stress_max_kpa",
    "critical_thickness_um",
    "dry_lab_sample",
    "load_lab",
    "load_line",
    "load_slurry",
    "simulate_lab",
]
