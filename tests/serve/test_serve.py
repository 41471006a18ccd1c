"""`deploy` and `serve`: the registry, both HTTP protocols, validation, hot swap, logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import polars as pl
import pytest
from starlette.testclient import TestClient

from mlstage.errors import BadInput
from mlstage.serving.app import create_app
from mlstage.stages.deploy import DeployRefused, deploy, rollback
from mlstage.store.registry import read_serving
from mlstage.store.store import Store

from ..conftest import cli, mlstage_exe, run_mlstage
from .conftest import INPUTS, NO_CHECK, free_port, post, row, stderr_of, wait_ready


def test_deploy_versions_gates_and_rollback(here, tmp_path):
    store = Store.open()
    reg = tmp_path / "reg"
    r = deploy(store, "m1", "e1", reg, name="income")
    assert (r.version, r.action) == (1, "deploy") and (
        reg / "income" / "1" / "model.skops"
    ).exists()
    assert deploy(
        store, "m1", "e1", reg, check=NO_CHECK
    ).up_to_date  # --name defaults to the only model
    with pytest.raises(DeployRefused, match="not blessed \\(accuracy failed\\)"):
        deploy(store, "m1", "e1_fail", reg, check=NO_CHECK)
    with pytest.raises(DeployRefused, match="the evaluation is of model .*, not of"):
        deploy(store, "m2", "e1", reg, check=NO_CHECK)
    r2 = deploy(store, "m2", "e2", reg, message="better", check=NO_CHECK)
    assert r2.version == 2
    back = deploy(store, "m1", "e1", reg, check=NO_CHECK)
    assert (back.version, back.action) == (1, "redeploy") and not (reg / "income" / "3").exists()
    rb = rollback(reg)
    assert rb.version == 2 and read_serving(reg / "income")["version"] == 2
    assert rollback(reg, to=1).version == 1
    with pytest.raises(BadInput, match="no version 9"):
        rollback(reg, to=9)
    forced = deploy(store, "m2", "e1_fail", reg, allow_unblessed=True, check=NO_CHECK)
    assert forced.action == "deploy-unblessed"
    history = read_serving(reg / "income")["history"]
    assert [h["action"] for h in history] == [
        "deploy",
        "deploy",
        "redeploy",
        "rollback",
        "rollback",
        "deploy-unblessed",
    ]
    assert history[1]["message"] == "better"
    # the registry's versions are logged, so gc keeps them
    assert store.last_write(reg / "income" / "2") is not None


def test_deploy_cli_exit_codes(here, tmp_path):
    reg = str(tmp_path / "reg")
    r = cli("deploy", "m1", "--evaluation", "e1_fail", "--registry", reg, "--name", "income")
    assert r.exit_code == 1 and "not blessed" in r.stderr
    r = cli("deploy", "m1", "--evaluation", "e1", "--registry", reg, "--name", "income", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == 1
    r = cli("deploy", "--rollback", "--registry", reg)
    assert r.exit_code == 2 and "no earlier version" in r.stderr


def test_tf_serving_row_and_column_formats(client):
    r = client.post(
        "/v1/models/income:predict", json={"instances": [row(), row(age=25, sex="Female")]}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] == 1 and set(body["predictions"]) <= {"<=50K", ">50K"}
    assert len(body["probabilities"]) == 2 and sum(body["probabilities"][0]) == pytest.approx(1)
    col = client.post(
        "/v1/models/income/versions/1:predict",
        json={"inputs": {k: [v, v] for k, v in row().items()}},
    ).json()
    assert (
        col["outputs"]["predictions"] == [body["predictions"][0]] * 2 and col["model_version"] == 1
    )
    assert r.headers["x-request-id"]
    assert (
        client.post(
            "/v1/models/income:predict",
            json={"instances": [row()]},
            headers={"X-Request-ID": "me-1"},
        ).headers["x-request-id"]
        == "me-1"
    )


def test_server_predictions_equal_batch_predictions(client, here):
    from mlstage.model.artifact import Model

    model = Model.load(client.registry / "income" / "1")
    raw = pl.read_parquet("ds/eval.parquet").head(200)
    want, proba = model.predict_frame(raw)
    rows = [{k: r[k] for k in INPUTS} for r in raw.to_dicts()]
    got = client.post("/v1/models/income:predict", json={"instances": rows}).json()
    assert got["predictions"] == want
    np.testing.assert_allclose(got["probabilities"], proba, rtol=1e-6)


def test_mlflow_protocol(client):
    cols = INPUTS
    split = {"dataframe_split": {"columns": cols, "data": [[row()[c] for c in cols]]}}
    for body in (
        split,
        {"dataframe_records": [row()]},
        {"instances": [row()]},
        {"inputs": {k: [v] for k, v in row().items()}},
    ):
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert len(r.json()["predictions"]) == 1
    csv = "age,hours-per-week,workclass,sex\n40,45,Private,Male\n,30,,Female\n"
    r = client.post("/invocations?model=income", content=csv, headers={"content-type": "text/csv"})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    r = client.post("/invocations", content="x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and set(r.json()) == {"error_code", "message"}
    assert client.post("/invocations?model=nope", json={"instances": [row()]}).status_code == 404


def test_validation_errors_name_the_field_and_nulls_are_imputed(client):
    def err(body, path="/v1/models/income:predict"):
        r = client.post(path, content=body if isinstance(body, str) else json.dumps(body))
        return r.status_code, r.json()

    assert err({"instances": [row(age="old")]}) == (
        400,
        {"error": "field \"age\": cannot convert 'old' to int"},
    )
    code, body = err({"instances": [{"age": 40}]})
    assert code == 400 and 'field "workclass" is absent' in body["error"]
    assert err("{not json")[0] == 400
    assert err({"instances": []})[0] == 400
    assert err({"rows": []})[0] == 400
    assert err({"instances": [row()] * 10_001})[0] == 413
    assert err({"instances": [row()]}, "/v1/models/nope:predict")[0] == 404
    assert err({"instances": [row()]}, "/v1/models/income/versions/7:predict")[0] == 404
    ok = client.post(
        "/v1/models/income:predict",
        json={"instances": [row(age=None, workclass=None, extra="ignored")]},
    )
    assert (
        ok.status_code == 200
    )  # null is a missing value, imputed as in training; extra fields ignored


def test_status_metadata_health_metrics(client):
    status = client.get("/v1/models/income").json()
    assert status == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ],
        "served_version": 1,
        "labels": {"stable": 1},
        "canary": None,
        "shadow": None,
        "problem": None,
    }
    meta = client.get("/v1/models/income/metadata").json()
    assert meta["model_spec"] == {"version": "1", "version_labels": ["stable"]}
    assert meta["metadata"]["signature"]["inputs"]["age"]["type"] == "int"
    assert client.get("/healthz").status_code == 200
    client.post("/v1/models/income:predict", json={"instances": [row()]})
    text = client.get("/metrics").text
    assert 'mlstage_requests_total{code="200",endpoint="v1",model="income",version="1"}' in text
    assert (
        "mlstage_request_seconds_bucket" in text
        and 'mlstage_served_version{model="income"} 1.0' in text
        and 'mlstage_serving_problem{model="income"} 0.0' in text
    )


def test_request_logs(client, tmp_path):
    for i in range(3):
        client.post(
            "/v1/models/income:predict",
            json={"instances": [row(age=30 + i)]},
            headers={"X-Request-ID": f"r{i}"},
        )
    assert client.app_.state.reqlog.flush() == 3
    logs = pl.read_parquet(tmp_path / "logs" / "*.parquet")
    assert logs["request_id"].to_list() == ["r0", "r1", "r2"]
    assert {"request_id", "ts", "model", "version", "age", "prediction", "proba_>50K"} <= set(
        logs.columns
    )
    assert "sex" not in logs.columns  # --log-exclude


def test_empty_registry_answers_503_until_a_deploy(here, tmp_path):
    reg = tmp_path / "reg"
    reg.mkdir()
    app = create_app(reg, watch=False)
    with TestClient(app) as c:
        assert c.get("/healthz").status_code == 503
        assert c.post("/invocations", json={"instances": [row()]}).status_code == 503
        deploy(Store.open(), "m1", "e1", reg, name="income", check=NO_CHECK)
        app.state.served.refresh()
        assert c.post("/v1/models/income:predict", json={"instances": [row()]}).status_code == 200


def test_a_corrupt_version_is_reported_and_the_old_one_keeps_serving(here, tmp_path):
    reg = tmp_path / "reg"
    store = Store.open()
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    app = create_app(reg, watch=False)
    with TestClient(app) as c:
        deploy(store, "m2", "e2", reg, check=NO_CHECK)
        target = reg / "income" / "2" / "model.skops"
        os.chmod(target, 0o644)
        target.write_bytes(target.read_bytes()[:-10] + b"0123456789")
        app.state.served.refresh()
        r = c.post("/v1/models/income:predict", json={"instances": [row()]})
        assert r.json()["model_version"] == 1
        status = {
            s["version"]: s for s in c.get("/v1/models/income").json()["model_version_status"]
        }
        assert (
            status["2"]["state"] == "END"
            and "do not match its manifest" in status["2"]["status"]["error_message"]
        )


# -- a real server ----------------------------------------------------------------------


def test_hot_swap_under_load_drops_no_request_and_sigterm_flushes_logs(here, tmp_path):
    reg = tmp_path / "reg"
    store = Store.open()
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    port = free_port()
    proc = subprocess.Popen(
        [
            mlstage_exe(),
            "serve",
            "--registry",
            str(reg),
            "--port",
            str(port),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=here,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(port, proc)
        failures, versions, stop = [], set(), threading.Event()

        def client():
            while not stop.is_set():
                try:
                    status, body = post(port, "/v1/models/income:predict", {"instances": [row()]})
                    versions.add(body["model_version"])
                    if status != 200:
                        failures.append(status)
                except Exception as e:  # noqa: BLE001 - any failure counts
                    failures.append(repr(e))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(1)
        deploy(store, "m2", "e2", reg, check=NO_CHECK)
        deadline = time.time() + 20
        while 2 not in versions and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        rollback(reg)
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join()
        assert failures == [], failures[:5]
        assert versions == {1, 2}, stderr_of(proc)
        # clients that hang up before the answer (SIGPIPE) must not take the server down
        big = json.dumps({"instances": [row()] * 5000}).encode()
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(
                    b"POST /v1/models/income:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(big)}\r\n\r\n".encode()
                    + big
                )
        time.sleep(1)
        assert post(port, "/v1/models/income:predict", {"instances": [row()]})[0] == 200
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        server_log = proc.stderr.read().decode()
        assert code in (0, -signal.SIGTERM), server_log  # uvicorn re-raises the signal once done
        assert list((tmp_path / "logs").glob("*.parquet")), server_log
        logs = pl.read_parquet(tmp_path / "logs" / "*.parquet")
        assert logs.height > 50 and set(logs["version"].unique()) == {1, 2}
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_bad_inputs(here, tmp_path):
    r = run_mlstage("serve", "--registry", str(tmp_path / "nope"), cwd=tmp_path)
    assert r.returncode == 2 and b"no such registry directory" in r.stderr
    (tmp_path / "reg").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_mlstage(
            "serve", "--registry", str(tmp_path / "reg"), "--port", str(port), cwd=tmp_path
        )
    assert r.returncode == 2 and b"is in use" in r.stderr


def test_review_regressions(client, tmp_path):
    """Values past float32 and odd MLflow columns are 400s; a rollback typo creates nothing."""
    for bad in (10**400, 1e300):
        r = client.post(
            "/v1/models/income:predict", content=json.dumps({"instances": [row(age=bad)]})
        )
        assert r.status_code == 400 and 'field "age"' in r.json()["error"]
    r = client.post("/invocations", json={"dataframe_split": {"columns": [["age"]], "data": [[1]]}})
    assert r.status_code == 400 and "columns must be strings" in r.json()["message"]
    with pytest.raises(BadInput, match="nothing is served yet"):
        rollback(client.registry, name="typo")
    assert not (client.registry / "typo").exists()
