"""report: one self-contained HTML page per artifact kind, checked as text and in a real
browser (Debian's chromium, headless, driven by playwright; `make test` installs it)."""

from __future__ import annotations

import io
import os
import re
import shutil

import polars as pl
import pytest

from mlstage import featurize, ingest, monitor, stats, train, validate
from mlstage.report import card, report
from mlstage.stages.deploy import deploy
from mlstage.stages.evaluate import evaluate
from mlstage.stages.schema import schema
from mlstage.store.store import Store

from ..conftest import SAMPLE, cli, working_in, write_json

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SPEC = {"format": "mlstage-features/1", "label": "income", "features": [
    {"column": "age", "transform": "standardize"},
    {"column": "education-num", "transform": "standardize"},
    {"column": "hours-per-week", "transform": "standardize"},
    {"column": "workclass", "transform": "one_hot"},
    {"column": "sex", "transform": "one_hot"},
    {"column": "race", "transform": "one_hot"}]}  # fmt: skip
# Each kind: the sections the page must have, and the least number of charts.
EXPECTED = {
    "stats": (["overview", "columns", "slices"], 15),
    "anomalies": (["anomalies", "drift", "drifted"], 2),
    "evaluation": (
        ["blessing", "metrics", "curves", "slices", "fairness", "importance", "dependence"],
        10,
    ),
    "monitor": (["verdict", "anomalies", "drift", "predictions", "live"], 3),
    "card": (
        [
            "overview",
            "use",
            "lineage",
            "data",
            "features",
            "training",
            "evaluation",
            "gates",
            "deployment",
        ],
        1,
    ),  # fmt: skip
}
CARD_INFO = """owner: Census modelling team
contact: models@example.org
intended_use: Research on income prediction from census attributes.
out_of_scope:
  - decisions about individuals
limitations: Trained on the 1994 US census; the labels are a coarse income threshold.
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    with working_in(root):
        ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split={"train": 8, "eval": 2})
        stats("ds", "st", slices=["sex"])
        schema("st", "sc", label="income")
        older = pl.read_parquet(root / "ds" / "eval.parquet").with_columns(pl.col("age") + 20)
        older.write_parquet(root / "older.parquet")
        ingest([root / "older.parquet"], "older")
        validate("older", "an", schema="sc", baseline="st")
        featurize("ds", "feat", spec=write_json(root / "spec.json", SPEC))
        cfg = {"format": "mlstage-train/1", "task": "classification", "seed": 0,
               "estimator": "LogisticRegression"}  # fmt: skip
        train("feat", "m", config=write_json(root / "train.json", cfg))
        ev = {"format": "mlstage-evaluate/1", "slices": [["sex"], ["race"]], "sensitive": ["sex"],
              "thresholds": {"accuracy": {"min": 0.7}}}  # fmt: skip
        evaluate("m", "ds", "ev", config=write_json(root / "ev.json", ev))
        with_ids = older.with_columns(pl.int_range(pl.len()).cast(pl.String).alias("request_id"))
        with_ids.select("request_id", "income").write_csv(root / "fb.csv")
        from mlstage.model.artifact import Model

        pred, proba = Model.load(root / "m").predict_frame(with_ids)
        logs = root / "logs"
        logs.mkdir()
        with_ids.drop("income").with_columns(
            prediction=pl.Series(pred), **{"proba_<=50K": proba[:, 0], "proba_>50K": proba[:, 1]}
        ).write_parquet(logs / "requests-1.parquet")
        monitor(logs, "mon", baseline="st", schema="sc", evaluation="ev", feedback=root / "fb.csv",
                join=["request_id"])  # fmt: skip
        deploy(Store.open(), "m", "ev", root / "reg", name="income")
        pages = {kind: root / f"{kind}.html" for kind in EXPECTED}
        (root / "info.yaml").write_text(CARD_INFO)
        card("reg/income", pages["card"], info=root / "info.yaml")
        for kind, ref in (
            ("stats", "st"),
            ("anomalies", "an"),
            ("evaluation", "ev"),
            ("monitor", "mon"),
        ):
            report(ref, pages[kind])
    return root, pages


def test_each_kind_has_its_sections_and_charts_and_needs_no_network(built):
    _, pages = built
    for kind, (sections, charts) in EXPECTED.items():
        html = pages[kind].read_text()
        for s in sections:
            assert f'<section id="{s}">' in html, (kind, s)
        assert html.count('class="chart"') >= charts, kind
        # Nothing fetched at view time: no external scripts, styles, images or fonts.
        assert not re.search(r'(src|href)="(https?:)?//', html), kind
        assert "@import" not in html and not re.search(
            r"url\((?!#)", html
        )  # url(#id): in-page refs
        assert "<img" not in html  # charts are vector SVG, not embedded bitmaps


def test_pages_hold_summaries_not_rows(built):
    root, pages = built
    # fnlwgt is near-unique per row: no row's value may appear in the statistics page.
    values = pl.read_parquet(root / "ds" / "train.parquet")["fnlwgt"].head(200).to_list()
    html = pages["stats"].read_text()
    leaked = [v for v in values if re.search(rf"\b{v}\b", html)]
    assert len(leaked) <= 2  # a value can coincide with a histogram edge or a mean; rows cannot
    assert pages["stats"].stat().st_size < 2_000_000


def test_the_same_artifact_gives_the_same_bytes(built, tmp_path):
    root, pages = built
    with working_in(root):
        report("ev", tmp_path / "again.html")
    assert (tmp_path / "again.html").read_bytes() == pages["evaluation"].read_bytes()


def test_baselines_overlay_and_compare(built, tmp_path):
    root, _ = built
    with working_in(root):
        stats("older", "st_older")
        report("st_older", tmp_path / "s.html", baseline="st")
        html = (tmp_path / "s.html").read_text()
        assert "against baseline train" in html and "density" in html
        # age moved 20 years: its drift is flagged in the overview
        row = re.search(r'#col-[0-9a-f]+">age</a>.*?</tr>', html).group(0)
        assert "drift</span>" in row
        report("ev", tmp_path / "e.html", baseline="ev")
        assert "change" in (tmp_path / "e.html").read_text()


def test_cli_writes_atomically_and_rejects_bad_input(built, tmp_path, monkeypatch):
    root, _ = built
    monkeypatch.chdir(root)
    r = cli("report", "st", "-o", str(tmp_path / "r.html"))
    assert r.exit_code == 0 and "report: wrote" in r.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    out = cli("report", "mon", "-o", "-")
    assert out.exit_code == 0 and out.stdout.startswith("<!DOCTYPE html>")
    for args, message in (
        (["ds"], "no report for a dataset artifact"),
        (["st", "--baseline", "ev"], "a stats report compares with another stats"),
        (["an", "--baseline", "st"], "--baseline is for stats and evaluation reports"),
        (["nowhere"], "nowhere"),
    ):
        r = cli("report", *args, "-o", str(tmp_path / "bad.html"))
        assert r.exit_code == 2 and message in r.stderr, r.stderr
        assert not (tmp_path / "bad.html").exists()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        yield b
        b.close()


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_renders_in_chromium_without_errors(built, browser, kind, tmp_path):
    from matplotlib.image import imread

    _, pages = built
    sections, charts = EXPECTED[kind]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on(
        "request",
        lambda r: (
            problems.append(f"network: {r.url}")
            if not r.url.startswith(("file:", "data:"))
            else None
        ),
    )
    page.goto(pages[kind].as_uri())
    assert problems == []
    for s in sections:
        assert page.locator(f"section#{s} h2").is_visible(), s
    drawn = page.locator("svg.chart")
    assert drawn.count() >= charts
    box = drawn.first.bounding_box()
    assert box["width"] > 200 and box["height"] > 100  # laid out, not collapsed
    # The screenshot is not blank: a good share of it is neither white nor one colour.
    png = imread(io.BytesIO(page.screenshot(full_page=False)), format="png")[..., :3]
    assert (png.min(axis=2) < 0.9).mean() > 0.03 and png.std() > 0.05
    if kind == "stats":  # the overview sorts by a click on a header: most missing first
        header = page.locator("section#overview th", has_text="missing")
        header.click()
        header.click()
        assert page.locator("section#overview tbody tr td").first.inner_text() in (
            "workclass",
            "occupation",
        )
        assert problems == []
    page.close()


def test_the_model_card_shows_its_record_in_chromium(built, browser):
    """The card read as people read it: the facts they wrote, the raw source's hash, the
    evaluation's intervals, the gates, the deployment history; its nav reaches each part."""
    import hashlib

    _, pages = built
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.goto(pages["card"].as_uri())
    assert page.title() == "Model card: income"
    use = page.locator("section#use")
    assert "Census modelling team" in page.locator("section#overview").inner_text()
    assert (
        "decisions about individuals" in use.inner_text() and "1994 US census" in use.inner_text()
    )
    sha = hashlib.sha256((SAMPLE / "adult.csv").read_bytes()).hexdigest()
    source = page.locator("section#lineage code", has_text=sha)
    assert source.count() == 1 and source.is_visible()
    tree = page.locator("section#lineage ul.tree").inner_text()
    assert tree.index("model (train)") < tree.index("features (featurize)") < tree.index(
        "dataset (ingest)") < tree.index("source")  # fmt: skip
    evaluation = page.locator("section#evaluation").inner_text()
    assert re.search(r"accuracy\s+0\.\d+\s+\[0\.\d+, 0\.\d+\]", evaluation), evaluation[:400]
    assert "Fairness by sex" in evaluation
    gates = page.locator("section#gates")
    assert gates.locator(".badge").inner_text() == "blessed"
    assert gates.locator("td", has_text="pass").count() >= 1
    history = page.locator("section#deployment table").last
    assert history.locator("tbody tr").count() == 1 and "deploy" in history.inner_text()
    page.locator("nav a[href='#deployment']").click()
    assert page.locator("section#deployment h2").is_visible()
    assert page.evaluate("window.scrollY") > 0
    assert problems == []
    page.close()
