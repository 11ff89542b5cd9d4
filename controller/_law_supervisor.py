"""Supervisory layer of the control law: judge recipes with the drying model, pick moves.

`_Supervisor` is a mixin of `controller._law.ControlLaw` (see the "Supervisor" section of
that module's docstring); it reads ``config``, ``predictor``, ``_names``, ``_nominal_t`` and
``_nominal_q`` set by `ControlLaw.__init__`. Whole-recipe re-planning and the web speed are
in `controller._law_replan`, the judged recipes and the decision texts in
`controller._law_judged`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import product

import numpy as np
from numpy.typing import NDArray

from ._config import ControllerConfig
from ._law_inputs import ExhaustControl, F, Inputs, LineConditions, PlanPrediction, Predictor
from ._law_judged import _change_text, _changes, _concat, _index, _Judged, _risk_text, _take, lel_g_m3
from ._law_loops import LoopState
from ._law_replan import _Replanner
from ._law_state import Action, Decision, LawState, Reason

__all__ = ["lel_g_m3"]


class _Supervisor(_Replanner):
    """Supervisor methods of `controller._law.ControlLaw` (a mixin; no state of its own)."""

    config: ControllerConfig
    predictor: Predictor
    _names: tuple[str, ...]
    _nominal_t: F
    _nominal_q: F
    _exhaust: ExhaustControl

    def _conditions(self, inputs: Inputs) -> LineConditions:
        ms = [inputs.zones[n] for n in self._names]
        conc = [m.solvent_concentration_g_m3 for m in ms]
        fresh = [m.fresh_air_m3_h for m in ms]
        return LineConditions(
            web_speed_m_min=inputs.web_speed_m_min.value,  # type: ignore[union-attr]
            wet_thickness_um=inputs.wet_thickness_um.value,  # type: ignore[union-attr]
            temperature_c=tuple(m.temperature_c for m in ms),
            airflow_m3_h=tuple(m.airflow_m3_h for m in ms),
            solvent_concentration_g_m3=None if any(c is None for c in conc) else tuple(conc),  # type: ignore[arg-type]
            fresh_air_m3_h=None if any(f is None for f in fresh) else tuple(fresh),  # type: ignore[arg-type]
        )

    def _judge(self, cond: LineConditions, temps: F, flows: F) -> _Judged:
        """Predict K recipes for each model variant and keep the worst case per recipe.

        Variants: the measured wet thickness (first: the plan's critical point), +- the
        thickness uncertainty, and every zone's air +- the temperature uncertainty (heater
        offsets; the stress at a critical point near a zone boundary can jump with 1 C).
        """
        sup = self.config.supervisor
        du, dt_ = sup.thickness_uncertainty_um, sup.temperature_uncertainty_c
        wet0 = cond.wet_thickness_um
        variants = [(wet0, 0.0)] + ([(wet0 - du, 0.0), (wet0 + du, 0.0)] if du > 0 else []) \
            + ([(wet0, -dt_), (wet0, dt_)] if dt_ > 0 else [])
        wets = np.maximum(np.array([w for w, _ in variants]), 1.0)
        offsets = np.array([o for _, o in variants])
        k, v = temps.shape[0], len(variants)
        t_all = (temps[:, None, :] + offsets[None, :, None]).reshape(k * v, -1)
        p = self.predictor.predict(cond, temperature_c=t_all, airflow_m3_h=np.repeat(flows, v, axis=0),
                                   wet_thickness_um=np.tile(wets, k), exhaust=self._exhaust)
        ratio = np.asarray(p.peak_stress_ratio, dtype=float).reshape(k, v)
        resid = np.nan_to_num(np.asarray(p.exit_residual_solvent_g_m2, dtype=float), nan=np.inf).reshape(k, v)
        cif = np.asarray(p.surface_cif, dtype=float).reshape(k, v)
        lel = self._lel_fraction(p.zone_solvent_g_m3, t_all).reshape(k, v).max(axis=1)
        fresh = None if p.zone_fresh_air_m3_h is None else np.asarray(p.zone_fresh_air_m3_h, dtype=float).reshape(k, v, -1).max(axis=1)
        worst = np.argmax(np.nan_to_num(ratio, nan=np.inf), axis=1)
        mid = 0
        plans = []
        for i in range(k):
            w, c = i * v + worst[i], i * v + mid
            plans.append(PlanPrediction(
                critical_point_m=float(p.critical_point_m[c]), critical_zone=self._zone_name(p.critical_zone[c]),
                peak_stress_ratio=float(ratio[i].max()), peak_stress_m=float(p.peak_stress_m[w]),
                peak_zone=self._zone_name(p.peak_zone[w]), dry_position_m=float(np.max(p.dry_position_m[i * v:(i + 1) * v])),
                exit_residual_solvent_g_m2=float(resid[i].max()), crack_probability=float(np.max(p.crack_probability[i * v:(i + 1) * v])),
                surface_cif=float(cif[i].max()), solvent_lel_fraction=float(lel[i]),
                zone_fresh_air_m3_h=() if fresh is None else tuple(float(f) for f in fresh[i]),
            ))
        dry_at = np.asarray(p.dry_position_m, dtype=float).reshape(k, v).max(axis=1)  # NaN if any variant is wet
        gap = np.where(np.isfinite(dry_at), self._dryer_exit_m() - dry_at, -1.0)
        return _Judged(temps, flows, ratio.max(axis=1), resid.max(axis=1), gap, cif.max(axis=1), lel, tuple(plans))

    def _dryer_exit_m(self) -> float:
        return self.config.zone_start_m()[-1] + self.config.zones[-1].length_m

    def _dry(self, j: _Judged, exit_limit: float) -> NDArray[np.bool_]:
        """Predicted dry enough: residual below the limit and dry ``exit_dry_margin_m`` before the exit."""
        margin = self.config.supervisor.exit_dry_margin_m
        return (j.residual <= exit_limit) & ((margin <= 0) | (j.dry_gap_m >= margin))

    @staticmethod
    def _wetness(j: _Judged) -> F:
        """Orders recipes from dry early (low) to wet (high): residual, then the dry point's distance to the exit."""
        return j.residual - 1e-3 * j.dry_gap_m

    def _lel_fraction(self, zone_solvent_g_m3: F | None, temps: F) -> F:
        """(K,) highest ratio of zone solvent vapour to the lower explosive limit at the zone's air temperature."""
        if zone_solvent_g_m3 is None:
            return np.zeros(temps.shape[0])
        return np.max(np.asarray(zone_solvent_g_m3, dtype=float) / lel_g_m3(self.config, temps), axis=1)

    def _zone_name(self, index: int) -> str | None:
        i = int(index)
        return self._names[i] if 0 <= i < len(self._names) else None

    def _objective(self, j: _Judged) -> F:
        target = self.config.supervisor.target_surface_cif
        return j.ratio if target == 0 else np.abs(j.surface_cif - target)

    def _supervise(self, state: LawState, inputs: Inputs, t_s: float, decisions: list[Decision]) -> LawState:
        sup = self.config.supervisor
        cond = self._conditions(inputs)
        targets_t = np.array([zs.target_temperature_c for zs in state.zones])
        targets_q = np.array([zs.target_airflow_m3_h for zs in state.zones])
        measured_t, measured_q = np.array(cond.temperature_c), np.array(cond.airflow_m3_h)
        measured_cond = cond
        target_speed = state.speed_target_m_min
        if target_speed is not None and abs(target_speed - cond.web_speed_m_min) > 0.02 * target_speed:
            # the plan runs at the target speed while the web still ramps: the measured zone loads belong
            # to the old speed, so the model uses its own (`controller._predictor` notes)
            cond = replace(cond, web_speed_m_min=target_speed, solvent_concentration_g_m3=None)
        try:
            if cond == measured_cond:
                both = self._judge(cond, np.stack([targets_t, measured_t]), np.stack([targets_q, measured_q]))
            else:
                both = _concat(self._judge(cond, targets_t[None], targets_q[None]),
                               self._judge(measured_cond, measured_t[None], measured_q[None]))
        except (ValueError, FloatingPointError) as exc:
            if state.hold_reason is not Reason.PREDICTOR_FAILED:
                decisions.append(Decision(t_s, Action.HOLD, Reason.PREDICTOR_FAILED,
                                          f"the drying model failed ({exc}); keeping the current targets"))
            return replace(state, hold_reason=Reason.PREDICTOR_FAILED)
        judged = _take(both, 0)
        plan, now = both.plans
        target = sup.target_surface_cif
        # -- risk: the model's view of the plan
        margin = state.model_margin
        if target == 0:
            pred_high = plan.peak_stress_ratio + margin >= sup.stress_ratio_up
            pred_low = plan.peak_stress_ratio + margin <= sup.stress_ratio_down
        else:
            pred_high = plan.surface_cif > target + sup.cif_band
            pred_low = plan.surface_cif < target
        # -- risk: what the camera / CT see (they see coating that passed the critical zone earlier)
        obs_high, obs_low, obs_reason = self._observed_risk(inputs, t_s)
        dead_s = self._dead_time_s(inputs)
        seen = self._seen(state, t_s, dead_s)
        obs_effective = obs_high and seen
        notes = []
        if obs_effective and not pred_high and margin < sup.model_margin_max:
            margin = min(margin + sup.model_margin_step, sup.model_margin_max)
            notes.append(f"observed crack risk the model did not predict: model margin now {margin:.2f}")
        if pred_high:
            cause = Reason.PREDICTED_STRESS if target == 0 else Reason.PREDICTED_CIF
        elif obs_effective:
            cause = obs_reason
        else:
            cause = state.risk_reason
        risk_high = pred_high or obs_effective or (state.risk_high and not (pred_low and obs_low))
        low = pred_low and obs_low
        low_since = (state.risk_low_since_s if state.risk_low_since_s is not None else t_s) if low else None
        state = replace(state, plan=plan, model_margin=margin, risk_high=risk_high,
                        risk_reason=cause if risk_high else None, risk_low_since_s=low_since)
        exit_limit = sup.exit_residual_solvent_limit_g_m2 - sup.exit_residual_margin_g_m2
        # the next move waits for the plant to reach the plan (or for the dead time at most)
        moved_ok = state.last_move_s is None or (t_s - state.last_move_s >= sup.lower_hold_s and (
            self._settled(state, inputs) or t_s - state.last_move_s >= dead_s))
        if plan.solvent_lel_fraction > self._lel_limit() and moved_ok:
            return self._move(state, cond, judged, t_s, decisions, "unload", Reason.SOLVENT_LOAD_HIGH, notes)
        plan_gap = float(judged.dry_gap_m[0])
        early_enough = sup.exit_dry_margin_m <= 0 or plan_gap >= sup.exit_dry_margin_m / 2.0
        if (plan.exit_residual_solvent_g_m2 > exit_limit or not early_enough) and moved_ok:
            return self._move(state, cond, judged, t_s, decisions, "dry", Reason.EXIT_WET, notes)
        now_dry = now.exit_residual_solvent_g_m2 <= sup.exit_residual_solvent_limit_g_m2
        if (risk_high and now_dry and moved_ok
                and (state.last_lower_s is None or t_s - state.last_lower_s >= sup.lower_hold_s)):
            return self._move(state, cond, judged, t_s, decisions, "lower", cause or Reason.PREDICTED_STRESS, notes,
                              observed_zone=self._site_zone(inputs))
        ws = self.config.web_speed
        if state.speed_target_m_min is not None and state.speed_target_m_min < ws.nominal_m_min - 1e-9:
            # below the production speed: the way back up comes before the way back to the nominal recipe
            if (low and moved_ok and t_s - low_since >= ws.raise_hold_s  # type: ignore[operator]
                    and (state.last_speed_s is None or t_s - state.last_speed_s >= ws.raise_hold_s)):
                moved = self._speed_move(state, cond, t_s, decisions, Reason.RISK_LOW, notes, down=False)
                if moved is not None:
                    return moved
                state = replace(state, last_speed_s=t_s)
                return self._hold(state, t_s, decisions, Reason.RAISE_BLOCKED,
                                  "risk low, but no recipe is predicted crack-free and dry one speed step faster")
            return state
        at_nominal = np.allclose(targets_t, self._nominal_t) and np.allclose(targets_q, self._nominal_q)
        if (low and not at_nominal and t_s - low_since >= sup.raise_hold_s  # type: ignore[operator]
                and (state.last_raise_s is None or t_s - state.last_raise_s >= sup.raise_hold_s)):
            return self._move(state, cond, judged, t_s, decisions, "raise", Reason.RISK_LOW, notes)
        return state

    def _dead_time_s(self, inputs: Inputs) -> float:
        """``estimate_dead_time_s`` at the nominal speed, longer on a slower web (the coating takes longer from
        the critical zone to the camera)."""
        sup, ws = self.config.supervisor, self.config.web_speed
        speed = inputs.web_speed_m_min.value if inputs.web_speed_m_min is not None else ws.nominal_m_min
        return sup.estimate_dead_time_s * max(1.0, ws.nominal_m_min / max(speed, 1e-3)) if ws.control \
            else sup.estimate_dead_time_s

    @staticmethod
    def _seen(state: LawState, t_s: float, dead_s: float) -> bool:
        """True when the camera / CT see coating dried on the current recipe: a dead time after the last move
        and after the zones reached it (``transition_until_s``), at most two dead times after the move (a zone
        that cannot reach its target, a heater fault, must not blind the supervisor)."""
        if state.last_move_s is None:
            return True
        since = t_s - state.last_move_s
        settled = state.transition_until_s is None or t_s >= state.transition_until_s
        return since >= dead_s and (settled or since >= 2.0 * dead_s)

    def _lel_limit(self) -> float:
        """Planning limit of the zone vapour, fraction of the LEL (with a rounding tolerance)."""
        return self.config.solvent_load.plan_limit_lel_pct / 100.0 + 1e-6

    def _recipe_loops(self, state: LawState, inputs: Inputs) -> Iterator[tuple[int, int, LoopState, float, float, float]]:
        """Every zone's temperature (kind 0) and airflow (kind 1) loop: ``(zone index, kind, loop state,
        supervisor target, measured value, settle tolerance)``."""
        sup = self.config.supervisor
        for i, (z, zs) in enumerate(zip(self.config.zones, state.zones)):
            m = inputs.zones[z.name]
            yield i, 0, zs.temperature, zs.target_temperature_c, m.temperature_c, sup.settle_tolerance_c
            yield (i, 1, zs.airflow, zs.target_airflow_m3_h, m.airflow_m3_h,
                   sup.settle_tolerance_fraction * max(zs.target_airflow_m3_h, 1.0))

    def _settled(self, state: LawState, inputs: Inputs, *, speed: bool = True) -> bool:
        """True when every auto loop's reference reached its target and the measurement its reference
        (and, with ``speed``, the web its target speed)."""
        if speed and self._slowing(state, inputs) is not None:
            return False
        return not any(ls.auto and (abs(ls.reference - target) > tol or abs(value - ls.reference) > tol)
                       for _, _, ls, target, value, tol in self._recipe_loops(state, inputs))

    def _slowing(self, state: LawState, inputs: Inputs) -> bool | None:
        """True while the web slows down to its target speed, False while it speeds up, None when it is there
        (or the speed is not controlled)."""
        target = state.speed_target_m_min
        if target is None:
            return None
        speeds = [v for v in (state.speed_command_m_min,
                              inputs.web_speed_m_min.value if inputs.web_speed_m_min is not None else None) if v is not None]
        if any(v > target * 1.02 for v in speeds):
            return True
        if any(v < target / 1.02 for v in speeds):
            return False
        return None

    def _observed_risk(self, inputs: Inputs, t_s: float) -> tuple[bool, bool, Reason | None]:
        sup = self.config.supervisor
        target = sup.target_surface_cif
        high, low, reason = False, True, None
        s = inputs.surface
        if s is not None:
            if target == 0:
                if s.onset:
                    high, reason = True, Reason.SURFACE_ONSET
                elif s.risk_score >= sup.surface_risk_up:
                    high, reason = True, Reason.SURFACE_RISK
                low = not s.onset and s.risk_score <= sup.surface_risk_down
            if s.surface_cif is not None:
                if s.surface_cif > target + sup.cif_band:
                    high, reason = True, reason or Reason.SURFACE_CIF
                low = low and s.surface_cif <= (target + sup.cif_band if target == 0 else target - sup.cif_band)
        lab = inputs.lab
        if lab is not None and abs(t_s - lab.t_s) <= sup.lab_estimate_valid_s and target == 0:
            if lab.onset or lab.risk_score >= sup.lab_risk_up:
                high, reason = True, reason or Reason.LAB_RISK
            low = low and not lab.onset and lab.risk_score <= sup.lab_risk_down
        return high, low, reason

    def _site_zone(self, inputs: Inputs) -> int | None:
        s = inputs.surface
        if s is None or not s.site_positions_m:
            return None
        x = float(np.median(s.site_positions_m))
        for i, start in enumerate(self.config.zone_start_m()):
            if start <= x < start + self.config.zones[i].length_m:
                return i
        return None

    # ----------------------------------------------------------------- moves
    def _move(self, state: LawState, cond: LineConditions, current: _Judged, t_s: float, decisions: list[Decision],
              kind: str, reason: Reason, notes: list[str], observed_zone: int | None = None) -> LawState:
        sup = self.config.supervisor
        t0, q0 = current.temperature_c[0], current.airflow_m3_h[0]
        plan = current.plans[0]
        focus = _index(self._names, plan.peak_zone) if plan.peak_zone else _index(self._names, plan.critical_zone)
        if kind == "unload" and plan.zone_fresh_air_m3_h:  # the zone whose exhaust is nearest its maximum
            focus = int(np.argmax(np.array(plan.zone_fresh_air_m3_h) / [z.fresh_air_limits_m3_h[1] for z in self.config.zones]))
        if focus is None:
            focus = observed_zone if observed_zone is not None else len(self._names) - 1
        free = self._free_mask(state)
        if kind in ("lower", "unload"):
            cands = self._lowering(t0, q0, focus, free)
        elif kind == "raise":
            cands = self._raising(t0, q0, free)
        else:
            cands = self._drying(t0, q0, focus, free)
        if not cands:
            return self._hold(state, t_s, decisions, Reason.NO_FEASIBLE_MOVE if kind != "raise" else Reason.RAISE_BLOCKED,
                              "no move left within the bounds (or the loops are in manual)")
        temps = np.array([c[0] for c in cands])
        flows = np.array([c[1] for c in cands])
        judged = self._judge(cond, temps, flows)
        exit_limit = sup.exit_residual_solvent_limit_g_m2 - sup.exit_residual_margin_g_m2
        now = float(self._objective(current)[0])
        ceiling = max(now, sup.stress_ratio_up - state.model_margin if sup.target_surface_cif == 0 else now)

        def feasible(j: _Judged) -> tuple[NDArray[np.bool_], NDArray[np.bool_], F, NDArray[np.bool_]]:
            """(dry, loadable: the exhaust can hold the predicted load at the planning limit, objective, no worse)."""
            o = self._objective(j)
            return self._dry(j, exit_limit), j.lel <= self._lel_limit(), o, o <= ceiling

        def wanted(j: _Judged) -> NDArray[np.bool_]:
            dry_, loadable_, obj_, no_worse_ = feasible(j)
            if kind == "unload":
                return dry_ & no_worse_ & (j.lel < current.lel[0] - 1e-6)
            return dry_ & loadable_ & (obj_ <= now - sup.min_improvement)

        dry, loadable, obj, no_worse = feasible(judged)
        n_local, n_eval = len(temps), 0
        if (kind in ("lower", "unload") and sup.replan_evaluations > 0
                and (state.last_replan_s is None or t_s - state.last_replan_s >= sup.replan_hold_s)):
            # re-plan the whole recipe on the model (bounded cost): the local moves find only the nearest
            # optimum, and take many steps (and hold times) to reach a staged recipe
            rt, rq, rj, n_eval = self._replan(cond, t0, q0, free, exit_limit)
            state = replace(state, last_replan_s=t_s)
            temps, flows, judged = np.concatenate([temps, rt]), np.concatenate([flows, rq]), _concat(judged, rj)
            dry, loadable, obj, no_worse = feasible(judged)
        if kind == "unload":
            ok = wanted(judged)
            if not ok.any():
                return self._last_resort(state, cond, t_s, decisions, reason, notes,
                                         f"solvent load above the exhaust's reach ({_risk_text(plan)}) and no move "
                                         f"lowers it while keeping the exit dry and the crack risk no higher; "
                                         f"consider a slower line")
            if (ok & loadable).any():  # back within the exhaust's reach: the lowest crack risk of those
                idx = np.flatnonzero(ok & loadable)
                pick = int(idx[np.argmin(obj[idx])])
            else:  # not yet: the lowest load
                idx = np.flatnonzero(ok)
                pick = int(idx[np.argmin(judged.lel[idx])])
        elif kind == "dry":
            ok = dry & loadable & no_worse
            wetness = self._wetness(judged)
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])]) if ok.any() else int(np.argmin(
                np.where(loadable, wetness, np.inf) if loadable.any() else wetness))
            if wetness[pick] >= self._wetness(current)[0] - 1e-9:
                return self._last_resort(state, cond, t_s, decisions, reason, notes,
                                         f"the coating would leave wet ({plan.exit_residual_solvent_g_m2:.2f} g/m2) or "
                                         f"dry less than {sup.exit_dry_margin_m:g} m before the exit, and no move dries "
                                         f"it earlier")
        elif kind == "lower":
            ok = wanted(judged)
            if len(temps) > n_local:  # a jump to the re-planned recipe must be worth its transient
                local = ok[:n_local]
                ref = float(obj[:n_local][local].min()) if local.any() else now
                ok[n_local:] &= obj[n_local:] <= ref - sup.replan_min_improvement
            if not ok.any():
                return self._last_resort(state, cond, t_s, decisions, reason, notes,
                                         f"crack risk ({_risk_text(plan)}) but no move in {self._names[focus]} or "
                                         f"elsewhere lowers it while keeping the exit dry and the solvent load within "
                                         f"the exhaust's reach; consider a slower line")
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])])
        else:
            if sup.target_surface_cif == 0:
                safe = judged.ratio + state.model_margin <= sup.stress_ratio_down
            else:
                safe = judged.surface_cif <= sup.target_surface_cif + sup.cif_band
            ok = dry & safe & loadable
            if not ok.any():
                return self._hold(state, t_s, decisions, Reason.RAISE_BLOCKED,
                                  "risk low, but every step back towards the nominal recipe is predicted to raise the "
                                  "crack risk or wet the exit")
            pick = int(np.flatnonzero(ok)[np.argmin(obj[ok])])
        if pick >= n_local:
            notes = [*notes, f"re-planned the whole recipe on the model ({n_eval} recipes judged)"]
        new_t, new_q = temps[pick], flows[pick]
        after = judged.plans[pick]
        changes = _changes(self._names, t0, q0, new_t, new_q)
        zones = tuple(replace(zs, target_temperature_c=float(new_t[i]), target_airflow_m3_h=float(new_q[i]))
                      for i, zs in enumerate(state.zones))
        action = {"lower": Action.LOWER, "raise": Action.RAISE, "dry": Action.DRY_EXIT, "unload": Action.UNLOAD}[kind]
        what = {"lower": f"lowered the drying rate where the stress peaks ({self._names[focus]})",
                "raise": "risk low for the hold time: stepped back towards the nominal recipe",
                "dry": "raised the drying rate to keep the coating dry at the exit",
                "unload": f"lowered the solvent load where the exhaust is near its maximum ({self._names[focus]})"}[kind]
        text = (f"{what}: " + ", ".join(_change_text(c) for c in changes) + f"; before: {_risk_text(plan)}; "
                f"predicted after: {_risk_text(after)}" + "".join(f"; {n}" for n in notes))
        decisions.append(Decision(t_s, action, reason, text, zone=self._names[focus] if kind in ("lower", "unload") else None,
                                  changes=changes, stress_ratio=after.peak_stress_ratio,
                                  exit_residual_g_m2=after.exit_residual_solvent_g_m2, critical_point_m=after.critical_point_m))
        state = replace(state, zones=zones, plan=after, last_move_s=t_s, hold_reason=None)
        if kind in ("lower", "unload"):
            state = replace(state, last_lower_s=t_s)
        elif kind == "raise":
            state = replace(state, last_raise_s=t_s, risk_low_since_s=t_s)
        return state

    def _hold(self, state: LawState, t_s: float, decisions: list[Decision], reason: Reason, text: str) -> LawState:
        if state.hold_reason is not reason:
            plan = state.plan
            decisions.append(Decision(t_s, Action.HOLD, reason, text,
                                      stress_ratio=plan.peak_stress_ratio if plan else math.nan,
                                      exit_residual_g_m2=plan.exit_residual_solvent_g_m2 if plan else math.nan,
                                      critical_point_m=plan.critical_point_m if plan else math.nan))
        stamp = {"last_lower_s": t_s} if reason is Reason.NO_FEASIBLE_MOVE else {"last_raise_s": t_s}
        return replace(state, hold_reason=reason, **stamp)

    def _free_mask(self, state: LawState) -> NDArray[np.bool_]:
        """(Z, 2): which targets the supervisor may move (loops in auto)."""
        return np.array([[zs.temperature.auto, zs.airflow.auto] for zs in state.zones])

    def _bounded(self, t: F, q: F) -> tuple[F, F]:
        zs = self.config.zones
        return (np.clip(t, [z.temperature_limits_c[0] for z in zs], [z.temperature_limits_c[1] for z in zs]),
                np.clip(q, [z.airflow_limits_m3_h[0] for z in zs], [z.airflow_limits_m3_h[1] for z in zs]))

    def _collect(self, t0: F, q0: F, free: NDArray[np.bool_], moves: Iterable[tuple[F, F]]) -> list[tuple[F, F]]:
        out, seen = [], set()
        for dt_, fq in moves:
            t, q = self._bounded(t0 + np.where(free[:, 0], dt_, 0.0), q0 * np.where(free[:, 1], fq, 1.0))
            key = (tuple(np.round(t, 6)), tuple(np.round(q, 6)))
            if key in seen or (np.allclose(t, t0) and np.allclose(q, q0)):
                continue
            seen.add(key)
            out.append((t, q))
        return out

    def _lowering(self, t0: F, q0: F, k: int, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        st, down, up = sup.temperature_step_c, 1.0 - sup.airflow_step_fraction, 1.0 / (1.0 - sup.airflow_step_fraction)
        moves = []
        for span in {(k,), tuple(range(k, nz))}:
            sel = np.isin(np.arange(nz), span)
            for d_t, f_q in ((0.0, down), (-st, down), (st, down), (-st, 1.0)):
                base_t, base_q = np.where(sel, d_t, 0.0), np.where(sel, f_q, 1.0)
                moves.append((base_t, base_q))
                for j in range(nz):  # compensate in one other zone
                    if sel[j]:
                        continue
                    one = np.arange(nz) == j
                    moves.append((base_t + np.where(one, st, 0.0), base_q))
                    moves.append((base_t, base_q * np.where(one, up, 1.0)))
                before = np.arange(nz) < k  # or in every zone before the critical zone (earlier consolidation)
                if before.sum() > 1:
                    moves.append((base_t + np.where(before, st, 0.0), base_q))
                    moves.append((base_t, base_q * np.where(before, up, 1.0)))
        # multi-stage moves (dry fast while the film shrinks, slow from the critical point on): zones from
        # a boundary b on several airflow steps down (optionally warmer), the zones before it faster
        for b in range(1, nz):
            slow = np.arange(nz) >= b
            for n_slow, n_warm, n_fast, n_hot in product((2, 5), (0, 2), (0, 3), (0, 2)):
                moves.append((np.where(slow, n_warm * st, n_hot * st), np.where(slow, down**n_slow, up**n_fast)))
        return self._collect(t0, q0, free, moves)

    def _drying(self, t0: F, q0: F, k: int, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        st, up = sup.temperature_step_c, 1.0 / (1.0 - sup.airflow_step_fraction)
        moves = []
        for j in range(nz):
            one = np.arange(nz) == j
            moves.append((np.where(one, st, 0.0), np.ones(nz)))
            moves.append((np.zeros(nz), np.where(one, up, 1.0)))
        moves.append((np.full(nz, st), np.ones(nz)))
        return self._collect(t0, q0, free, moves)

    def _raising(self, t0: F, q0: F, free: NDArray[np.bool_]) -> list[tuple[F, F]]:
        sup, nz = self.config.supervisor, len(self._names)
        out = []
        for j in range(nz):
            if free[j, 0] and not math.isclose(t0[j], self._nominal_t[j]):
                t = t0.copy()
                t[j] += float(np.clip(self._nominal_t[j] - t0[j], -sup.temperature_step_c, sup.temperature_step_c))
                out.append((t, q0.copy()))
            if free[j, 1] and not math.isclose(q0[j], self._nominal_q[j]):
                q = q0.copy()
                f = 1.0 / (1.0 - sup.airflow_step_fraction)
                q[j] = min(q0[j] * f, self._nominal_q[j]) if self._nominal_q[j] > q0[j] else max(q0[j] / f, self._nominal_q[j])
                out.append((t0.copy(), q))
        return out
