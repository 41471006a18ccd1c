"""The one threshold gate: a metric's value against `{"min": …, "max": …}`.

`evaluate` gates its blessing with it (overall, per slice, per fairness group) and
`monitor` its live metrics. What a value that cannot be computed means differs on
purpose, and is said by the caller: in `evaluate` it fails the check (a gate that
cannot be measured must not pass), in `monitor` it is skipped (a window whose feedback
holds one class says nothing either way).
"""

from __future__ import annotations

import math
from typing import Any

BOUNDS = (("min", lambda v, t: v >= t), ("max", lambda v, t: v <= t))


def is_number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isnan(x)


def bound_checks(
    metric: str,
    value,
    spec: dict[str, Any],
    *,
    gated: bool = True,
    uncomputable: str = "fail",
    note: str | None = None,
    uncomputable_note: str = "the metric cannot be computed on this data",
) -> list[dict[str, Any]]:
    """One check per bound `spec` sets: {metric, value, threshold, passed, note}.

    `gated` false (a slice under `min_slice_size`): reported with `passed` None.
    `uncomputable`: "fail" or "skip" for a value that is not a number.
    """
    checks = []
    for kind, ok in BOUNDS:
        if kind not in spec:
            continue
        why = note
        if not gated:
            passed = None
        elif not is_number(value):
            passed = False if uncomputable == "fail" else None
            why = note or uncomputable_note
        else:
            passed = ok(value, spec[kind])
        checks.append({"metric": metric, "value": value, "threshold": {kind: spec[kind]},
                       "passed": passed, "note": why if passed is not True else None})  # fmt: skip
    return checks
