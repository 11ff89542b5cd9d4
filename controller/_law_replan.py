"""Whole-recipe re-planning on the drying model, and the web speed as the last resort.

`_Replanner` is a mixin of `controller._law_supervisor._Supervisor` (so of
`controller._law.ControlLaw`); it uses the supervisor's ``_judge``, ``_dry``, ``_objective``,
``_lel_limit``, ``_free_mask`` and ``_hold`` (see the "Supervisor" section of the
`controller._law` docstring).
"""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import product
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ._config import ControllerConfig
from ._law_inputs import F, LineConditions
from ._law_judged import _OBSERVED, _change_text, _changes, _Judged, _risk_text, _take
from ._law_state import Action, Decision, LawState, Reason, SlowDown

__all__: list[str] = []


class _Replanner:
    """Re-planning and web-speed methods of the supervisor (a mixin; no state of its own)."""

    config: ControllerConfig
    _names: tuple[str, ...]

    if TYPE_CHECKING:  # provided by `controller._law_supervisor._Supervisor`
        def _judge(self, cond: LineConditions, temps: F, flows: F) -> _Judged: ...
        def _dry(self, j: _Judged, exit_limit: float) -> NDArray[np.bool_]: ...
        def _objective(self, j: _Judged) -> F: ...
        def _lel_limit(self) -> float: ...
        def _free_mask(self, state: LawState) -> NDArray[np.bool_]: ...
        def _hold(self, state: LawState, t_s: float, decisions: list[Decision], reason: Reason,
                  text: str) -> LawState: ...

    def _last_resort(self, state: LawState, cond: LineConditions, t_s: float, decisions: list[Decision],
                     reason: Reason, notes: list[str], hold_text: str) -> LawState:
        """No recipe move: a slower web if the law may and it helps, else a HOLD decision saying why."""
        moved = self._speed_move(state, cond, t_s, decisions, reason, notes, down=True)
        if moved is not None:
            return moved
        return self._hold(state, t_s, decisions, Reason.NO_FEASIBLE_MOVE, hold_text)

    def _speed_move(self, state: LawState, cond: LineConditions, t_s: float, decisions: list[Decision], reason: Reason,
                    notes: list[str], *, down: bool) -> LawState | None:
        """The last resort: a slower web (``down``) or, with the risk low, one step back up, each with a
        recipe re-planned for that speed. None: speed not controlled, at its limit, or nothing predicted safe."""
        ws, sup = self.config.web_speed, self.config.supervisor
        current = state.speed_target_m_min
        if not ws.control or current is None or sup.replan_evaluations == 0:
            return None
        plan = state.plan
        if down and reason not in _OBSERVED and plan is not None and (
                plan.peak_stress_ratio + state.model_margin < ws.slow_above_stress_ratio
                if sup.target_surface_cif == 0 else plan.surface_cif <= sup.target_surface_cif + 2 * sup.cif_band):
            return None  # a margin short, not cracks predicted (nor seen): not worth the throughput
        lo, hi = ws.limits_m_min
        if down:
            speeds = sorted({round(max(lo, current * (1.0 - ws.step_fraction) ** n), 6) for n in range(1, ws.max_steps + 1)}
                            - {round(current, 6)}, reverse=True)
        else:
            speeds = [min(ws.nominal_m_min, hi, current / (1.0 - ws.step_fraction))]
        speeds = [v for v in speeds if (v < current - 1e-9 if down else v > current + 1e-9)]
        if not speeds:
            return None
        t0 = np.array([zs.target_temperature_c for zs in state.zones])
        q0 = np.array([zs.target_airflow_m3_h for zs in state.zones])
        exit_limit = sup.exit_residual_solvent_limit_g_m2 - sup.exit_residual_margin_g_m2
        free, margin = self._free_mask(state), state.model_margin
        evaluated = 0
        results: dict[int, tuple[float, F, F, _Judged, bool, bool]] = {}

        def plan_at(i: int) -> tuple[float, F, F, _Judged, bool, bool]:
            """(speed, temperatures, airflows, judged, usable, safe) of the recipe re-planned for speeds[i]."""
            nonlocal evaluated
            if i not in results:
                v = speeds[i]  # the exhausts' own load at that speed: no measured concentrations
                rt, rq, rj, n = self._replan(replace(cond, web_speed_m_min=v, solvent_concentration_g_m3=None),
                                             t0, q0, free, exit_limit)
                evaluated += n
                usable = bool(self._dry(rj, exit_limit)[0] and rj.lel[0] <= self._lel_limit())
                if sup.target_surface_cif == 0:
                    safe = bool(rj.ratio[0] + margin < (sup.stress_ratio_up if down else sup.stress_ratio_down))
                else:
                    safe = bool(abs(rj.surface_cif[0] - sup.target_surface_cif) <= sup.cif_band)
                results[i] = (v, rt[0], rq[0], rj, usable, safe)
            return results[i]

        # the fastest speed whose re-planned recipe is usable and safe: slower is safer, so bisect
        # (speeds run fastest first; ~log2(len) re-plans instead of one per speed)
        good = lambda i: plan_at(i)[4] and plan_at(i)[5]
        pick = fallback = None
        last = len(speeds) - 1
        if good(last):
            lo_i, hi_i = -1, last  # speeds[hi_i] is good; find the first good index
            while hi_i - lo_i > 1:
                mid_i = (lo_i + hi_i) // 2
                if good(mid_i):
                    hi_i = mid_i
                else:
                    lo_i = mid_i
            v, rt0, rq0, rj0, _, _ = plan_at(hi_i)
            pick = (v, rt0, rq0, rj0)
        elif plan_at(last)[4]:
            v, rt0, rq0, rj0, _, _ = plan_at(last)
            fallback = (v, rt0, rq0, rj0)
        if pick is None:
            plan = state.plan
            now = plan.peak_stress_ratio if plan is not None else math.inf
            if not (down and fallback is not None and float(self._objective(fallback[3])[0]) < now - sup.min_improvement):
                return None
            pick = fallback  # not safe yet, but the slowest usable speed lowers the risk
        v, new_t, new_q, j = pick
        after = j.plans[0]
        slow_down, order = (self._slowing_order(cond, v, t0, q0, new_t, new_q, exit_limit, margin)
                            if down else (None, ""))
        changes = (("line", "web_speed_m_min", float(current), float(v)),) + _changes(self._names, t0, q0, new_t, new_q)
        zones = tuple(replace(zs, target_temperature_c=float(new_t[i]), target_airflow_m3_h=float(new_q[i]))
                      for i, zs in enumerate(state.zones))
        what = ("no recipe keeps the coating crack-free, dry and within the exhausts' reach at this speed: slowed the "
                "line" if down else "risk low for the hold time: raised the line speed towards the nominal")
        text = (f"{what}: " + ", ".join(_change_text(c) for c in changes)
                + f" (recipe re-planned for the new speed, {evaluated} recipes judged){order}; before: "
                + (_risk_text(state.plan) if state.plan is not None else "-") + f"; predicted after: {_risk_text(after)}"
                + "".join(f"; {n}" for n in notes))
        decisions.append(Decision(t_s, Action.SLOW_LINE if down else Action.RAISE_SPEED, reason, text, changes=changes,
                                  stress_ratio=after.peak_stress_ratio, exit_residual_g_m2=after.exit_residual_solvent_g_m2,
                                  critical_point_m=after.critical_point_m))
        state = replace(state, zones=zones, plan=after, speed_target_m_min=float(v), last_speed_s=t_s, last_move_s=t_s,
                        last_replan_s=t_s, hold_reason=None, slow_down=slow_down)
        return replace(state, last_lower_s=t_s) if down else replace(state, last_raise_s=t_s, risk_low_since_s=t_s)

    def _slowing_order(self, cond: LineConditions, speed_new: float, t0: F, q0: F, t1: F, q1: F,
                       exit_limit: float, margin: float) -> tuple[SlowDown, str]:
        """How the web and the re-planned recipe go when the web slows down: ``(SlowDown, text)``.

        The coating in the dryer meanwhile sees states in between, each judged on the model
        like any recipe: the old recipe on the slower web (web first: the critical point moves
        upstream, into zones set for a faster web, and can crack there), the new recipe on the
        current web (recipe first: a gentler recipe can leave it wet), or speed and recipe
        moving together (at a quarter, half and three quarters of the way; recipe airflows
        interpolated geometrically). Web first when its state is predicted crack-free and dry,
        else recipe first when that one is, else together when all its states are, else web
        first (a slower web dries).
        """
        sup = self.config.supervisor
        free_cond = replace(cond, solvent_concentration_g_m3=None)
        v0 = cond.web_speed_m_min
        limit = sup.stress_ratio_up - margin if sup.target_surface_cif == 0 else sup.cif_band

        def ok(j: _Judged) -> NDArray[np.bool_]:
            return self._dry(j, exit_limit) & (self._objective(j) < limit)

        web = self._judge(replace(free_cond, web_speed_m_min=speed_new), t0[None], q0[None])
        rec = self._judge(replace(free_cond, web_speed_m_min=v0), t1[None], q1[None])
        fractions = (0.25, 0.5, 0.75)
        mid = [self._judge(replace(free_cond, web_speed_m_min=v0 + a * (speed_new - v0)), (t0 + a * (t1 - t0))[None],
                           (q0 * (q1 / q0) ** a)[None]) for a in fractions]
        if ok(web)[0]:
            order, what = "web", "the web first, then the recipe"
        elif ok(rec)[0]:
            order, what = "recipe", "recipe first, then the web"
        elif all(ok(j)[0] for j in mid):
            order, what = "together", "web and recipe together (the web follows the zone air)"
        else:
            order, what = "web", "the web first, then the recipe (no order predicted safe)"
        worst = max(mid, key=lambda j: float(self._objective(j)[0]))
        text = (f"; {what}; in between: old recipe on the slower web {_risk_text(web.plans[0])}; new recipe on the "
                f"current web {_risk_text(rec.plans[0])}; together, worst {_risk_text(worst.plans[0])}")
        slow = SlowDown(order, float(v0), tuple(float(x) for x in cond.temperature_c),
                        tuple(float(x) for x in cond.airflow_m3_h))
        return slow, text

    def _replan(self, cond: LineConditions, t0: F, q0: F, free: NDArray[np.bool_],
                exit_limit: float) -> tuple[F, F, _Judged, int]:
        """Re-plan the whole recipe on the model: staged recipes, then a pattern search from the best.

        The staged recipes follow the electrode-drying practice (fast while the film shrinks,
        slow around the critical point, fast again): zones before a slow stage hot with much
        air, the slow stage at moderate temperature and little air, the zones after it
        warmer; levels are fixed fractions of the zones' limits. The best of them (or the
        current targets, if better) starts a pattern search (every zone's temperature and
        airflow one step up / down, alone and together, neighbouring temperatures shifted;
        steps halve when nothing improves) of at most ``replan_evaluations`` recipes in all (scaled by
        the web speed over the nominal one, down to a third: the model's cost grows with the time in
        the dryer).
        Merit: the objective plus penalties for a wet exit and a load beyond the exhaust.
        Loops in manual keep their values. Deterministic (no random numbers).

        Returns
        -------
        temperature_c, airflow_m3_h : ndarray, shape (1, Z)
            The re-planned recipe.
        judged : _Judged
        evaluations : int
            Recipes judged (each over the thickness variants).
        """
        sup, nz = self.config.supervisor, len(self._names)
        t_lo = np.array([z.temperature_limits_c[0] for z in self.config.zones])
        t_hi = np.array([z.temperature_limits_c[1] for z in self.config.zones])
        q_lo = np.array([z.airflow_limits_m3_h[0] for z in self.config.zones])
        q_hi = np.array([z.airflow_limits_m3_h[1] for z in self.config.zones])
        span = t_hi - t_lo

        def fix(t: F, q: F) -> tuple[F, F]:  # bounds, and manual loops keep their values
            t = np.where(free[:, 0], np.clip(t, t_lo, t_hi), t0)
            q = np.where(free[:, 1], np.clip(q, q_lo, q_hi), q0)
            return t, q

        def merit(j: _Judged) -> F:
            return (self._objective(j) + 5.0 * np.maximum(j.residual - exit_limit, 0.0)
                    + 0.05 * np.maximum(sup.exit_dry_margin_m - j.dry_gap_m, 0.0)
                    + 5.0 * np.maximum(j.lel - self._lel_limit(), 0.0))

        temps, flows = [t0], [q0]
        z = np.arange(nz)
        for b1 in range(nz):
            for b2 in range(b1 + 1, nz + 1):
                for f_fast, f_qfast, f_slow, d_after, f_qafter in product(
                        (0.6, 0.8, 1.0), (0.5, 1.0), (0.52, 0.62, 0.71, 0.81), (0.0, 0.2), (0.0, 0.5)):
                    slow_t = t_lo + f_slow * span
                    t = np.where(z < b1, t_lo + f_fast * span, np.where(z < b2, slow_t, slow_t + d_after * span))
                    q = np.where(z < b1, f_qfast * q_hi, np.where(z < b2, q_lo, np.maximum(f_qafter * q_hi, q_lo)))
                    t, q = fix(t, q)
                    temps.append(t)
                    flows.append(q)
        grid_t, grid_q = np.array(temps), np.array(flows)
        # the model's cost grows with the time the coating spends in the dryer: on a slower web fewer recipes
        # (about the same CPU time); the staged grid is thinned evenly to leave a third for the pattern search
        # (a third of them at least: below that the staged grid gets too thin to find the slow recipes)
        budget = int(sup.replan_evaluations * max(1.0 / 3.0, min(1.0, cond.web_speed_m_min / self.config.web_speed.nominal_m_min)))
        if len(grid_t) > budget * 2 // 3:
            keep = np.unique(np.linspace(0, len(grid_t) - 1, budget * 2 // 3).round().astype(int))
            grid_t, grid_q = np.concatenate([grid_t[:1], grid_t[keep]]), np.concatenate([grid_q[:1], grid_q[keep]])
        judged = self._judge(cond, grid_t, grid_q)
        used = len(grid_t)
        m = merit(judged)
        k = int(np.argmin(m))
        best_t, best_q, best_m, best_j = grid_t[k], grid_q[k], float(m[k]), _take(judged, k)
        step_t, step_q = sup.temperature_step_c * 1.6, 0.3  # C, natural log of the airflow
        while step_t >= sup.temperature_step_c / 8.0:
            moves = []
            for i in range(nz):
                one = z == i
                for dt_, dq in product((-step_t, 0.0, step_t), (-step_q, 0.0, step_q)):
                    if dt_ or dq:
                        moves.append(fix(best_t + np.where(one, dt_, 0.0), best_q * np.exp(np.where(one, dq, 0.0))))
                if i + 1 < nz:
                    pair = np.where(one, 1.0, 0.0) - np.where(z == i + 1, 1.0, 0.0)
                    moves += [fix(best_t + step_t * pair, best_q), fix(best_t - step_t * pair, best_q)]
            if used + len(moves) > budget:
                break
            mt, mq = np.array([c[0] for c in moves]), np.array([c[1] for c in moves])
            j = self._judge(cond, mt, mq)
            used += len(moves)
            m = merit(j)
            k = int(np.argmin(m))
            if m[k] < best_m - 1e-4:
                best_t, best_q, best_m, best_j = mt[k], mq[k], float(m[k]), _take(j, k)
            else:
                step_t, step_q = step_t / 2.0, step_q / 2.0
        return best_t[None, :], best_q[None, :], best_j, used
