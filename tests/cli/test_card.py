"""`mlstage report --card` through typer's CliRunner: HTML and JSON forms, stdout, the
card-info file, and exit 2 for what is not a model or an option out of place."""

from __future__ import annotations

import json

import pytest

from ..conftest import build_model_chain, cli, working_in, write


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cardcli")
    with working_in(root):
        ids = build_model_chain(root, rows=1000)
    return root, ids


@pytest.fixture
def here(built, monkeypatch):
    monkeypatch.chdir(built[0])
    return built


def test_card_as_a_page_as_json_and_on_stdout(here, tmp_path):
    root, ids = here
    info = write(tmp_path / "info.yaml", "owner: Data team\nintended_use: |\n  Research only.\n"
                 "limitations:\n  - '<script>alert(1)</script>'\n")  # fmt: skip
    r = cli(
        "report", "reg/income", "--card", "--card-info", str(info), "-o", str(tmp_path / "c.html")
    )
    assert r.exit_code == 0, r.stderr
    assert f"report: wrote {tmp_path / 'c.html'} (card {ids['m'][:12]}" in r.stderr
    html = (tmp_path / "c.html").read_text()
    for section in ("overview", "use", "lineage", "data", "features", "training", "evaluation",
                    "gates", "deployment"):  # fmt: skip
        assert f'<section id="{section}">' in html, section
    assert "Research only." in html and "Data team" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    # -o FILE.json: the JSON form; --json -o -: the same bytes on stdout
    r = cli(
        "report", "reg/income", "--card", "--card-info", str(info), "-o", str(tmp_path / "c.json")
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["format"] == "mlstage-card/1" and doc["model"]["id"] == ids["m"]
    assert doc["info"]["limitations"] == ["<script>alert(1)</script>"]
    out = cli("report", "reg/income", "--card", "--card-info", str(info), "--json", "-o", "-")
    assert out.exit_code == 0 and out.stdout == (tmp_path / "c.json").read_text()
    page = cli("report", "m", "--card", "-o", "-")
    assert page.exit_code == 0 and page.stdout.startswith("<!DOCTYPE html>")
    # MODEL --registry: its deployments; --evaluation: the one chosen
    r = cli(
        "report", "m2", "--card", "--registry", "reg", "--evaluation", "ev2", "--json", "-o", "-"
    )
    doc = json.loads(r.stdout)
    assert doc["evaluation"]["id"] == ids["ev2"]
    assert [h["action"] for h in doc["deployments"]["registries"][0]["history"]] == [
        "deploy-unblessed"
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["ds", "--card"],
            "ds: a model card is for a model (MODEL or REGISTRY/NAME); this is a dataset artifact",
        ),
        (["ev", "--card"], "this is an evaluation artifact"),
        (["nowhere", "--card"], "nowhere"),
        (["m", "--registry", "reg"], "--registry: only with --card"),
        (["ev", "--json"], "--json: only with --card"),
        (["m", "--card", "--baseline", "m2"], "--baseline is for artifact reports, not --card"),
        (["reg/income", "--card", "--registry", "reg"], "--registry is for a MODEL argument"),
        (["m", "--card", "--evaluation", "ev2"], "not of"),
        (["m", "--card", "--registry", "noreg"], "noreg: --registry: no such registry folder"),
    ],
)
def test_not_a_model_or_an_option_out_of_place_is_exit_2(here, tmp_path, args, message):
    r = cli("report", *args, "-o", str(tmp_path / "bad.html"))
    assert r.exit_code == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "bad.html").exists()


def test_bad_card_info_is_exit_2_naming_the_file_and_the_key(here, tmp_path):
    for text, key in (("ownr: a\n", "$.ownr: unknown key"),
                      ("limitations: {a: 1}\n", "$.limitations: expected a text or a list")):  # fmt: skip
        bad = write(tmp_path / "bad.yaml", text)
        r = cli("report", "m", "--card", "--card-info", str(bad), "-o", str(tmp_path / "c.html"))
        assert r.exit_code == 2 and str(bad) in r.stderr and key in r.stderr, r.stderr
        assert not (tmp_path / "c.html").exists()


def test_a_card_replaces_only_a_card(here, tmp_path):
    other = write(tmp_path / "notes.json", '{"mine": true}')
    r = cli("report", "m", "--card", "-o", str(other))
    assert r.exit_code == 2 and "is not a card mlstage wrote" in r.stderr
    assert other.read_text() == '{"mine": true}'
    assert cli("report", "m", "--card", "-o", str(tmp_path / "c.json")).exit_code == 0
    assert cli("report", "m2", "--card", "-o", str(tmp_path / "c.json")).exit_code == 0
    assert json.loads((tmp_path / "c.json").read_text())["model"]["ref"] == "m2"


def test_store_commands_read_registry_name_as_the_version_it_serves(here, tmp_path):
    # show, lineage, diff and checkout take REGISTRY/NAME as predict and evaluate do
    root, ids = here
    shown = json.loads(cli("show", "reg/income").stdout)
    assert shown["id"] == ids["m"]  # version 2, the served one (not m2, version 1)
    lineage = cli("lineage", "reg/income", "--json")
    assert lineage.exit_code == 0 and ids["feat"] in lineage.stdout
    d = json.loads(cli("diff", "reg/income", "m2", "--json").stdout)
    assert {r["field"]: (r["a"], r["b"]) for r in d}["id"] == (ids["m"], ids["m2"])
    out = cli("checkout", "reg/income", "-o", str(tmp_path / "served"))
    assert out.exit_code == 0, out.stderr
    assert json.loads((tmp_path / "served/manifest.json").read_text())["id"] == ids["m"]
    missing = cli("show", "reg/absent")
    assert missing.exit_code == 2 and "reg/absent" in missing.stderr
