"""`report`: one self-contained HTML page for a stats, anomalies, evaluation or monitor
artifact (DESIGN §4), or a model card (`card`: a page or its JSON form, collected from
the store by `card_data`). Summaries only, never rows; charts inline SVG (see `charts`).

The page is a view, not an artifact: it is written to FILE.html atomically (a temp
file renamed in) and not recorded in the store.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.outputs import check_file_output
from ..errors import BadInput, opt
from ..store.store import Store, store_for

KINDS = ("stats", "anomalies", "evaluation", "monitor")
BASELINE_KINDS = {"stats": "stats", "evaluation": "evaluation"}


@dataclass
class ReportResult:
    path: Path | None  # None: written to stdout
    kind: str
    artifact: str
    bytes: int


def report(
    artifact: str | Path,
    out: str | Path | None,
    *,
    baseline: str | Path | None = None,
    store: str | Path | Store | None = None,
) -> ReportResult:
    """Write the HTML report of ARTIFACT to `out` (None: stdout)."""
    from . import page

    st = store_for(store, out)
    if out is not None:
        check_file_output(Path(out), marker=page.GENERATOR.encode(), what="report")
    path, manifest = st.load(str(artifact))
    kind = manifest["kind"]
    if kind not in KINDS:
        raise BadInput(
            f"no report for a {kind} artifact: reports are for {', '.join(KINDS)} artifacts",
            file=str(artifact),
        )
    base = None
    if baseline is not None:
        if kind not in BASELINE_KINDS:
            raise BadInput(f"{opt('baseline')} is for stats and evaluation reports, not {kind}")
        base_path, base_manifest = st.load(str(baseline))
        if base_manifest["kind"] != BASELINE_KINDS[kind]:
            raise BadInput(
                f"this is a {base_manifest['kind']} artifact; a {kind} report compares with another {kind}",
                file=str(baseline),
            )
        base = (base_path, base_manifest)
    title, sections = _build(kind, path, manifest, base, st, str(artifact))
    subtitle = (f"{kind} {manifest['id'][:12]} · {artifact} · created {manifest.get('created', '')}"
                + (f" · baseline {base[1]['id'][:12]}" if base else ""))  # fmt: skip
    html = page.render(title, subtitle, sections)
    data = html.encode()
    return ReportResult(_write(out, data), kind, manifest["id"], len(data))


def card(
    model: str | Path,
    out: str | Path | None,
    *,
    as_json: bool | None = None,
    info: str | Path | None = None,
    evaluation: str | Path | None = None,
    registry: str | Path | None = None,
    store: str | Path | Store | None = None,
) -> ReportResult:
    """Write the model card of MODEL or REGISTRY/NAME to `out` (None: stdout): a page, or
    its JSON form when `as_json` (by default: when `out` ends in `.json`)."""
    from . import page
    from .card_data import FORMAT, collect
    from .card_info import read_card_info

    if as_json is None:
        as_json = out is not None and Path(out).suffix.lower() == ".json"
    st = store_for(store, out)
    if out is not None:
        marker = f'"format": "{FORMAT}"' if as_json else page.GENERATOR
        check_file_output(Path(out), marker=marker.encode(), what="card" if as_json else "report")
    facts = read_card_info(info) if info is not None else None
    doc = collect(st, str(model), evaluation=None if evaluation is None else str(evaluation),
                  registry=registry, info=facts)  # fmt: skip
    if as_json:
        from ..core.jsonio import dumps_pretty, jsonable

        data = dumps_pretty(jsonable(doc)).encode()
    else:
        from .card_page import sections

        m = doc["model"]
        subtitle = f"model card · model {m['id'][:12]} · {m['ref']} · created {m['created']}"
        data = page.render(f"Model card: {doc['title']}", subtitle, sections(doc)).encode()
    return ReportResult(_write(out, data), "card", doc["model"]["id"], len(data))


def _write(out: str | Path | None, data: bytes) -> Path | None:
    """`data` to stdout (None), or to `out` atomically (a temp file renamed in)."""
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _json(path: Path, name: str) -> Any:
    return json.loads((path / name).read_text())


def _build(kind, path, manifest, base, st, ref) -> tuple[str, list]:
    if kind == "stats":
        return _stats(path, base, ref)
    if kind == "evaluation":
        from ..model.evaluation_files import read_blessing, read_curves, read_metrics
        from .evaluation_page import sections

        b = None
        if base is not None:
            b = (read_metrics(base[0]), read_curves(base[0]), f"baseline {base[1]['id'][:12]}")
        return (f"Evaluation: {ref}", sections(read_metrics(path), read_curves(path),
                                               read_blessing(path), b))  # fmt: skip
    from ..model.monitor_report import read_report
    from ..validation.checks import read_anomalies
    from .checks_page import anomalies_sections, monitor_sections

    if kind == "anomalies":
        return f"Anomalies: {ref}", anomalies_sections(read_anomalies(path), manifest, st)
    return f"Monitor: {ref}", monitor_sections(read_report(path), manifest, st)


def _stats(path: Path, base, ref: str) -> tuple[str, list]:
    from ..data.splits import training_split
    from ..validation.schema_rules import DEFAULT_DRIFT
    from .stats_page import sections

    # Not re-validated against the JSON Schema (that takes longer than drawing the page
    # for a large document): `stats` validated it when it wrote the artifact.
    doc = _json(path, "stats.json")
    sketches = _json(path, "sketches.json")
    names = list(doc["splits"])
    if base is not None:
        current = training_split(dict.fromkeys(names, path), ref)
        base_doc = _json(base[0], "stats.json")
        base_split = training_split(dict.fromkeys(base_doc["splits"], base[0]), "baseline")
        reference = (base_doc["splits"][base_split], f"baseline {base_split}")
    elif len(names) > 1:
        train = training_split(dict.fromkeys(names, path), ref)
        current = next(n for n in names if n != train)
        reference = (doc["splits"][train], train)
    else:
        current, reference = names[0], None
    return f"Statistics: {ref}", sections(doc, sketches, current=current, reference=reference,
                                          thresholds=DEFAULT_DRIFT)  # fmt: skip
