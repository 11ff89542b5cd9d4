"""Thermophysical properties of the solvent and of air (pure functions, SI units)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._config import SolventConfig

__all__ = [
    "AIR_CP_J_KG_K",
    "GAS_CONSTANT_J_MOL_K",
    "air_density_kg_m3",
    "heat_of_vaporization_j_kg",
    "saturation_pressure_pa",
    "surface_tension_n_m",
    "vapour_density_kg_m3",
]

GAS_CONSTANT_J_MOL_K = 8.314462618
AIR_CP_J_KG_K = 1007.0
AIR_MOLAR_MASS_KG_MOL = 0.028965
ATMOSPHERE_PA = 101325.0
KELVIN = 273.15


def saturation_pressure_pa(solvent: SolventConfig, temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Vapour pressure from the Antoine fit ``ln(P/Pa) = A - B / (T/K - C)``, Pa.

    References
    ----------
    Landolt-Boernstein Antoine parameters for NMP (as packaged in the `chemicals`
    library); 1.29 kPa at 80 C, 7.7 kPa at 120 C.
    """
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    return np.exp(solvent.antoine_a - solvent.antoine_b_k / (t_k - solvent.antoine_c_k))


def dln_psat_dt_per_k(solvent: SolventConfig, temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Derivative of ln(saturation pressure) with temperature, 1/K."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    return solvent.antoine_b_k / (t_k - solvent.antoine_c_k) ** 2


def vapour_density_kg_m3(solvent: SolventConfig, pressure_pa: ArrayLike, temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Mass concentration of solvent vapour at partial pressure ``pressure_pa`` (ideal gas), kg/m^3."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    return np.asarray(pressure_pa, dtype=float) * solvent.molar_mass_g_mol * 1e-3 / (GAS_CONSTANT_J_MOL_K * t_k)


def heat_of_vaporization_j_kg(solvent: SolventConfig, temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Latent heat, linear in temperature through the tabulated 40/80/120 C values, J/kg."""
    t = np.asarray(temperature_c, dtype=float)
    kj_mol = solvent.heat_of_vaporization_kj_mol_at_40c + solvent.heat_of_vaporization_slope_kj_mol_per_k * (t - 40.0)
    return np.maximum(kj_mol, 1.0) * 1e3 / (solvent.molar_mass_g_mol * 1e-3)


def surface_tension_n_m(solvent: SolventConfig, temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Surface tension, linear in temperature about its 25 C value, N/m."""
    t = np.asarray(temperature_c, dtype=float)
    mn_m = solvent.surface_tension_mn_m_at_25c + solvent.surface_tension_slope_mn_m_per_k * (t - 25.0)
    return np.maximum(mn_m, 1.0) * 1e-3


def air_density_kg_m3(temperature_c: ArrayLike) -> NDArray[np.float64]:
    """Density of dry air at one atmosphere, kg/m^3."""
    t_k = np.asarray(temperature_c, dtype=float) + KELVIN
    return ATMOSPHERE_PA * AIR_MOLAR_MASS_KG_MOL / (GAS_CONSTANT_J_MOL_K * t_k)


def mass_transfer_from_heat_m_s(
    solvent: SolventConfig, heat_transfer_w_m2k: ArrayLike, air_temperature_c: ArrayLike
) -> NDArray[np.float64]:
    """Mass-transfer coefficient from the heat-transfer coefficient (Chilton-Colburn analogy).

    ``beta = h / (rho_air c_p) * Le^(-2/3)``, m/s. With Le = 3.1 this reproduces the
    constant-rate fluxes tabulated in science.md (e.g. 0.69 g/m^2 s at 80 C, h = 50).
    """
    rho = air_density_kg_m3(air_temperature_c)
    return np.asarray(heat_transfer_w_m2k, dtype=float) / (rho * AIR_CP_J_KG_K) * solvent.lewis_number_in_air ** (-2.0 / 3.0)
