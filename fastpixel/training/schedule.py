"""Learning-rate schedules: a pure function of the step, so a resumed run needs no scheduler state.

    lr(step) = base * warmup(step) * decay(step)
    warmup:   (step + 1) / warmup_steps for step < warmup_steps, else 1 (linear from base / warmup_steps)
    constant: 1
    cosine:   (1 + cos(pi * t)) / 2, t = (step - warmup_steps) / (steps - warmup_steps): base -> 0 at the end
    step:     gamma ** ((step - warmup_steps) // step_every): multiplied by gamma every step_every steps
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "cosine", "step")


def check_schedule(schedule: str, *, steps: int, warmup_steps: int, step_every: int | None, gamma: float) -> None:
    """Raise ValueError naming the setting when the schedule cannot run."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
    if schedule == "cosine" and warmup_steps >= steps:
        raise ValueError(f"warmup_steps ({warmup_steps}) must be below steps ({steps}) for the cosine schedule")
    if schedule == "step":
        if isinstance(step_every, bool) or not isinstance(step_every, int) or step_every < 1:
            raise ValueError(f"the step schedule needs lr_step_every, an int >= 1 (--lr-step-every), got {step_every!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"lr_gamma must be in (0, 1], got {gamma!r}")


def learning_rate(step: int, *, base: float, schedule: str, steps: int, warmup_steps: int = 0,
                  step_every: int | None = None, gamma: float = 0.1) -> float:
    """The learning rate of optimizer step ``step`` (0-based) of a ``steps``-step run."""
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    after = max(0, step - warmup_steps)
    if schedule == "constant":
        decay = 1.0
    elif schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * min(1.0, after / max(1, steps - warmup_steps))))
    elif schedule == "step":
        decay = gamma ** (after // step_every)
    else:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {schedule!r}")
    return base * warm * decay
