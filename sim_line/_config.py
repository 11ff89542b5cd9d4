"""Configuration schemas of the virtual line: slurry, lab sample, pilot line.

Values live in ``configs/*.yaml`` (each constant with its source in a comment); these
frozen dataclasses only name, type and bound them. Load with `load_slurry`,
`load_lab`, `load_line` (validated, unknown keys are errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from ._schema import ConfigError, bounded, check_fields, load

__all__ = [
    "ActuatorConfig",
    "CameraConfig",
    "Component",
    "CoaterConfig",
    "DryerConfig",
    "FilmModel",
    "LabConfig",
    "LineConfig",
    "SlurryConfig",
    "SolventConfig",
    "ZoneConfig",
    "load_lab",
    "load_line",
    "load_slurry",
    "default_config_dir",
]


def default_config_dir() -> Path:
    """The ``configs/`` folder shipped with mudcrack (inside the installed package data)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "lab_ambient.yaml").is_file():
            return candidate
    raise ConfigError(f"{here}: cannot find the default configs folder (lab_ambient.yaml)")


@dataclass(frozen=True, kw_only=True)
class Component:
    """One solid component of the slurry."""

    name: str
    mass_fraction_of_solids: float = bounded(lo=0.0, hi=1.0)
    density_g_cm3: float = bounded(gt=0.0, hi=25.0)
    active: bool = False


@dataclass(frozen=True, kw_only=True)
class SolventConfig:
    """Solvent properties (NMP by default). See configs/slurry/*.yaml for sources."""

    name: str
    molar_mass_g_mol: float = bounded(gt=0.0, hi=1000.0)
    density_kg_m3: float = bounded(gt=100.0, hi=3000.0)
    antoine_a: float = bounded(gt=0.0, hi=100.0)
    antoine_b_k: float = bounded(gt=0.0, hi=1e5)
    antoine_c_k: float = bounded(lo=-500.0, hi=500.0)
    surface_tension_mn_m_at_25c: float = bounded(gt=0.0, hi=100.0)
    surface_tension_slope_mn_m_per_k: float = bounded(lo=-1.0, hi=0.0)
    heat_of_vaporization_kj_mol_at_40c: float = bounded(gt=0.0, hi=200.0)
    heat_of_vaporization_slope_kj_mol_per_k: float = bounded(lo=-1.0, hi=0.0)
    viscosity_mpa_s: float = bounded(gt=0.0, hi=1000.0)
    heat_capacity_j_kg_k: float = bounded(gt=0.0, hi=10000.0)
    vapour_diffusivity_in_air_m2_s: float = bounded(gt=0.0, hi=1e-3)
    lewis_number_in_air: float = bounded(gt=0.0, hi=20.0)


@dataclass(frozen=True, kw_only=True)
class FilmModel:
    """Fitted parameters of the film drying and cracking model (see science notes)."""

    consolidated_packing_fraction: float = bounded(gt=0.2, hi=0.74)
    settling_supernatant_fraction: float = bounded(lo=0.0, hi=1.0)
    settling_threshold_um: float = bounded(lo=0.0)
    consolidation_supernatant_um: float = bounded(lo=0.0)
    supernatant_flux_factor: float = bounded(gt=0.0, hi=1.0)
    residual_supernatant_um: float = bounded(lo=0.0)
    pore_diffusivity_factor: float = bounded(gt=0.0, hi=1.0)
    stress_buildup_depth_um: float = bounded(gt=0.0)
    stress_relaxation_time_s: float = bounded(gt=0.0)
    stress_retention_speed_um_s: float = bounded(gt=0.0)
    stress_retention_exponent: float = bounded(gt=0.0, hi=5.0)
    residual_stress_fraction: float = bounded(lo=0.0, hi=1.0)
    fracture_toughness_pa_m05: float = bounded(gt=0.0)
    channel_crack_factor: float = bounded(gt=0.0)
    crack_spacing_per_thickness: float = bounded(gt=0.0)
    cif_max: float = bounded(gt=0.0, hi=0.9)
    cif_thickness_exponent: float = bounded(gt=0.0)
    crack_growth_end_depth_fraction: float = bounded(gt=0.0, hi=1.0)
    crack_growth_end_depth_um: float = bounded(gt=0.0)
    surface_cif_ratio: float = bounded(gt=0.0, hi=5.0)
    base_cif_ratio: float = bounded(lo=0.0, hi=1.0)
    precursor_opening_at_onset_um: float = bounded(lo=0.0, hi=100.0, doc="precursor opening (both sides) at the onset")
    precursor_localisation_solvent_um: float = bounded(gt=0.0, hi=100.0, doc="solvent lost per e-fold of the precursor")
    precursor_band_um: float = bounded(gt=0.0, hi=1000.0,
                                       doc="width w of the precursor's strain band: tanh(d / w) ramp across a crack")
    delamination_delay_min_at_large_thickness: float = bounded(lo=0.0)
    delamination_delay_excess_min: float = bounded(lo=0.0)
    delamination_delay_thickness_scale_um: float = bounded(gt=0.0)
    delamination_growth_min: float = bounded(gt=0.0)
    delamination_max_fraction: float = bounded(lo=0.0, hi=1.0)
    delamination_gap_um: float = bounded(lo=0.0)
    bubble_stress_concentration: float = bounded(lo=1.0, hi=10.0)
    bubble_cif_gain: float = bounded(lo=1.0, hi=10.0)
    bubble_growth_fraction: float = bounded(lo=0.0, hi=5.0)
    bubble_growth_min: float = bounded(gt=0.0)

    #: keys of earlier versions and what replaced them (named in the error)
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "precursor_opening_um": "the precursor localises as the film's forecast critical point approaches now: set "
                                "precursor_opening_at_onset_um (the opening when the gap forms, both sides, um; 20 "
                                "fits the published DVC) and precursor_localisation_solvent_um (sim_line/_physics.py)",
        "precursor_start_stress_fraction": "the precursor no longer follows the current stress: it localises as the "
                                           "forecast stress approaches the cracking stress; set "
                                           "precursor_localisation_solvent_um (solvent lost per e-fold of the opening, um)",
        "precursor_exponent": "the precursor no longer follows the current stress: it localises as the forecast stress "
                              "approaches the cracking stress; set precursor_localisation_solvent_um "
                              "(solvent lost per e-fold of the opening, um)",
    }


@dataclass(frozen=True, kw_only=True)
class SlurryConfig:
    """A slurry formulation with the constants the drying physics needs."""

    name: str
    solids_mass_fraction: float = bounded(gt=0.0, hi=0.95)
    components: tuple[Component, ...] = ()
    particle_diameter_min_um: float = bounded(gt=0.0, hi=1000.0)
    particle_diameter_max_um: float = bounded(gt=0.0, hi=1000.0)
    solvent: SolventConfig | None = None
    film: FilmModel | None = None
    solids_heat_capacity_j_kg_k: float = bounded(900.0, gt=0.0, hi=10000.0)

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.components:
            raise ConfigError("components: expected at least one solid component, found none")
        total = sum(c.mass_fraction_of_solids for c in self.components)
        if abs(total - 1.0) > 1e-3:
            raise ConfigError(f"components: expected mass fractions of the solids summing to 1, found {total:.4f}")
        if not any(c.active for c in self.components):
            raise ConfigError("components: expected one component marked active: true, found none")
        if self.particle_diameter_max_um < self.particle_diameter_min_um:
            raise ConfigError(
                "particle_diameter_max_um: expected >= particle_diameter_min_um "
                f"({self.particle_diameter_min_um}), found {self.particle_diameter_max_um}"
            )
        if self.solvent is None:
            raise ConfigError("solvent: required key is missing")
        if self.film is None:
            raise ConfigError("film: required key is missing")

    @property
    def solids_density_kg_m3(self) -> float:
        """Density of the mixed solids (volume-additive), kg/m^3."""
        return 1000.0 / sum(c.mass_fraction_of_solids / c.density_g_cm3 for c in self.components)

    @property
    def solids_volume_fraction(self) -> float:
        """Volume fraction of solids in the wet slurry, 0-1."""
        v_s = self.solids_mass_fraction / self.solids_density_kg_m3
        v_l = (1.0 - self.solids_mass_fraction) / self.solvent.density_kg_m3
        return v_s / (v_s + v_l)

    @property
    def active_volume_share(self) -> float:
        """Share of the solids volume taken by the active material, 0-1."""
        vols = [c.mass_fraction_of_solids / c.density_g_cm3 for c in self.components]
        act = [v for v, c in zip(vols, self.components) if c.active]
        return sum(act) / sum(vols)

    @property
    def particle_diameter_mean_um(self) -> float:
        """Mean active particle diameter, um."""
        return 0.5 * (self.particle_diameter_min_um + self.particle_diameter_max_um)


@dataclass(frozen=True, kw_only=True)
class LabConfig:
    """A stationary lab sample (the published pin samples) drying in still air."""

    slurry: Path
    air_temperature_c: float = bounded(lo=-20.0, hi=200.0)
    beam_heating_c: float = bounded(lo=0.0, hi=20.0)
    heat_transfer_w_m2k: float = bounded(gt=0.0, hi=1000.0)
    mass_transfer_m_s: float = bounded(gt=0.0, hi=1.0)
    pin_diameter_mm: float = bounded(gt=0.0, hi=100.0)
    edge_flux_factor: float = bounded(lo=0.0, hi=100.0)
    enclosure_vapour_fraction_max: float = bounded(lo=0.0, hi=0.99)
    enclosure_time_constant_min: float = bounded(gt=0.0)
    wet_transfer_ratio: tuple[tuple[float, float], ...] = ((300.0, 1.0),)
    substrate_heat_capacity_j_m2k: float = bounded(lo=0.0)
    bubble_radius_um: float = bounded(0.0, lo=0.0)
    time_step_s: float = bounded(5.0, gt=0.0, hi=60.0)
    output_interval_s: float = bounded(30.0, gt=0.0, hi=600.0)
    duration_min: float = bounded(120.0, gt=0.0, hi=1440.0)

    def __post_init__(self) -> None:
        check_fields(self)
        for i, (gap, ratio) in enumerate(self.wet_transfer_ratio):
            if not (0.0 < gap and 0.1 <= ratio <= 1.5):
                raise ConfigError(
                    f"wet_transfer_ratio[{i}]: expected [gap_um > 0, ratio in 0.1-1.5], found [{gap}, {ratio}]"
                )
        gaps = sorted(g for g, _ in self.wet_transfer_ratio)
        wet = [g * r for g, r in sorted(self.wet_transfer_ratio)]
        if len(set(gaps)) != len(gaps) or any(b <= a for a, b in zip(wet, wet[1:])):
            raise ConfigError("wet_transfer_ratio: expected distinct gaps whose wet thickness (gap x ratio) rises with the gap")

    def wet_thickness_um(self, gap_um: float) -> float:
        """Wet film thickness left by a doctor blade with gap ``gap_um``, um."""
        import numpy as np

        table = sorted(self.wet_transfer_ratio)
        gaps = [g for g, _ in table]
        ratios = [r for _, r in table]
        return float(gap_um * np.interp(gap_um, gaps, ratios))


@dataclass(frozen=True, kw_only=True)
class ZoneConfig:
    """One dryer zone (impingement nozzles above and below the web).

    ``airflow_m3_h`` is the nozzle (supply fan) airflow, mostly recirculated;
    ``fresh_air_m3_h`` is the zone's exhaust, replaced by fresh air heated to the zone
    temperature: it carries the solvent vapour away (zone vapour concentration = solvent
    evaporated in the zone / fresh air) and is its own actuator (exhaust fan / damper), as
    on real solvent dryers, where it is set to keep the vapour below a fraction of the
    lower explosive limit.
    """

    name: str
    length_m: float = bounded(gt=0.0, hi=50.0)
    temperature_c: float = bounded(lo=-20.0, hi=300.0)
    airflow_m3_h: float = bounded(lo=0.0, hi=1e6)
    fresh_air_m3_h: float = bounded(gt=0.0, hi=1e6)
    temperature_limits_c: tuple[float, float] = (20.0, 150.0)
    airflow_limits_m3_h: tuple[float, float] = (0.0, 5000.0)
    fresh_air_limits_m3_h: tuple[float, float] = (50.0, 5000.0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.fresh_air_limits_m3_h[0] <= 0:
            raise ConfigError(f"fresh_air_limits_m3_h: expected a positive low limit (the exhaust never closes: "
                              f"the zone would fill with solvent vapour), found {self.fresh_air_limits_m3_h[0]}")
        for key, (lo, hi), value in (
            ("temperature", self.temperature_limits_c, self.temperature_c),
            ("airflow", self.airflow_limits_m3_h, self.airflow_m3_h),
            ("fresh_air", self.fresh_air_limits_m3_h, self.fresh_air_m3_h),
        ):
            unit = "c" if key == "temperature" else "m3_h"
            if not lo < hi:
                raise ConfigError(f"{key}_limits_{unit}: expected [low, high] with low < high, found [{lo}, {hi}]")
            if not lo <= value <= hi:
                raise ConfigError(f"{key}_{unit}: expected a value within {key}_limits_{unit} [{lo}, {hi}], found {value}")


@dataclass(frozen=True, kw_only=True)
class ActuatorConfig:
    """First-order lag and rate limits of the zone heaters, nozzle fans and exhausts."""

    temperature_time_constant_s: float = bounded(gt=0.0, hi=3600.0)
    temperature_rate_limit_c_per_s: float = bounded(gt=0.0, hi=100.0)
    airflow_time_constant_s: float = bounded(gt=0.0, hi=3600.0)
    airflow_rate_limit_m3_h_per_s: float = bounded(gt=0.0, hi=1e5)
    fresh_air_time_constant_s: float = bounded(gt=0.0, hi=3600.0)
    fresh_air_rate_limit_m3_h_per_s: float = bounded(gt=0.0, hi=1e5)


@dataclass(frozen=True, kw_only=True)
class DryerConfig:
    """The dryer: zones, nozzle heat transfer and actuator dynamics."""

    entry_m: float = bounded(lo=0.0, hi=100.0)
    zones: tuple[ZoneConfig, ...] = ()
    heat_transfer_ref_w_m2k: float = bounded(60.0, gt=0.0, hi=1000.0)
    airflow_ref_m3_h: float = bounded(1500.0, gt=0.0)
    heat_transfer_exponent: float = bounded(0.5, lo=0.0, hi=1.5)
    heat_transfer_min_w_m2k: float = bounded(5.0, gt=0.0, hi=100.0)
    bottom_side_fraction: float = bounded(0.5, lo=0.0, hi=1.0)
    zone_air_volume_m3_per_m: float = bounded(0.8, gt=0.0, hi=100.0)
    actuators: ActuatorConfig | None = None

    #: keys of earlier versions and what replaced them (named in the error)
    REMOVED_KEYS: ClassVar[dict[str, str]] = {
        "fresh_air_fraction": "each zone has its own exhaust now: set zones[].fresh_air_m3_h (e.g. 0.3 x airflow_m3_h "
                              "for the old default) and zones[].fresh_air_limits_m3_h",
    }

    def __post_init__(self) -> None:
        check_fields(self)
        if not 1 <= len(self.zones) <= 12:
            raise ConfigError(f"zones: expected 1 to 12 dryer zones, found {len(self.zones)}")
        names = [z.name for z in self.zones]
        if len(set(names)) != len(names):
            raise ConfigError(f"zones: expected unique zone names, found {names}")
        if self.actuators is None:
            raise ConfigError("actuators: required key is missing")

    @property
    def length_m(self) -> float:
        """Total heated length, m."""
        return sum(z.length_m for z in self.zones)


@dataclass(frozen=True, kw_only=True)
class CoaterConfig:
    """Slot-die coater at the start of the line."""

    wet_thickness_um: float = bounded(gt=0.0, hi=2000.0)
    wet_thickness_noise_um: float = bounded(0.0, lo=0.0, hi=100.0)


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    """The moving web (current collector foil)."""

    speed_m_min: float = bounded(gt=0.0, hi=200.0)
    speed_limits_m_min: tuple[float, float] = (0.5, 20.0)
    width_m: float = bounded(0.3, gt=0.0, hi=5.0)
    substrate_heat_capacity_j_m2k: float = bounded(36.0, lo=0.0)

    def __post_init__(self) -> None:
        check_fields(self)
        lo, hi = self.speed_limits_m_min
        if not lo <= self.speed_m_min <= hi:
            raise ConfigError(f"speed_m_min: expected within speed_limits_m_min [{lo}, {hi}], found {self.speed_m_min}")


@dataclass(frozen=True, kw_only=True)
class CameraConfig:
    """Surface camera looking at the coating."""

    position_m: float = bounded(lo=0.0)
    um_per_px: float = bounded(gt=0.0, hi=1000.0)
    frame_shape_px: tuple[int, int] = (512, 512)
    frame_interval_s: float = bounded(2.0, gt=0.0, hi=3600.0)
    bit_depth: Literal[8, 16] = 8
    noise_std: float = bounded(0.01, lo=0.0, hi=0.5)


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """Numerics of the line simulation."""

    parcel_spacing_m: float = bounded(0.05, gt=0.0, hi=10.0)
    max_time_step_s: float = bounded(1.0, gt=0.0, hi=60.0)
    post_dryer_m: float = bounded(1.0, lo=0.0, hi=100.0)


@dataclass(frozen=True, kw_only=True)
class LineConfig:
    """A roll-to-roll coating line: coater, web, dryer zones, camera."""

    line_id: str
    slurry: Path
    ambient_temperature_c: float = bounded(lo=-20.0, hi=60.0)
    web: WebConfig | None = None
    coater: CoaterConfig | None = None
    dryer: DryerConfig | None = None
    camera: CameraConfig | None = None
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    exit_residual_solvent_limit_g_m2: float = bounded(1.0, gt=0.0)

    def __post_init__(self) -> None:
        check_fields(self)
        for key in ("web", "coater", "dryer", "camera"):
            if getattr(self, key) is None:
                raise ConfigError(f"{key}: required key is missing")
        import re

        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.line_id):
            raise ConfigError(f"line_id: expected 1-64 letters, digits, '-' or '_' (an MQTT topic level), found {self.line_id!r}")

    @property
    def line_length_m(self) -> float:
        """Coater to the end of the simulated web (dryer exit + post-dryer), m."""
        return self.dryer.entry_m + self.dryer.length_m + self.simulation.post_dryer_m


def load_slurry(path: str | Path) -> SlurryConfig:
    """Load and validate a slurry YAML file."""
    return load(SlurryConfig, path)


def load_lab(path: str | Path | None = None) -> tuple[LabConfig, SlurryConfig]:
    """Load a lab-sample YAML file and the slurry file it names (defaults: lab_ambient.yaml)."""
    path = Path(path) if path is not None else default_config_dir() / "lab_ambient.yaml"
    lab = load(LabConfig, path)
    return lab, load_slurry(lab.slurry)


def load_line(path: str | Path | None = None) -> tuple[LineConfig, SlurryConfig]:
    """Load a line YAML file and the slurry file it names (defaults: line.yaml)."""
    path = Path(path) if path is not None else default_config_dir() / "line.yaml"
    line = load(LineConfig, path)
    return line, load_slurry(line.slurry)
