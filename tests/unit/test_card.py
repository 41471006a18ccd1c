"""The model card's content (`report.card_data.collect`): lineage to the raw sources'
hashes, the training data's statistics and anomalies, the evaluation with its intervals,
the deployment history from a registry, determinism, and the card-info file's checks."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import pytest

from mlstage import featurize, ingest, stats, train
from mlstage.errors import BadInput
from mlstage.model.evaluation_files import read_blessing, read_metrics
from mlstage.report import card
from mlstage.report.card_data import collect
from mlstage.report.card_info import read_card_info
from mlstage.stages.evaluate import evaluate
from mlstage.store.store import Store

from ..conftest import build_model_chain, working_in, write, write_json


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    with working_in(root):
        ids = build_model_chain(root)
    return root, ids


@pytest.fixture
def here(built, monkeypatch):
    monkeypatch.chdir(built[0])
    return built


def _walk(node):
    yield node
    for c in node["inputs"]:
        yield from _walk(c)


def test_lineage_reaches_the_raw_sources_with_their_hashes(here):
    root, ids = here
    c = collect(Store.open(), "m")
    raw = (root / "adult_small.csv").read_bytes()
    assert c["sources"] == [{"path": "adult_small.csv", "sha256": hashlib.sha256(raw).hexdigest(),
                             "bytes": len(raw), "datasets": [ids["ds"]]}]  # fmt: skip
    tree = c["lineage"][0]
    assert (tree["id"], tree["kind"]) == (ids["m"], "model")
    chain = [(n["role"], n["kind"], n["id"]) for n in _walk(tree)]
    assert ("features", "features", ids["feat"]) in chain
    assert ("data", "dataset", ids["ds"]) in chain
    assert ("source", "source", hashlib.sha256(raw).hexdigest()) in chain
    # user-written documents are leaves named by role, whatever the current directory holds
    assert {(n["role"], n["kind"]) for n in _walk(tree) if not n["inputs"]} == {
        ("source", "source"), ("spec", "file"), ("config", "file")}  # fmt: skip
    assert len(c["lineage"]) == 1  # evaluated on the training dataset: no second tree


def test_features_and_training_with_its_search(here):
    _, ids = here
    c = collect(Store.open(), "m")
    f = c["features"]
    assert f["id"] == ids["feat"] and f["label"]["column"] == "income"
    assert [(e["columns"], e["transform"]) for e in f["entries"]] == [
        (["age"], "standardize"), (["hours-per-week"], "standardize"), (["sex"], "one_hot"),
        (["race"], "one_hot")]  # fmt: skip
    assert f["outputs"] == sum(e["outputs"] for e in f["entries"])
    assert {i["column"] for i in f["inputs"]} == {"age", "hours-per-week", "sex", "race"}
    t = c["training"]
    assert t["estimator"] == "LogisticRegression" and t["config"]["tune"]["n_iter"] == 3
    s = t["search"]
    assert s["search"] == "random" and s["trials"] == 3 and s["folds"] == 3
    assert [x["rank"] for x in s["top"]] == sorted(x["rank"] for x in s["top"])
    assert s["top"][0]["params"] == s["best_params"]
    assert set(t["metrics"]) == {"train", "eval"}
    assert collect(Store.open(), "m2")["training"]["search"] is None


def test_statistics_and_anomalies_of_the_training_data_newest_first(here):
    _, ids = here
    st = Store.open()
    data = collect(st, "m")["data"]
    assert data["dataset"]["id"] == ids["ds"] and data["dataset"]["splits"]["train"] > 0
    s = data["statistics"]
    assert s["id"] == ids["st"] and s["split"] == "train"
    # the model's raw inputs and its label, in the dataset's column order
    assert [x["column"] for x in s["columns"]] == ["age", "race", "sex", "hours-per-week", "income"]
    assert data["anomalies"]["id"] == ids["an"]
    assert data["anomalies"]["errors"] == sum(a["severity"] == "error"
                                              for a in data["anomalies"]["anomalies"])  # fmt: skip
    # Another statistics artifact of the same dataset: the newest by (created, id) wins.
    stats("ds", "st_race", slices=["race"])
    newer = json.loads(open("st_race/manifest.json").read())
    older = st.manifest(ids["st"])
    want = max((newer["created"], newer["id"]), (older["created"], older["id"]))[1]
    assert collect(st, "m")["data"]["statistics"]["id"] == want


def test_the_evaluation_with_intervals_gates_and_blessing(here):
    root, ids = here
    ev = collect(Store.open(), "m")["evaluation"]
    metrics, blessing = read_metrics(root / "ev"), read_blessing(root / "ev")
    assert ev["id"] == ids["ev"] and ev["blessed"] is blessing["blessed"] is True
    assert ev["intervals"]["accuracy"] == metrics["intervals"]["accuracy"]
    lo, hi = ev["intervals"]["accuracy"]
    assert lo <= ev["overall"]["accuracy"] <= hi
    assert "confusion_matrix" not in ev["overall"]
    big = [s for s in ev["slices"] if s["rows"] >= 30]
    assert big and all(s["intervals"].get("accuracy") for s in big)
    assert {s["name"] for s in ev["slices"]} == {s["name"] for s in metrics["slices"]}
    sex = ev["fairness"]["sex"]
    assert set(sex["groups"]) == {"Female", "Male"}
    assert sex["intervals"]["demographic_parity_difference"] == (
        metrics["fairness"]["sex"]["intervals"]["demographic_parity_difference"])  # fmt: skip
    assert "min_group_size" not in sex["disparities"]
    assert ev["checks"] == blessing["checks"]
    assert {c["metric"] for c in ev["checks"]} == {"accuracy", "demographic_parity_difference"}
    assert ev["bootstrap"]["level"] == 0.95


def test_choosing_the_evaluation(here, tmp_path):
    root, ids = here
    st = Store.open()
    cfg = json.loads((root / "ev.json").read_text()) | {"slices": [["race"]]}
    evaluate("m", "ds", tmp_path / "ev_b", config=write_json(tmp_path / "ev_b.json", cfg))
    newer = json.loads((tmp_path / "ev_b" / "manifest.json").read_text())["id"]
    # MODEL: the newest evaluation of it; the others are named
    found = collect(st, "m")["evaluation"]
    want = max((st.manifest(i)["created"], i) for i in (ids["ev"], newer))[1]
    assert found["id"] == want
    assert found["other_evaluations"] == sorted({ids["ev"], newer} - {want})
    # --evaluation chooses; an evaluation of another model is refused
    assert collect(st, "m", evaluation="ev")["evaluation"]["id"] == ids["ev"]
    with pytest.raises(
        BadInput, match=f"an evaluation of model {ids['m2'][:12]}, not of {ids['m'][:12]}"
    ):
        collect(st, "m", evaluation="ev2")
    with pytest.raises(BadInput, match="this is a stats artifact; expected evaluation"):
        collect(st, "m", evaluation="st")
    # REGISTRY/NAME: the evaluation recorded when the served version was deployed
    assert collect(st, "reg/income")["evaluation"]["id"] == ids["ev"]


def test_deployment_history_from_a_registry(here):
    _, ids = here
    st = Store.open()
    c = collect(st, "reg/income")
    assert c["model"]["id"] == ids["m"] and c["title"] == "income"
    (r,) = c["deployments"]["registries"]
    assert (r["name"], r["version"], r["served_model"], r["serves_this_model"]) == (
        "income", 2, ids["m"], True)  # fmt: skip
    assert [(h["version"], h["model"], h["action"]) for h in r["history"]] == [
        (1, ids["m2"], "deploy-unblessed"), (2, ids["m"], "deploy")]  # fmt: skip
    assert r["history"][1]["evaluation"] == ids["ev"] and "evaluation" not in r["history"][0]
    # MODEL --registry: only the entries that name it; not served now
    (r2,) = collect(st, "m2", registry="reg")["deployments"]["registries"]
    assert [h["model"] for h in r2["history"]] == [ids["m2"]] and not r2["serves_this_model"]
    assert collect(st, "m")["deployments"] == {
        "searched": None, "registries": []}  # fmt: skip
    with pytest.raises(BadInput, match="REGISTRY/NAME already says where"):
        collect(st, "reg/income", registry="reg")
    with pytest.raises(BadInput, match="a model card is for a model"):
        collect(st, "ds")


def test_other_serving_keys_are_shown_as_they_are(here, tmp_path):
    """Keys a newer deploy may write (labels, canary, shadow; an entry's label or check)."""
    root, ids = here
    shutil.copytree(root / "reg", tmp_path / "reg")
    path = tmp_path / "reg" / "income" / "serving.json"
    doc = json.loads(path.read_text())
    doc |= {"labels": {"stable": 2, "old": 1}, "canary": {"version": 1, "percent": 10},
            "shadow": None}  # fmt: skip
    doc["history"][-1] |= {"label": "stable", "check": {"passed": True}}
    path.write_text(json.dumps(doc))
    st = Store.open()
    (r,) = collect(st, str(tmp_path / "reg" / "income"))["deployments"]["registries"]
    assert r["other"] == {"canary": {"version": 1, "percent": 10},
                          "labels": {"old": 1, "stable": 2}, "shadow": None}  # fmt: skip
    assert list(r["history"][-1]) == ["version", "model", "at", "action", "message", "check",
                                      "evaluation", "label"]  # fmt: skip
    card(str(tmp_path / "reg" / "income"), tmp_path / "c.html", store=st)
    html = (tmp_path / "c.html").read_text()
    shown = html.replace("&quot;", '"')
    assert '"percent": 10' in shown and '"version": 1' in shown
    assert "<th>label</th>" in html and "<td>stable</td>" in html


def test_the_same_store_gives_the_same_bytes(here, tmp_path):
    root, _ = here
    info = write(tmp_path / "info.yaml", "owner: ML team\nlimitations: [small sample]\n")
    for name in ("a.html", "a.json", "b.html", "b.json"):
        if name == "b.html":
            time.sleep(1.1)  # the clock has moved on: nothing of it may show
        card("reg/income", tmp_path / name, info=info)
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["format"] == "mlstage-card/1" and doc["info"]["owner"] == "ML team"
    html = (tmp_path / "a.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "small sample" in html
    assert doc["model"]["created"] in html


def test_a_model_without_statistics_evaluation_or_registry_says_so(tmp_path):
    write(
        tmp_path / "t.csv",
        "x,y,label\n" + "".join(f"{i},{i % 7},{'ab'[i % 2]}\n" for i in range(200)),
    )
    with working_in(tmp_path):
        ingest([tmp_path / "t.csv"], "ds", split={"train": 8, "eval": 2})
        spec = {"format": "mlstage-features/1", "label": "label",
                "features": [{"column": "x", "transform": "standardize"}]}  # fmt: skip
        featurize("ds", "feat", spec=write_json(tmp_path / "spec.json", spec))
        cfg = {
            "format": "mlstage-train/1",
            "task": "classification",
            "estimator": "LogisticRegression",
        }
        train("feat", "m", config=write_json(tmp_path / "train.json", cfg))
        c = collect(Store.open(), "m")
        assert c["data"]["statistics"] is None and c["data"]["anomalies"] is None
        assert c["evaluation"] is None and c["deployments"]["searched"] is None
        # the statistics' columns: x (an input) and the label, never y (not used)
        stats("ds", "st")
        assert [x["column"] for x in collect(Store.open(), "m")["data"]["statistics"]["columns"]] == [
            "x", "label"]  # fmt: skip
        card("m", tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    assert "no evaluation of this model in the store" in html
    assert "no anomalies artifact of this dataset" in html
    assert "no registry searched" in html


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("i.yaml", "owner: a\nownr: b\n", "at $.ownr: unknown key"),
        ("i.yaml", "owner: a\nlimitations: 5\n", "at $.limitations: expected a text or a list"),
        ("i.yaml", "owner: [a, b]\n", "at $.owner: expected a text, found"),
        (
            "i.yaml",
            "owner: a\nowner: b\n",
            "line 2: not valid YAML: the key 'owner' is given twice",
        ),
        ("i.yaml", "- a\n", "a card-info file holds keys"),
        ("i.yml", "references: [x, 3]\n", "at $.references: expected a text or a list"),
        ("i.json", '{"contact": 3}', "at $.contact: expected a text"),
        ("i.json", '{"format": "mlstage-card-info/9"}', 'expected "mlstage-card-info/1"'),
        ("i.toml", 'owner = "a"\nextra = 1\n', "at $.extra: unknown key"),
    ],
)
def test_bad_card_info_names_the_file_and_the_key(tmp_path, name, text, message):
    path = write(tmp_path / name, text)
    with pytest.raises(BadInput) as e:
        read_card_info(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_card_info_keeps_text_and_order(tmp_path):
    path = write(tmp_path / "i.yaml", "references:\n  - r1\ncontact: c@x\nintended_use: on 2024-01-02\n"
                 "owner: o\nformat: mlstage-card-info/1\nout_of_scope: 2024-01-02\n")  # fmt: skip
    info = read_card_info(path)
    assert list(info) == ["owner", "contact", "intended_use", "out_of_scope", "references"]
    assert info["out_of_scope"] == "2024-01-02"  # a date stays the text written


def test_the_example_card_info_is_valid():
    from ..conftest import ROOT

    info = read_card_info(ROOT / "examples" / "adult_card.yaml")
    assert info["owner"] and isinstance(info["limitations"], list) and len(info) == 8
