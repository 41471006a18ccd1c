"""What an operator (or a disk) does to the registry never takes the model away: the
served version stays until a replacement loads, a cold start falls back to the newest
version that loads, and a load that hangs blocks nothing (issue 15)."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from starlette.testclient import TestClient

from mlstage.model.artifact import Model
from mlstage.serving import models as served_models
from mlstage.serving.app import create_app
from mlstage.stages.deploy import deploy, rollback
from mlstage.store.registry import pointed, read_serving, versions, write_serving
from mlstage.store.store import Store

from .conftest import NO_CHECK, row

PREDICT = "/v1/models/income:predict"


@pytest.fixture
def reg(here, tmp_path):
    reg = tmp_path / "reg"
    store = Store.open()
    deploy(store, "m1", "e1", reg, name="income", check=NO_CHECK)
    deploy(store, "m2", "e2", reg, check=NO_CHECK)
    return reg


def serve(reg, said):
    app = create_app(reg, watch=False)
    app.state.served._log = said.append
    return app


def corrupt(path):
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-4] + b"oops")


def test_removing_the_served_versions_directory_keeps_it_serving(reg):
    said = []
    app = serve(reg, said)
    with TestClient(app) as c:
        assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 2
        shutil.rmtree(reg / "income" / "2")
        for _ in range(3):  # said once, not on every refresh
            app.state.served.refresh()
        r = c.post(PREDICT, json={"instances": [row()]})
        assert r.status_code == 200 and r.json()["model_version"] == 2
        status = c.get("/v1/models/income").json()
        assert (
            status["served_version"] == 2
            and "folder, or its manifest, is gone" in status["problem"]
        )
        assert str(reg) not in str(status)
        assert c.get("/healthz").json()["problems"]["income"] == status["problem"]
        assert 'mlstage_serving_problem{model="income"} 1.0' in c.get("/metrics").text
        assert sum("is gone" in s for s in said) == 1, said
        # the operator points at a good version: the problem clears, said once
        rollback(reg, to=1)
        app.state.served.refresh()
        assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 1
        assert c.get("/v1/models/income").json()["problem"] is None
        assert any("resolved; serving version 1" in s for s in said)


def test_a_pointed_version_that_fails_keeps_the_loaded_one_and_says_why(reg):
    said = []
    app = serve(reg, said)
    with TestClient(app) as c:
        rollback(reg, to=1)
        app.state.served.refresh()
        shutil.copytree(reg / "income" / "2", reg / "income" / "3")
        corrupt(reg / "income" / "3" / "model.skops")
        write_serving(reg / "income", pointed(read_serving(reg / "income"), 3, "x", "deploy", ""))
        app.state.served.refresh()
        assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 1
        problem = c.get("/v1/models/income").json()["problem"]
        assert (
            problem.startswith("version 3 does not load") and "still serving version 1" in problem
        )
        assert "do not match its manifest" in problem and str(reg) not in problem


def test_a_cold_start_falls_back_to_the_newest_version_that_loads(here, tmp_path, reg):
    store = Store.open()
    deploy(
        store, "m1", "e1", reg, message="v3 is m1 again", check=NO_CHECK
    )  # -> version 1 is pointed again
    shutil.copytree(reg / "income" / "2", reg / "income" / "3")
    corrupt(reg / "income" / "3" / "model.skops")
    write_serving(reg / "income", pointed(read_serving(reg / "income"), 3, "x", "deploy", ""))
    said = []
    with TestClient(serve(reg, said)) as c:
        r = c.post(PREDICT, json={"instances": [row()]})
        assert r.status_code == 200 and r.json()["model_version"] == 2
        problem = c.get("/v1/models/income").json()["problem"]
        assert "serving version 2, the newest that loads" in problem
        assert any("the newest that loads" in s for s in said)


def test_links_to_devices_are_refused_without_reading_them(reg):
    folder = reg / "income"
    shutil.copytree(folder / "2", folder / "3")
    os.chmod(folder / "3" / "model.skops", 0o644)
    os.remove(folder / "3" / "model.skops")
    os.symlink("/dev/zero", folder / "3" / "model.skops")
    shutil.copytree(folder / "2", folder / "4")
    os.remove(folder / "4" / "manifest.json")
    os.symlink("/dev/zero", folder / "4" / "manifest.json")
    assert set(versions(folder)) == {1, 2, 3}  # 4's manifest is not read at all
    write_serving(folder, pointed(read_serving(folder), 3, "x", "deploy", ""))
    said = []
    start = time.monotonic()
    with TestClient(serve(reg, said)) as c:
        assert time.monotonic() - start < 10
        assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 2
        states = {
            s["version"]: s for s in c.get("/v1/models/income").json()["model_version_status"]
        }
        assert "not a regular file" in states["3"]["status"]["error_message"]


def test_a_load_that_hangs_blocks_no_later_deploy(reg, monkeypatch):
    monkeypatch.setattr(served_models, "LOAD_SECONDS", 1.0)
    release = threading.Event()
    real = Model.load.__func__

    def load(cls, path):
        if path.name == "3":
            release.wait(60)  # a stalled disk
        return real(cls, path)

    monkeypatch.setattr(Model, "load", classmethod(load))
    said = []
    app = serve(reg, said)
    try:
        with TestClient(app) as c:
            served = app.state.served
            shutil.copytree(reg / "income" / "2", reg / "income" / "3")
            write_serving(
                reg / "income", pointed(read_serving(reg / "income"), 3, "x", "deploy", "")
            )
            start = time.monotonic()
            served.refresh(wait=0.2)  # loading: version 2 answers meanwhile
            assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 2
            assert c.get("/v1/models/income").json()["problem"] is None
            time.sleep(1.1)
            served.refresh()
            assert time.monotonic() - start < 5  # the hung load was not waited for again
            assert "did not load within 1 s" in c.get("/v1/models/income").json()["problem"]
            assert served.stuck_loads() == 1
            assert "mlstage_stuck_loads 1.0" in c.get("/metrics").text
            rollback(reg, to=1)  # a later rollback goes through at once
            served.refresh()
            assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 1
            assert sum("did not load within" in s for s in said) == 1
    finally:
        release.set()


def test_a_missing_serving_json_or_registry_keeps_the_models_in_memory(reg):
    said = []
    app = serve(reg, said)
    with TestClient(app) as c:
        (reg / "income" / "serving.json").rename(reg / "income" / "serving.json.bak")
        app.state.served.refresh()
        app.state.served.refresh()
        r = c.post(PREDICT, json={"instances": [row()]})
        assert r.status_code == 200 and r.json()["model_version"] == 2
        assert "no longer lists this model" in c.get("/v1/models/income").json()["problem"]
        assert sum("no longer lists" in s for s in said) == 1
        (reg / "income" / "serving.json.bak").rename(reg / "income" / "serving.json")
        reg.rename(reg.with_name("elsewhere"))  # an unmounted registry
        app.state.served.refresh()
        assert c.post(PREDICT, json={"instances": [row()]}).status_code == 200
        assert c.get("/healthz").status_code == 200


def test_a_retry_of_a_failing_version_does_not_flap_resolved(reg, monkeypatch):
    monkeypatch.setattr(served_models, "RETRY_SECONDS", 0.0)
    real = Model.load.__func__

    def slow_failure(cls, path):
        if path.name == "3":
            time.sleep(0.3)
            raise RuntimeError("damaged")
        return real(cls, path)

    monkeypatch.setattr(Model, "load", classmethod(slow_failure))
    said = []
    app = serve(reg, said)
    with TestClient(app) as c:
        shutil.copytree(reg / "income" / "2", reg / "income" / "3")
        write_serving(reg / "income", pointed(read_serving(reg / "income"), 3, "x", "deploy", ""))
        app.state.served.refresh()  # the first failure
        for _ in range(6):  # each refresh starts a retry and does not wait for it
            app.state.served.refresh(wait=0.05)
            time.sleep(0.1)
            assert c.get("/v1/models/income").json()["problem"], said
        assert not any("resolved" in s for s in said), said
        assert sum("version 3 does not load" in s for s in said) == 1, said


def test_a_cold_start_with_an_unreadable_serving_json_serves_the_newest(reg):
    (reg / "income" / "serving.json").chmod(0o644)
    (reg / "income" / "serving.json").write_text("{not json")
    said = []
    with TestClient(serve(reg, said)) as c:
        assert c.post(PREDICT, json={"instances": [row()]}).json()["model_version"] == 2
        problem = c.get("/v1/models/income").json()["problem"]
        assert "cannot read serving.json" in problem and "the newest that loads" in problem


def test_deploy_never_points_again_at_a_damaged_copy(reg):
    rollback(reg, to=1)
    corrupt(reg / "income" / "2" / "model.skops")
    result = deploy(Store.open(), "m2", "e2", reg, check=NO_CHECK)
    assert result.version == 3 and read_serving(reg / "income")["version"] == 3
    assert deploy(Store.open(), "m2", "e2", reg, check=NO_CHECK).up_to_date
