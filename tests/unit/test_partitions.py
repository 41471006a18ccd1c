"""Partitioned datasets (issue 17): a split of more than `partition_rows` rows is several
files, `NAME.part-00000.parquet`, ... in row order; every stage reads them and gives what
it gives on the same data in one file — exactly, except the statistics' sketches, which
stay within their documented error."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstage import evaluate, featurize, ingest, predict, schema, stats, train, validate
from mlstage.data.splits import splits_of
from mlstage.errors import BadInput

from ..conftest import ROOT, SAMPLE

EXAMPLES = ROOT / "examples"


def close(a, b) -> bool:
    """Equal, numbers within 1e-9 relative (1e-12 absolute)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(close, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


def part_files(path, split):
    return sorted(p.name for p in path.glob(f"{split}*.parquet"))


def read_split(result, split):
    return pl.read_parquet(splits_of(result.path, result.manifest)[split].parts)


@pytest.fixture
def adult_6k(tmp_path):
    """The first 6,000 rows of UCI Adult: partitions of 1,000 rows (the least allowed)."""
    path = tmp_path / "adult_6k.csv"
    pl.read_csv(SAMPLE / "adult.csv", infer_schema_length=None).head(6_000).write_csv(path)
    return path


def test_a_large_split_is_written_as_partitions_of_exactly_n_rows(adult_6k):
    r = ingest([adult_6k], "ds", split={"train": 8, "eval": 2}, partition_rows=1_000)
    one = ingest([adult_6k], "ds1", split={"train": 8, "eval": 2})
    rows = r.manifest["summary"]["splits"]
    assert rows == one.manifest["summary"]["splits"]
    names = part_files(r.path, "train")
    assert names == [f"train.part-{i:05d}.parquet" for i in range(-(-rows["train"] // 1_000))]
    sizes = [pl.scan_parquet(r.path / n).select(pl.len()).collect().item() for n in names]
    assert sizes[:-1] == [1_000] * (len(sizes) - 1) and 0 < sizes[-1] <= 1_000
    # the rows, in order, are the single file's
    assert read_split(r, "train").equals(pl.read_parquet(one.path / "train.parquet"))
    assert read_split(r, "eval").equals(pl.read_parquet(one.path / "eval.parquet"))
    # the layout is part of the artifact: deterministic, and another size is another id
    again = ingest([adult_6k], "ds2", split={"train": 8, "eval": 2}, partition_rows=1_000)
    assert again.manifest["id"] == r.manifest["id"] != one.manifest["id"]


def test_a_split_that_fits_stays_one_file(adult_small):
    r = ingest([adult_small], "ds", split={"train": 8, "eval": 2}, partition_rows=1_000)
    assert part_files(r.path, "train") == ["train.part-00000.parquet", "train.part-00001.parquet"]
    assert part_files(r.path, "eval") == ["eval.parquet"]  # 400-odd rows


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.integers(1, 700), per=st.integers(1, 250))
def test_partitions_hold_every_row_in_order(tmp_path_factory, rows, per):
    """Tiny partitions (below the least allowed, lifted here) to see many boundaries."""
    folder = tmp_path_factory.mktemp("p")
    frame = pl.DataFrame({"i": np.arange(rows), "x": np.random.default_rng(rows).random(rows)})
    frame.write_parquet(folder / "in.parquet")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mlstage.stages.ingest.MIN_PARTITION_ROWS", 1)
        r = ingest([folder / "in.parquet"], folder / "ds", partition_rows=per, store=folder / "st")
    assert read_split(r, "data").equals(frame)
    assert len(part_files(r.path, "data")) == (1 if rows <= per else -(-rows // per))


def test_an_empty_split_is_one_empty_file_with_the_columns(tmp_path):
    from mlstage.data.conversion import place_partitions

    (tmp_path / "pay").mkdir()
    n = place_partitions(tmp_path / "none", tmp_path / "pay", "eval", 10,
                         pl.Schema({"a": pl.Int64, "b": pl.String}))  # fmt: skip
    assert n == 0
    back = pl.read_parquet(tmp_path / "pay" / "eval.parquet")
    assert back.height == 0 and back.schema == pl.Schema({"a": pl.Int64, "b": pl.String})


def test_a_split_name_that_looks_like_a_partition_is_refused(adult_small):
    with pytest.raises(BadInput, match="partition"):
        ingest([adult_small], "ds", split={"a.part-00001": 1, "b": 1})


@pytest.mark.parametrize("n", [0, 999, 2**32, 2**40])
def test_partition_rows_out_of_bounds_are_refused(adult_small, n):
    """Fewer than 1,000 rows make a partition's 501-point summary coarser than the
    merge's documented error; polars counts a file's rows in 32 bits."""
    with pytest.raises(BadInput, match="partition_rows.*1,000 to 4,294,967,295"):
        ingest([adult_small], "ds", partition_rows=n)


def test_partition_numbers_past_five_digits_stay_one_split(tmp_path):
    from mlstage.data.splits import part_name

    names = [part_name("data", n) for n in (99_999, 100_000, 100_001, 0)]
    assert names[1] == "data.part-100000.parquet"
    manifest = {"summary": {"splits": {"data": 4}},
                "files": [{"path": n} for n in names]}  # fmt: skip
    split = splits_of(tmp_path, manifest)
    assert list(split) == ["data"]
    assert [p.name for p in split["data"].parts] == [names[3], names[0], names[1], names[2]]


def test_a_split_both_whole_and_partitioned_is_refused(tmp_path):
    from mlstage.errors import CorruptArtifact

    manifest = {"summary": {"splits": {"train": 2}},
                "files": [{"path": "train.parquet"}, {"path": "train.part-00000.parquet"}]}  # fmt: skip
    with pytest.raises(CorruptArtifact, match="both"):
        splits_of(tmp_path, manifest)


def test_every_stage_gives_the_same_answers_on_partitions(adult_6k):
    """featurize, train, evaluate, predict and validate on 5 partitions of the train split
    and 2 of eval = on the same rows in one file each; stats: the exact statistics equal,
    the sketched ones within their documented error."""
    split = {"train": 8, "eval": 2}
    parts = ingest([adult_6k], "parts", split=split, partition_rows=1_000)
    whole = ingest([adult_6k], "whole", split=split)
    n_parts = len(part_files(parts.path, "train"))
    assert n_parts == 5 and len(part_files(parts.path, "eval")) == 2

    s_parts, s_whole = stats("parts", "st_p"), stats("whole", "st_w")
    a = json.loads((s_parts.path / "stats.json").read_text())["splits"]["train"]
    b = json.loads((s_whole.path / "stats.json").read_text())["splits"]["train"]
    assert a["rows"] == b["rows"]
    n = b["rows"]
    for col, cb in b["columns"].items():
        ca = a["columns"][col]
        for key in ("type", "count", "missing", "min", "max", "zeros"):
            assert ca.get(key) == cb.get(key), (col, key)
        if cb.get("mean") is not None:
            assert ca["mean"] == pytest.approx(cb["mean"], rel=1e-12)
            assert ca["std"] == pytest.approx(cb["std"], rel=1e-9)
        if cb["type"] == "string":  # fewer than 1,000 values: exact counts
            assert ca["values"] == cb["values"] and ca["unique"] == cb["unique"]
        if "quantile_histogram" in cb:
            # compute's docstring: within 0.2% in rank (plus a step of the data per
            # partition of fewer than 501 rows: none here); a bucket's count, the
            # difference of two CDF values, within twice that. The counts are held to
            # the exact counts of the merged edges: the merged quantile edges may fall
            # beside the exact ones (50.2 for 50), and on tied data (ages) that moves a
            # whole value's rows into the next bucket, rightly.
            rank = 0.002
            values = np.sort(read_split(whole, "train")[col].drop_nulls().to_numpy())
            assert ca["histogram"]["edges"] == cb["histogram"]["edges"]  # min to max
            edges = ca["quantile_histogram"]["edges"]  # the k/B quantiles, within the error
            for k, edge in enumerate(edges[1:-1], start=1):
                lo = np.searchsorted(values, edge, side="left") / n
                hi = np.searchsorted(values, edge, side="right") / n
                assert lo - rank <= k / (len(edges) - 1) <= hi + rank, (col, k, edge)
            for h in ("histogram", "quantile_histogram"):
                exact, _ = np.histogram(values, bins=cb[h]["edges"])
                assert exact.tolist() == cb[h]["counts"], (col, h)  # one file: exact
                exact, _ = np.histogram(values, bins=ca[h]["edges"])
                diff = np.abs(np.array(ca[h]["counts"]) - exact)
                assert diff.max() <= 2 * rank * n + 1, (col, h, diff)
            for q, merged in ca["quantiles"].items():
                lo = np.searchsorted(values, merged, side="left") / n
                hi = np.searchsorted(values, merged, side="right") / n
                assert lo - rank <= float(q) <= hi + rank, (col, q, merged, cb["quantiles"][q])

    schema("st_w", "sc", label="income")
    v_parts = validate("parts", "v_p", schema="sc", baseline="st_w")
    v_whole = validate("whole", "v_w", schema="sc", baseline="st_w")
    doc_p = json.loads((v_parts.path / "anomalies.json").read_text())
    doc_w = json.loads((v_whole.path / "anomalies.json").read_text())
    # the same anomalies and measures; the mean and sd, merged over partitions by Chan's
    # formula, may differ in their last bits
    assert close(doc_p["anomalies"], doc_w["anomalies"]) and close(doc_p["drift"], doc_w["drift"])

    spec = EXAMPLES / "adult_features.json"
    f_parts, f_whole = featurize("parts", "f_p", spec=spec), featurize("whole", "f_w", spec=spec)
    assert len(part_files(f_parts.path, "train")) == n_parts
    assert read_split(f_parts, "train").equals(read_split(f_whole, "train"))
    assert json.loads((f_parts.path / "transform.json").read_text()) == json.loads(
        (f_whole.path / "transform.json").read_text()
    )

    cfg = EXAMPLES / "adult_train.json"
    m_parts, m_whole = train("f_p", "m_p", config=cfg), train("f_w", "m_w", config=cfg)
    assert m_parts.manifest["summary"]["metrics"] == m_whole.manifest["summary"]["metrics"]

    e_parts = evaluate("m_p", "parts", "e_p", config=EXAMPLES / "adult_evaluate.json")
    e_whole = evaluate("m_w", "whole", "e_w", config=EXAMPLES / "adult_evaluate.json")
    mp = json.loads((e_parts.path / "metrics.json").read_text())
    mw = json.loads((e_whole.path / "metrics.json").read_text())
    assert mp["overall"] == mw["overall"] and mp["intervals"] == mw["intervals"]

    p_parts, p_whole = predict("m_p", "parts", "p_p"), predict("m_w", "whole", "p_w")
    pp = pl.read_parquet(p_parts.path / "predictions.parquet")
    assert pp.equals(pl.read_parquet(p_whole.path / "predictions.parquet"))
    assert pp.height == sum(whole.manifest["summary"]["splits"].values())


def test_ingest_to_stdout_streams_every_partition(adult_small):
    import io

    import pyarrow.ipc as ipc
    from typer.testing import CliRunner

    from mlstage.cli import app

    result = CliRunner().invoke(
        app,
        ["ingest", str(adult_small), "--partition-rows", "1000", "-o", "-"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    table = ipc.open_stream(io.BytesIO(result.stdout_bytes)).read_all()
    assert table.num_rows == 2000
    assert pl.from_arrow(table).equals(read_split(ingest([adult_small], "one"), "data"))


def test_predict_cuts_the_same_batches_whatever_the_partitions(adult_small, monkeypatch):
    """Batches of 96 rows run across partitions of 1,000: a float32 model's probabilities
    (BLAS blocks by rows) would otherwise differ in their last bit."""
    monkeypatch.setattr("mlstage.stages.predict.BATCH_ROWS", 96)
    ingest([adult_small], "parts", partition_rows=1_000)
    ingest([adult_small], "whole")
    featurize("whole", "f", spec=EXAMPLES / "adult_features.json")
    train("f", "m", config=EXAMPLES / "adult_train.json")
    a, b = predict("m", "parts", "p_p"), predict("m", "whole", "p_w")
    pa_, pb = (pl.read_parquet(r.path / "predictions.parquet") for r in (a, b))
    assert pa_.height == 2000 and pa_.equals(pb)


def test_files_polars_cut_elsewhere_are_cut_again_by_row_number(tmp_path):
    """The guard behind the layout's determinism: should polars' sink ever write parts of
    other sizes, the split is re-cut to exactly N rows per part but the last."""
    from mlstage.data.conversion import place_partitions

    written, payload = tmp_path / "w", tmp_path / "pay"
    written.mkdir()
    payload.mkdir()
    rows = [list(range(0, 3)), list(range(3, 8)), list(range(8, 10))]  # 3, 5 and 2 rows
    for k, r in enumerate(rows):
        pl.DataFrame({"i": r}).write_parquet(written / f"{k:08d}.parquet")
    n = place_partitions(written, payload, "train", 4, pl.Schema({"i": pl.Int64}))
    assert n == 10 and not written.exists()
    names = sorted(p.name for p in payload.iterdir())
    assert names == [f"train.part-{i:05d}.parquet" for i in range(3)]
    parts = [pl.read_parquet(payload / name)["i"].to_list() for name in names]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
