"""Inner loops of the control law: the state of one PID loop and its pure update functions.

Each loop is rebuilt as a simple-pid `PID` from the immutable `LoopState` at every sample
(see the "Inner loops" section of the `controller._law` docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from simple_pid import PID

from ._config import PidGains

__all__ = ["LoopState"]


@dataclass(frozen=True)
class LoopState:
    """One PID loop: reference (ramped target), last command, PID memory, P/I/D terms."""

    auto: bool
    reference: float
    command: float
    integral: float = 0.0
    last_input: float | None = None
    last_update_t_s: float | None = None
    bumpless: bool = True  # next update starts from ``command`` (start, resume, manual -> auto)
    p_term: float = 0.0
    i_term: float = 0.0
    d_term: float = 0.0


def _restart(ls: LoopState) -> LoopState:
    """Restart a loop bumplessly from its last command (reference = command)."""
    return replace(ls, reference=ls.command, integral=0.0, last_input=None, last_update_t_s=None, bumpless=True)


def _resume(ls: LoopState, measured: float | None, limits: tuple[float, float]) -> LoopState:
    """Leave the safe state bumplessly for the plant: restart from the measured value (within the limits),
    not from the safe output (the heaters would otherwise ramp up from the safe temperature at their
    slew limit and cool a still-hot zone for minutes after a short sensor dropout)."""
    if measured is None:
        return _restart(ls)
    v = float(np.clip(measured, *limits))
    return replace(_restart(ls), reference=v, command=v)


def _hold(ls: LoopState, value: float) -> LoopState:
    """Safe state: the command jumps to ``value``; the loop restarts from it later."""
    return replace(ls, command=value, reference=value, integral=0.0, last_input=None, last_update_t_s=None,
                   bumpless=True, p_term=0.0, i_term=0.0, d_term=0.0)


def _pid(ls: LoopState, target: float, measured: float, gains: PidGains, limits: tuple[float, float],
         slew_per_s: float, sample_time_s: float, t_s: float, dt_s: float, *,
         slew_down_per_s: float | None = None) -> LoopState:
    """One update of a loop: ramp the reference, run the PID (simple-pid) if due, limit the command.

    ``slew_down_per_s``: a different rate limit for falling reference and command (default:
    ``slew_per_s`` both ways).
    """
    lo, hi = limits
    if not ls.auto:
        return ls
    down = slew_per_s if slew_down_per_s is None else slew_down_per_s
    ref = ls.reference + float(np.clip(target - ls.reference, -down * dt_s, slew_per_s * dt_s))
    ref = float(np.clip(ref, lo, hi))
    if ls.last_update_t_s is not None and t_s - ls.last_update_t_s < sample_time_s - 1e-9:
        return replace(ls, reference=ref)  # fixed sample time: hold the command between samples
    h = sample_time_s if ls.last_update_t_s is None else t_s - ls.last_update_t_s
    error = ref - measured
    integral = ls.integral
    if ls.bumpless:  # start from the last command: P + I (+ D = 0) equals command - reference
        integral = (ls.command - ref) - gains.kp * error - gains.ki * error * h
    pid = PID(gains.kp, 0.0, gains.kd, setpoint=ref, sample_time=None, output_limits=(lo - ref, hi - ref),
              starting_output=integral, differential_on_measurement=True, time_fn=lambda: t_s)
    if ls.last_input is not None and not ls.bumpless:
        pid(ls.last_input, dt=1.0)  # primes the derivative memory; Ki = 0 leaves the integral alone
    pid.tunings = (gains.kp, gains.ki, gains.kd)
    pid(measured, dt=h)
    p_term, i_term, d_term = (float(c) for c in pid.components)
    # anti-windup (conditional integration): keep the integral while the output is saturated in the
    # direction of the error, while the reference ramps (the lag behind it is the feedforward's job)
    raw = p_term + i_term + d_term
    saturated = (raw > hi - ref and error > 0) or (raw < lo - ref and error < 0)
    ramping = abs(target - ref) > 1e-9
    if (saturated or ramping) and not ls.bumpless:
        i_term = float(np.clip(integral, lo - ref, hi - ref))
    wanted = ref + float(np.clip(p_term + i_term + d_term, lo - ref, hi - ref))
    command = float(np.clip(ls.command + np.clip(wanted - ls.command, -down * h, slew_per_s * h), lo, hi))
    if abs(command - wanted) > 1e-9 and np.sign(error) == np.sign(wanted - command) and not ls.bumpless:
        i_term = float(np.clip(integral, lo - ref, hi - ref))  # ... and while the slew limit holds the command
    return LoopState(auto=True, reference=ref, command=command, integral=i_term, last_input=measured,
                     last_update_t_s=t_s, bumpless=False, p_term=p_term, i_term=i_term, d_term=d_term)
