"""The Open Inference Protocol's edges, and the health endpoints, through the app."""

from __future__ import annotations

from starlette.testclient import TestClient

from mlstage.serving.app import create_app

from .conftest import NO_CHECK

INFER = "/v2/models/income/infer"


def tensors(n=2, **over):
    cols = {"age": ("INT64", [40] * n), "hours-per-week": ("INT64", [45] * n),
            "workclass": ("BYTES", ["Private"] * n), "sex": ("BYTES", ["Male"] * n)}  # fmt: skip
    cols.update(over)
    return [{"name": k, "datatype": d, "shape": [len(v)], "data": v} for k, (d, v) in cols.items()]


def test_infer_answers_named_outputs_and_logs(client):
    r = client.post(INFER, json={"id": "a1", "inputs": tensors(3)})
    doc = r.json()
    assert r.status_code == 200 and doc["id"] == "a1" and doc["model_version"] == "1"
    out = {o["name"]: o for o in doc["outputs"]}
    assert out["prediction"]["datatype"] == "BYTES" and out["prediction"]["shape"] == [3]
    p = [out["proba_<=50K"]["data"][i] + out["proba_>50K"]["data"][i] for i in range(3)]
    assert all(abs(x - 1) < 1e-6 for x in p)
    v1 = client.post("/v1/models/income:predict", json={"instances": [
        {t["name"]: t["data"][0] for t in tensors(1)}]}).json()  # fmt: skip
    assert out["prediction"]["data"][0] == v1["predictions"][0]
    # [rows, 1] shapes and nested data, a null, and asking for one output
    col = [{**t, "shape": [2, 1], "data": [[x] for x in t["data"]]} for t in tensors(2)]
    col[0]["data"][1] = [None]
    r = client.post(INFER, json={"inputs": col, "outputs": [{"name": "prediction"}]})
    assert r.status_code == 200 and [o["name"] for o in r.json()["outputs"]] == ["prediction"]
    assert client.app_.state.reqlog.flush() == 6


def test_infer_mistakes_are_400_in_the_protocols_shape(client):
    cases = [
        ({"inputs": []}, "send {"),
        ({"inputs": tensors() + tensors()[:1]}, 'input "age" is given twice'),
        ({"inputs": tensors(age=("INT128", [1, 2]))}, "datatype 'INT128' is not one of"),
        ({"inputs": [{**tensors()[0], "shape": [2, 3]}]}, "a column is shape [rows] or [rows, 1]"),
        ({"inputs": [{**tensors()[0], "shape": [3]}]}, "data must be a list of 3 values"),
        ({"inputs": tensors(age=("INT64", [1]))}, "the same number of rows"),
        ({"inputs": tensors(), "outputs": [{"name": "nope"}]}, 'no output named "nope"'),
        ({"inputs": tensors(age=("INT64", ["old", 2]))}, 'field "age"'),
    ]
    for body, message in cases:
        r = client.post(INFER, json=body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.text)
    r = client.post(INFER, json={"inputs": tensors(age=("INT64", [1] * 10_001))})
    assert r.status_code == 413
    r = client.post(INFER, content=b"{}", headers={"inference-header-content-length": "2"})
    assert r.status_code == 400 and "binary tensors" in r.json()["error"]
    assert client.post("/v2/models/nope/infer", json={"inputs": tensors()}).status_code == 404
    r = client.get("/v2/models/income/versions/x")
    assert r.status_code == 400 and "not a version number" in r.json()["error"]
    r = client.get(INFER)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST" and "error" in r.json()


def test_health_endpoints_follow_what_is_servable(here, tmp_path, client):
    for path in ("/ping", "/health", "/v2/health/ready", "/v2/health/live"):
        assert client.get(path).status_code == 200
    assert client.get("/version").text == __import__("mlstage").__version__
    assert client.get("/v2/models/income/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/income/versions/9/ready").status_code == 404
    empty = tmp_path / "empty"
    empty.mkdir()
    with TestClient(create_app(empty, watch=False)) as c:
        for path in ("/ping", "/health", "/v2/health/ready"):
            assert c.get(path).status_code == 503
        assert c.get("/v2/health/live").status_code == 200


def test_a_model_without_probabilities_has_no_proba_outputs(here, tmp_path):
    from mlstage import train
    from mlstage.stages.deploy import deploy
    from mlstage.store.store import Store

    from ..conftest import write_json

    cfg = {
        "format": "mlstage-train/1",
        "task": "classification",
        "seed": 0,
        "estimator": "LinearSVC",
    }
    train("feat", tmp_path / "svc", config=write_json(tmp_path / "svc.json", cfg))
    reg = tmp_path / "reg"
    deploy(
        Store.open(),
        str(tmp_path / "svc"),
        None,
        reg,
        name="income",
        allow_unblessed=True,
        check=NO_CHECK,
    )
    with TestClient(create_app(reg, watch=False)) as c:
        meta = c.get("/v2/models/income").json()
        assert [o["name"] for o in meta["outputs"]] == ["prediction"]
        r = c.post(INFER, json={"inputs": tensors(2)})
        assert [o["name"] for o in r.json()["outputs"]] == ["prediction"]
        r = c.post(INFER, json={"inputs": tensors(2), "outputs": [{"name": "proba_>50K"}]})
        assert r.status_code == 400 and 'no output named "proba_>50K"' in r.json()["error"]
