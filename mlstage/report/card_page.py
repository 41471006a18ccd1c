"""The model card as a page, drawn from the card's JSON form (`card_data.collect`), so
the page and `--json` say the same: the model and what people wrote about it, lineage
back to the raw sources, data, features, training, evaluation, gates, deployments."""

from __future__ import annotations

from html import escape
from typing import Any

from . import charts
from .card_eval import plain
from .card_info import KEYS
from .evaluation_page import HEADLINE, checks_table
from .page import Section, grid, num, pct, table, verdict

FACTS = {"intended_use": "Intended use", "out_of_scope": "Out of scope",
         "limitations": "Limitations", "ethical_considerations": "Ethical considerations",
         "references": "References"}  # fmt: skip
# The metrics a slice's row shows (the JSON form has them all), where the task has them.
SLICE_METRICS = {"classification": ["accuracy", "balanced_accuracy", "f1", "roc_auc"],
                 "regression": ["mae", "rmse", "r2"]}  # fmt: skip


def _id(x: str | None, n: int = 12) -> tuple[str, str]:
    """A short id cell whose full id shows on hover (and is in the JSON form)."""
    if not x:
        return ("html", "—")
    return ("html", f'<code title="{escape(x)}">{escape(x[:n])}</code>')


def _kv(pairs: list[tuple[str, Any]]) -> str:
    return table(["", ""], [[k, v] for k, v in pairs if v is not None], cls="kv")


def _interval(span: list[float] | None) -> str:
    return f"[{num(span[0])}, {num(span[1])}]" if span else "—"


def _with_interval(v: Any, span: list[float] | None) -> str:
    return num(v) + (f" {_interval(span)}" if span else "")


def _cell(key: str, value: Any) -> Any:
    """A history entry's value: ids short, numbers as numbers, anything else as text."""
    if key in ("model", "evaluation") and isinstance(value, str):
        return _id(value)
    return value if value is None or isinstance(value, int | float) else plain(value)


def _text(value: str | list[str]) -> str:
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li>{escape(v)}</li>" for v in value) + "</ul>"
    return "".join(f"<p>{escape(p.strip())}</p>" for p in value.split("\n\n") if p.strip())


def _overview(card: dict[str, Any]) -> Section:
    m, info, ev = card["model"], card["info"], card["evaluation"]
    served = [f"{r['registry']}/{r['name']} version {r['version']}"
              for r in card["deployments"]["registries"] if r["serves_this_model"]]  # fmt: skip
    badge = ('<span class="badge fail">no evaluation</span>' if ev is None
             else verdict(ev["blessed"], "blessed", "not blessed"))  # fmt: skip
    classes = ", ".join(map(str, m["classes"])) if m.get("classes") else None
    html = f"<p>{badge} {escape(m['task'] or '')} model " + (
        f"served as {escape(', '.join(served))}" if served else "") + "</p>"  # fmt: skip
    html += _kv([("owner", info.get("owner")), ("contact", info.get("contact")),
                 ("model", _id(m["id"], 64)), ("given as", m["ref"]), ("estimator", m["estimator"]),
                 ("label", m["label"]), ("classes", classes), ("created", m["created"]),
                 ("mlstage", m["mlstage_version"])])  # fmt: skip
    return Section("overview", "Model", html)


def _use(info: dict[str, Any]) -> Section:
    parts = [
        f"<h3>{escape(FACTS[k])}</h3>{_text(info[k])}" for k in KEYS if k in FACTS and k in info
    ]
    if not parts:
        parts = ['<p class="muted">not given: write them in a file for '
                 "<code>--card-info</code> (owner, intended use, limitations, …)</p>"]  # fmt: skip
    return Section("use", "Intended use and limitations", '<div class="facts">' + "".join(parts) + "</div>")  # fmt: skip


def _node(n: dict[str, Any]) -> str:
    role = f"<b>{escape(n['role'])}</b> " if n.get("role") else ""
    what = n["kind"] if n["kind"] in ("source", "file") else f"{n['kind']} ({n['stage']})"
    path = f" · {escape(n['path'])}" if n.get("path") else ""
    when = f' <span class="muted">{escape(n["created"])}</span>' if n.get("created") else ""
    kids = "".join(_node(c) for c in n["inputs"])
    return (f'<li>{role}{escape(what)} <code title="{escape(n["id"])}">{escape(n["id"][:12])}</code>'
            f"{path}{when}{f'<ul>{kids}</ul>' if kids else ''}</li>")  # fmt: skip


def _lineage(card: dict[str, Any]) -> Section:
    html = "".join(f'<ul class="tree">{_node(t)}</ul>' for t in card["lineage"])
    rows = [[s["path"], ("html", f"<code>{escape(s['sha256'])}</code>"), s["bytes"],
             ("html", " ".join(_id(d)[1] for d in s["datasets"]))] for s in card["sources"]]  # fmt: skip
    html += "<h3>Raw sources</h3>" + (
        table(["path", "sha256", "bytes", "read by"], rows, numeric={2}) if rows
        else '<p class="muted">no raw source in the store\'s lineage of this model</p>')  # fmt: skip
    return Section("lineage", "Lineage", html)


def _data(data: dict[str, Any]) -> Section:
    d = data["dataset"]
    if not d.get("in_store"):
        return Section("data", "Data", f'<p class="muted">the training data {escape(str(d["id"])[:12])} '
                                       "is not in the store</p>")  # fmt: skip
    splits = ", ".join(f"{k} {v:,}" for k, v in d["splits"].items())
    html = _kv([("training data", _id(d["id"], 64)), ("rows", d["rows"]),
                ("columns", d["columns"]), ("splits", splits), ("created", d["created"])])  # fmt: skip
    s = data["statistics"]
    html += "<h3>Statistics</h3>"
    if s is None:
        html += '<p class="muted">no statistics of this dataset in the store (run <code>mlstage stats</code>)</p>'
    else:
        html += (f'<p class="muted">stats {_id(s["id"])[1]} of {s["created"]}, split {escape(s["split"])} '
                 f"({s['rows']:,} rows): the model's input columns and its label</p>")  # fmt: skip
        rows = [[c["column"], c["type"], (pct(c["missing_share"]), c["missing_share"] or 0),
                 c["mean"] if c["mean"] is not None else (f"{c['unique']} values" if c["unique"] is not None else None),
                 c["min"], c["max"] if c["max"] is not None else c["top"]] for c in s["columns"]]  # fmt: skip
        html += table(["column", "type", "missing", "mean / unique", "min", "max / top"], rows,
                      sortable=True, numeric={2, 3, 4, 5})  # fmt: skip
    a = data["anomalies"]
    html += "<h3>Anomalies</h3>"
    if a is None:
        html += '<p class="muted">no anomalies artifact of this dataset in the store (run <code>mlstage validate</code>)</p>'
    else:
        html += (f"<p>{verdict(a['ok'], 'no error', 'errors found')} anomalies {_id(a['id'])[1]} of "
                 f"{escape(a['created'])}: {a['errors']} errors, {a['warnings']} warnings"
                 + (f"; drift in {len(a['drifted'])} columns" if a["drifted"] else "") + "</p>")  # fmt: skip
        if a["anomalies"]:
            html += table(["split", "column", "type", "severity", "description"],
                          [[x["split"], x["column"], x["type"], ("html", f'<span class="{escape(x["severity"])}">'
                            f'{escape(x["severity"])}</span>'), x["description"]] for x in a["anomalies"]],
                          row_classes=[x["severity"] for x in a["anomalies"]])  # fmt: skip
    return Section("data", "Data", html)


def _features(f: dict[str, Any]) -> Section:
    label = f.get("label") or {}
    html = _kv([("features", _id(f["id"], 64)), ("path", f["path"]), ("label", label.get("column")),
                ("outputs", f["outputs"]),
                ("passthrough", ", ".join(f["passthrough"]) or None)])  # fmt: skip
    html += table(["columns", "transform", "options", "outputs", "imputed with"],
                  [[", ".join(map(str, e["columns"])), e["transform"], plain(e["options"]) if e["options"] else "",
                    e["outputs"], e["impute_value"]] for e in f["entries"]], numeric={3})  # fmt: skip
    html += "<h3>Raw inputs, as seen in training</h3>" + table(
        ["column", "type", "nullable", "min", "max", "values"],
        [[i["column"], i["type"], i["nullable"], i["min"], i["max"], i["values"]] for i in f["inputs"]],
        numeric={3, 4, 5})  # fmt: skip
    return Section("features", "Features", html)


def _training(t: dict[str, Any]) -> Section:
    html = _kv([("estimator", t["estimator"]), ("params", plain(t["params"]) if t["params"] else "defaults"),
                ("seed", t["seed"]), ("weight", t["weight"]), ("config", _id(t["config_id"], 64))])  # fmt: skip
    s = t["search"]
    if s:
        html += (f"<h3>Search</h3><p>{escape(str(s['search']))} search, {s['trials']} trials × {s['folds']} folds, "
                 f"scoring {escape(str(s['scoring']))}: best {num(s['best_score'])} ± {num(s['best_score_std'])} "
                 f"with {escape(plain(s['best_params']))}</p>")  # fmt: skip
        if s.get("space"):
            html += f'<p class="muted">space {escape(plain(s["space"]))}</p>'
        html += table(["rank", "trial", "params", "mean", "std"],
                      [[x["rank"], x["trial"], plain(x["params"]), x["mean"], x["std"]] for x in s["top"]],
                      numeric={0, 1, 3, 4})  # fmt: skip
    splits = list(t["metrics"])
    names = list(dict.fromkeys(k for v in t["metrics"].values() for k in v))
    if splits:
        html += "<h3>Training metrics</h3>" + table(
            ["metric", *splits], [[n, *[t["metrics"][s].get(n) for s in splits]] for n in names],
            numeric=set(range(1, len(splits) + 1)))  # fmt: skip
    if t["warnings"]:
        html += (
            "<h3>Warnings</h3><ul>"
            + "".join(f"<li>{escape(str(w))}</li>" for w in t["warnings"])
            + "</ul>"
        )
    return Section("training", "Training", html)


def _evaluation(ev: dict[str, Any] | None) -> list[Section]:
    if ev is None:
        none = '<p class="muted">no evaluation of this model in the store (run <code>mlstage evaluate</code>)</p>'
        return [
            Section("evaluation", "Evaluation", none),
            Section("gates", "Gates and blessing", none),
        ]
    level = (ev.get("bootstrap") or {}).get("level")
    html = (f"<p>evaluation {_id(ev['id'])[1]} of {escape(ev['created'])} on {num(ev['rows'])} rows of split "
            f"<b>{escape(str(ev['split']))}</b> of data {_id(ev['data']['id'])[1]}"
            + (f"; {level:.0%} intervals from a {escape(ev['bootstrap']['method'])}" if level else "; no intervals")
            + "</p>")  # fmt: skip
    html += table(["metric", "value", "interval"],
                  [[k, v, _interval(ev["intervals"].get(k))]
                   for k, v in ev["overall"].items()], numeric={1})  # fmt: skip
    shown = [k for k in SLICE_METRICS.get(ev["task"], []) if k in ev["overall"]]
    if ev["slices"]:
        headline = HEADLINE.get(ev["task"], shown[0] if shown else "")
        html += "<h3>Slices</h3>" + grid([charts.hbars(
            [s["name"] for s in ev["slices"]], [s["metrics"].get(headline) for s in ev["slices"]],
            title=f"{headline} by slice", xlabel=headline, threshold=ev["overall"].get(headline),
            notes=[f"n={s['rows']:,}" + ("" if s["gated"] else " (not gated)") for s in ev["slices"]],
            intervals=[s["intervals"].get(headline) for s in ev["slices"]])])  # fmt: skip
        html += table(["slice", "rows", "gated", *shown],
                      [[s["name"], s["rows"], s["gated"],
                        *[_with_interval(s["metrics"].get(k), s["intervals"].get(k)) for k in shown]]
                       for s in ev["slices"]], sortable=True, numeric={1})  # fmt: skip
    for col, f in ev["fairness"].items():
        html += f"<h3>Fairness by {escape(col)}</h3>" + table(
            ["disparity", "value", "interval"],
            [[k, v, _interval(f["intervals"].get(k))]
             for k, v in f["disparities"].items()], numeric={1})  # fmt: skip
        keys = list(
            dict.fromkeys(k for g in f["groups"].values() for k in g if k not in ("rows", "gated"))
        )
        html += table(["group", "rows", "gated", *keys],
                      [[g, v["rows"], v.get("gated", True), *[v.get(k) for k in keys]]
                       for g, v in f["groups"].items()], numeric=set(range(1, len(keys) + 3)) - {2})  # fmt: skip
    blessing = {"checks": ev["checks"]}
    gates = (
        f"<p>{verdict(ev['blessed'], 'blessed', 'not blessed')} by evaluation {_id(ev['id'])[1]}"
    )
    if ev["baseline_model"]:
        gates += f" against baseline model {_id(ev['baseline_model'])[1]}"
    if ev.get("min_slice_size"):
        gates += f"; slices and groups under {ev['min_slice_size']} rows are not gated"
    gates += "</p>" + checks_table(blessing)
    if ev["other_evaluations"]:
        gates += ('<p class="muted">other evaluations of this model in the store: '
                  + " ".join(_id(e)[1] for e in ev["other_evaluations"]) + " (choose one with <code>--evaluation</code>)</p>")  # fmt: skip
    return [
        Section("evaluation", "Evaluation", html),
        Section("gates", "Gates and blessing", gates),
    ]


def _deployments(d: dict[str, Any]) -> Section:
    if d["searched"] is None:
        html = ('<p class="muted">no registry searched: give <code>REGISTRY/NAME</code> or '
                "<code>--registry REGISTRY</code> for the deployment history</p>")  # fmt: skip
        return Section("deployment", "Deployment", html)
    if not d["registries"]:
        return Section("deployment", "Deployment",
                       f'<p class="muted">not deployed in {escape(d["searched"])}</p>')  # fmt: skip
    html = ""
    for r in d["registries"]:
        html += (f"<h3>{escape(r['registry'])}/{escape(r['name'])}</h3><p>serves version {r['version']} "
                 f"(model {_id(r['served_model'])[1]}"
                 + (", this model)" if r["serves_this_model"] else ", another model)") + "</p>")  # fmt: skip
        if r["other"]:
            html += _kv([(k, plain(v)) for k, v in r["other"].items()])
        keys = list(dict.fromkeys(k for h in r["history"] for k in h))
        html += table(keys, [[_cell(k, h.get(k)) for k in keys] for h in r["history"]])
    return Section("deployment", "Deployment", html)


def sections(card: dict[str, Any]) -> list[Section]:
    return [
        _overview(card),
        _use(card["info"]),
        _lineage(card),
        _data(card["data"]),
        _features(card["features"]),
        _training(card["training"]),
        *_evaluation(card["evaluation"]),
        _deployments(card["deployments"]),
    ]
