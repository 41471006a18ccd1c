"""The three protocols with the clients people already run, against a real server:
tritonclient (the Open Inference Protocol), MLflow's scoring-server client (/ping,
/version, /invocations), and Prometheus' own text parser on /metrics (issue 21)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mlstage.model.artifact import Model
from mlstage.stages.deploy import deploy
from mlstage.store.store import Store

from .conftest import INPUTS, NO_CHECK, start_server, wait_ready


@pytest.fixture
def server(here, tmp_path):
    reg = tmp_path / "reg"
    deploy(Store.open(), "m1", "e1", reg, name="income", check=NO_CHECK)
    proc, port = start_server(reg, tmp_path / "serve.log")
    try:
        wait_ready(port, proc)
        yield port, reg
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def rows(here):
    raw = pl.read_parquet(here / "ds" / "eval.parquet").head(25)
    return raw.select(INPUTS)


def expected(here, rows):
    model = Model.load(here / "m1")
    return model, model.predict_rows([model.coerce(r) for r in rows.to_dicts()])


def test_tritonclient_health_metadata_and_infer(server, rows, here):
    import tritonclient.http as triton

    port, _ = server
    c = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("income") and c.is_model_ready("income", "1")
    assert not c.is_model_ready("nope")
    meta = c.get_model_metadata("income")
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "age": "INT64", "hours-per-week": "INT64", "workclass": "BYTES", "sex": "BYTES"}  # fmt: skip
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "proba_<=50K", "proba_>50K"]
    assert c.get_server_metadata()["name"] == "mlstage"
    inputs = []
    for col in INPUTS:
        series = rows[col]
        if series.dtype == pl.String:
            arr, dt = np.array(series.to_list(), dtype=object), "BYTES"
        else:
            arr, dt = series.to_numpy().astype(np.int64), "INT64"
        t = triton.InferInput(col, [len(arr)], dt)
        t.set_data_from_numpy(arr, binary_data=False)
        inputs.append(t)
    outputs = [triton.InferRequestedOutput(n, binary_data=False)
               for n in ("prediction", "proba_>50K")]  # fmt: skip
    result = c.infer("income", inputs, outputs=outputs, request_id="req-7")
    model, (preds, proba) = expected(here, rows)
    got = [p.decode() if isinstance(p, bytes) else p for p in result.as_numpy("prediction")]
    assert got == preds
    np.testing.assert_allclose(result.as_numpy("proba_>50K"), proba[:, 1], rtol=1e-6)
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == "1"
    # a versioned request, and a mistake answered in the protocol's shape
    assert (
        c.infer("income", inputs, model_version="1", outputs=outputs).as_numpy("prediction")
        is not None
    )
    from tritonclient.utils import InferenceServerException

    bad = triton.InferInput("age", [2], "INT64")
    bad.set_data_from_numpy(np.array([1, 2], dtype=np.int64), binary_data=False)
    with pytest.raises(InferenceServerException, match=r'\[400\] field "\w+" is absent'):
        c.infer("income", [bad])


def test_mlflow_scoring_client_ready_version_invoke(server, rows, here):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    port, _ = server
    client = ScoringServerClient("127.0.0.1", port)
    client.wait_server_ready(timeout=10)
    assert client.get_version()
    response = client.invoke(rows.to_pandas())
    _, (preds, _) = expected(here, rows)
    assert list(response.get_predictions(predictions_format="ndarray")) == preds


def test_prometheus_parser_reads_metrics(server):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port, _ = server
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    assert {"mlstage_requests", "mlstage_served_version", "mlstage_serving_problem"} <= set(
        families
    )
    served = families["mlstage_served_version"].samples[0]
    assert served.labels == {"model": "income"} and served.value == 1.0
