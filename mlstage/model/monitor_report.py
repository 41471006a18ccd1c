"""The monitor artifact's file, `report.json` (mlstage-monitor/1), written and read here
only: the window, the requests, anomalies, drift, prediction drift, live metrics, and
whether retraining is called for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import dumps_pretty

REPORT = "report.json"


def write_report(folder: Path, doc: dict[str, Any]) -> None:
    validate(doc, "mlstage-monitor/1", str(folder / REPORT))
    (folder / REPORT).write_text(dumps_pretty(doc))


def read_report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / REPORT).read_text())
