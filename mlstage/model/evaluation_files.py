"""The evaluation artifact's files, written and read here only:

metrics.json   mlstage-evaluation/1: overall, per slice, per group, importance, baseline
curves.json    mlstage-curves/1: ROC, PR, calibration, partial dependence, predictions
blessing.json  mlstage-blessing/1: blessed, the model and baseline ids, every check
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.jsonio import dumps_pretty, jsonable

METRICS = "metrics.json"
CURVES = "curves.json"
BLESSING = "blessing.json"


def write_evaluation(folder: Path, metrics: dict, curves: dict, blessing: dict) -> None:
    for name, doc in ((METRICS, metrics), (CURVES, curves), (BLESSING, blessing)):
        (folder / name).write_text(dumps_pretty(jsonable(doc)))


def read_metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / METRICS).read_text())


def read_curves(folder: Path) -> dict[str, Any]:
    return json.loads((folder / CURVES).read_text())


def read_blessing(folder: Path) -> dict[str, Any]:
    return json.loads((folder / BLESSING).read_text())
