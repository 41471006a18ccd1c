"""Spans (issue 17): `ingest --append` adds new files to a dataset as a new version that
shares its partitions, and `stats` reuses the statistics of partitions it has seen."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from mlstage import ingest, stats
from mlstage.errors import BadInput
from mlstage.stages.spans import append


def _day(path, k: int, rows: int = 3_000):
    rng = np.random.default_rng(k)
    pl.DataFrame({
        "id": np.arange(k * rows, (k + 1) * rows),
        "x": rng.normal(k, 1, rows),
        "c": rng.choice(["a", "b", "c"], rows),
        "y": rng.integers(0, 2, rows),
    }).write_csv(path)  # fmt: skip
    return path


@pytest.fixture
def days(tmp_path):
    return [_day(tmp_path / f"day{k}.csv", k) for k in range(3)]


def _rows(result, split):
    files = sorted(result.path.glob(f"{split}*.parquet"))
    return pl.read_parquet(files).sort("id")


def _files(result):
    return {f["path"]: f["sha256"] for f in result.manifest["files"]}


@pytest.mark.parametrize("rule", ["text", "typed", None])
def test_an_append_splits_its_rows_by_the_rule_of_its_dataset(tmp_path, days, monkeypatch, rule):
    """A dataset split by the text hash (ingested before the typed row hash, or by a key:
    no `split_hash` in its params) keeps it: its new rows go where one ingest of every
    file by that rule put them, not by today's."""
    from mlstage.core.hashing import row_hash, stable_hash_many, unit_interval
    from mlstage.stages import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "SPLIT_HASH", rule or "typed")
    st = tmp_path / "store"
    keys = ["id"] if rule is None else []
    ingest(days[:2], tmp_path / "d1", split=["train=8", "eval=2"], split_key=keys, seed=3, store=st)
    monkeypatch.undo()
    second = append([days[2]], tmp_path / "d1", tmp_path / "d2", store=st)
    assert second.manifest["params"].get("split_hash") == rule
    for split, inside in (("train", True), ("eval", False)):
        rows = _rows(second, split)
        for row in rows.iter_rows():
            if rule == "typed":
                position = unit_interval(row_hash(list(row), 3))
            elif rule == "text":
                position = unit_interval(stable_hash_many(list(row), prefix="3"))
            else:
                position = unit_interval(stable_hash_many([row[0]], prefix="3"))
            assert (position < 0.8) == inside
        assert 0.1 < rows.height / 9_000 < 0.9


def test_an_appended_dataset_holds_the_rows_of_one_ingest_and_shares_the_old_partitions(
    tmp_path, days
):
    st = tmp_path / "store"
    opts = {"split": ["train=8", "eval=2"], "partition_rows": 1_000, "store": st}
    first = ingest(days[:2], tmp_path / "d1", **opts)
    second = append([days[2]], tmp_path / "d1", tmp_path / "d2", store=st)
    whole = ingest(days, tmp_path / "all", **opts)
    for split in ("train", "eval"):
        assert _rows(second, split).equals(_rows(whole, split))
    assert second.manifest["summary"]["splits"] == whole.manifest["summary"]["splits"]
    # every old partition is in the new version, byte for byte, before the new ones
    old, new = _files(first), _files(second)
    assert all(new[name] == sha for name, sha in old.items() if name.endswith(".parquet"))
    assert len(new) > len(old)
    spans = second.manifest["summary"]["spans"]
    assert [s["rows"] for s in spans] == [6_000, 3_000]
    assert [src["path"] for src in spans[1]["sources"]] == [str(days[2])]
    assert spans[0]["parts"] == {"train": 5, "eval": 2} and spans[1]["parts"]["train"] == 3
    # lineage: the old version is an input of the new
    assert first.manifest["id"] in {i["id"] for i in second.manifest["inputs"]}
    # deterministic: the same append again is the same artifact
    again = append([days[2]], tmp_path / "d1", tmp_path / "d3", store=st)
    assert again.manifest["id"] == second.manifest["id"]


def test_stats_reads_only_the_partitions_it_has_not_seen(tmp_path, days, monkeypatch):
    import mlstage.validation.compute as compute

    st = tmp_path / "store"
    ingest(days[:2], tmp_path / "d1", partition_rows=1_000, store=st)
    append([days[2]], tmp_path / "d1", tmp_path / "d2", store=st)
    stats(tmp_path / "d1", tmp_path / "s1", store=st)
    read = []
    real = compute.split_stats
    monkeypatch.setattr(compute, "split_stats", lambda p, *a: read.append(p.name) or real(p, *a))
    cached = stats(tmp_path / "d2", tmp_path / "s2", store=st)
    assert read == ["data.part-00006.parquet", "data.part-00007.parquet", "data.part-00008.parquet"]
    # and the merged statistics are those of a run that reads everything, byte for byte
    (st / "cache" / "stats").rename(tmp_path / "old-cache")
    fresh = stats(tmp_path / "d2", tmp_path / "s3", store=st, force=True)
    assert len(read) == 3 + 9
    for name in ("stats.json", "sketches.json"):
        assert (cached.path / name).read_bytes() == (fresh.path / name).read_bytes()


def test_a_damaged_cache_entry_is_read_again(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    first = stats(tmp_path / "d", tmp_path / "s1", store=st)
    entries = list((st / "cache" / "stats").rglob("*.json"))
    assert len(entries) == 1
    entries[0].write_text('{"stats": ')
    second = stats(tmp_path / "d", tmp_path / "s2", store=st, force=True)
    assert (second.path / "stats.json").read_bytes() == (first.path / "stats.json").read_bytes()
    assert json.loads(entries[0].read_text())["stats"]["rows"] == 3_000


def test_a_span_with_a_column_the_dataset_lacks_is_refused_and_nothing_is_written(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d1", store=st)
    odd = tmp_path / "odd.csv"
    pl.read_csv(days[1]).with_columns(z=pl.lit(1)).write_csv(odd)
    with pytest.raises(BadInput) as e:
        append([odd], tmp_path / "d1", tmp_path / "d2", store=st)
    assert e.value.column == "z"
    assert not (tmp_path / "d2").exists()


def test_a_dataset_split_by_rank_cannot_be_appended_to(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d1", split=["a=1", "b=1"], split_order="id", store=st)
    with pytest.raises(BadInput, match="rank"):
        append([days[1]], tmp_path / "d1", tmp_path / "d2", store=st)


def test_a_dataset_split_by_a_rule_this_mlstage_does_not_know_is_named(tmp_path, days, monkeypatch):
    """A dataset from a newer mlstage, split by a rule this one lacks: an append of new
    files is refused before anything is written, naming the dataset's manifest (the
    error named no file); with nothing new, the dataset is up to date as before (a loop
    that runs before new data arrives does not fail)."""
    from mlstage.data import conversion
    from mlstage.stages import ingest as ingest_module

    # the newer mlstage: its rule recorded in the dataset's params
    monkeypatch.setattr(ingest_module, "SPLIT_HASH", "typed2")
    monkeypatch.setattr(conversion, "SPLIT_HASHES", (*conversion.SPLIT_HASHES, "typed2"))
    st = tmp_path / "store"
    made = ingest(days[:1], tmp_path / "d1", split=["a=1", "b=1"], store=st)
    assert made.manifest["params"]["split_hash"] == "typed2"
    monkeypatch.undo()
    with pytest.raises(BadInput, match="rule 'typed2'.*upgrade") as e:
        append([days[1]], tmp_path / "d1", tmp_path / "d2", store=st)
    assert e.value.file == str(tmp_path / "d1" / "manifest.json")
    assert not (tmp_path / "d2").exists()
    same = append([days[0]], tmp_path / "d1", tmp_path / "d1", store=st)
    assert same.up_to_date and same.manifest["id"] == made.manifest["id"]


def test_a_new_file_without_a_column_of_the_dataset_is_named(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d1", split=["a=1", "b=1"], store=st)
    short = tmp_path / "short.csv"
    pl.read_csv(days[1]).drop("c").write_csv(short)
    with pytest.raises(BadInput, match='no column "c"') as e:
        append([short], tmp_path / "d1", tmp_path / "d2", store=st)
    assert e.value.file == str(short)


def test_the_cli_appends_and_refuses_reading_options_beside_append(tmp_path, days, monkeypatch):
    from mlstage.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLSTAGE_STORE", str(tmp_path / "store"))
    run = CliRunner().invoke
    assert run(app, ["ingest", str(days[0]), "-o", "d1", "--quiet"]).exit_code == 0
    r = run(app, ["ingest", str(days[1]), "--append", "d1", "--split", "a=1", "-o", "d2"])
    assert r.exit_code == 2 and "--split" in r.output
    assert not (tmp_path / "d2").exists()
    r = run(app, ["ingest", str(days[1]), "--append", "d1", "-o", "d2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d2" / "manifest.json").read_text())["summary"]["rows"] == 6_000


def test_a_window_keeps_the_newest_spans_and_their_partitions_only(tmp_path, days):
    st = tmp_path / "store"
    opts = {"split": ["train=8", "eval=2"], "partition_rows": 1_000, "store": st}
    ingest(days[:1], tmp_path / "d0", **opts)
    append([days[1]], tmp_path / "d0", tmp_path / "d1", store=st)
    two = append([days[2]], tmp_path / "d1", tmp_path / "d2", window=2, store=st)
    expected = ingest(days[1:], tmp_path / "ref", **opts)
    for split in ("train", "eval"):
        assert _rows(two, split).equals(_rows(expected, split))
    spans = two.manifest["summary"]["spans"]
    assert [[s["path"] for s in span["sources"]] for span in spans] == [
        [str(days[1])], [str(days[2])]]  # fmt: skip
    assert [s["path"] for s in two.manifest["summary"]["sources"]] == [str(days[1]), str(days[2])]
    # the kept partitions are the old version's bytes
    old = {
        f["sha256"] for f in append([days[2]], tmp_path / "d1", None, store=st).manifest["files"]
    }
    assert {f["sha256"] for f in two.manifest["files"] if f["path"].endswith(".parquet")} <= old
    assert [s["path"] for s in two.manifest["summary"]["dropped"]] == [str(days[0])]
    # a file of a dropped span is not taken in again (a loop passes every file it has)
    same = append(days, tmp_path / "d2", tmp_path / "d2", window=2, store=st)
    assert same.up_to_date
    with pytest.raises(BadInput, match="a number of spans"):
        append([days[2]], tmp_path / "d1", tmp_path / "d3", window=0, store=st)


def test_a_window_of_days_keeps_the_spans_dated_within_it_by_their_file_names(tmp_path):
    st = tmp_path / "store"
    opts = {"split": ["train=8", "eval=2"], "partition_rows": 1_000, "store": st}
    names = ["2026-11-20.csv", "20261125.csv", "2026/11/28/part.csv", "x-2026-11-30.csv"]
    files = []
    for k, name in enumerate(names):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        files.append(_day(tmp_path / name, k, rows=1_500))
    ingest(files[:1], tmp_path / "d", **opts)
    for f in files[1:3]:
        append([f], tmp_path / "d", tmp_path / "d", store=st)
    week = append([files[3]], tmp_path / "d", tmp_path / "d", window="7d", store=st)
    # 11-30 back to 11-24 inclusive: the 25th, 28th and 30th; the 20th dropped
    spans = week.manifest["summary"]["spans"]
    assert [span["sources"][0]["path"] for span in spans] == [str(f) for f in files[1:]]
    assert [s["path"] for s in week.manifest["summary"]["dropped"]] == [str(files[0])]
    expected = ingest(files[1:], tmp_path / "ref", **opts)
    for split in ("train", "eval"):
        assert _rows(week, split).equals(_rows(expected, split))
    # a file that arrives late, dated before the window, is dropped as it comes in
    late = _day(tmp_path / "2026-11-01.csv", 9, rows=1_500)
    after = append([late], tmp_path / "d", tmp_path / "d", window="1w", store=st)
    assert [span["sources"][0]["path"] for span in after.manifest["summary"]["spans"]] == [
        str(f) for f in files[1:]]  # fmt: skip
    assert after.manifest["summary"]["rows"] == week.manifest["summary"]["rows"]
    # the command takes the same spelling; the window is in the parameters (the id)
    from mlstage.cli import app

    r = CliRunner().invoke(app, ["ingest", str(files[3]), "--append", str(tmp_path / "d"),
                                 "--window", "7d", "-o", str(tmp_path / "c"), "--store", str(st),
                                 "--json"])  # fmt: skip
    assert r.exit_code == 2 and "every file given is in" in r.stderr  # d holds files[3]
    r = CliRunner().invoke(app, ["ingest", str(files[3]), "--append", str(tmp_path / "d"),
                                 "--window", "7x", "-o", str(tmp_path / "c"), "--store", str(st)])  # fmt: skip
    assert r.exit_code == 2 and "--window 7x" in r.stderr


def test_a_window_of_days_needs_a_date_in_every_span_and_a_valid_length(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    dated = _day(tmp_path / "2026-12-01.csv", 5)
    with pytest.raises(BadInput, match="no date in its files' names") as e:
        append([dated], tmp_path / "d", tmp_path / "d2", window="7d", store=st)
    assert e.value.file == str(days[0])  # the undated span is named
    assert not (tmp_path / "d2").exists()
    for bad in ("7x", "-1", "0d", "d", "1.5"):
        with pytest.raises(BadInput, match="a number of spans"):
            append([dated], tmp_path / "d", tmp_path / "d2", window=bad, store=st)


def test_sources_already_in_the_dataset_are_left_out_and_nothing_new_is_up_to_date(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    grown = append(days[:2], tmp_path / "d", tmp_path / "d", store=st)
    assert grown.manifest["summary"]["rows"] == 6_000 and not grown.up_to_date
    assert [len(s["sources"]) for s in grown.manifest["summary"]["spans"]] == [1, 1]
    mtime = (tmp_path / "d" / "manifest.json").stat().st_mtime_ns
    again = append(days[:2], tmp_path / "d", tmp_path / "d", store=st)
    assert again.up_to_date and again.manifest["id"] == grown.manifest["id"]
    assert (tmp_path / "d" / "manifest.json").stat().st_mtime_ns == mtime
    with pytest.raises(BadInput, match="nothing to append"):
        append(days[:2], tmp_path / "d", tmp_path / "elsewhere", store=st)


def test_an_empty_incoming_folder_is_nothing_new_but_a_missing_one_or_a_pattern_is_an_error(
    tmp_path, days
):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / ".partial.csv").write_text("id\n1\n")  # hidden: never a source
    again = append([incoming], tmp_path / "d", tmp_path / "d", store=st)
    assert again.up_to_date and again.path == tmp_path / "d"
    with pytest.raises(BadInput, match=r"nothing to append .*or none was given"):
        append([incoming], tmp_path / "d", tmp_path / "elsewhere", store=st)
    with pytest.raises(BadInput, match="no such file or directory"):
        append([tmp_path / "absent"], tmp_path / "d", tmp_path / "d", store=st)
    with pytest.raises(BadInput, match="no file matches"):
        append([str(incoming / "*.csv")], tmp_path / "d", tmp_path / "d", store=st)
    # a plain ingest of an empty folder stays an error
    with pytest.raises(BadInput, match="holds no file"):
        ingest([incoming], tmp_path / "e", store=st)
    (incoming / "day1.csv").write_bytes(days[1].read_bytes())
    grown = append([incoming], tmp_path / "d", tmp_path / "d", store=st)
    assert grown.manifest["summary"]["rows"] == 6_000


def test_gc_drops_the_cached_statistics_of_partitions_no_artifact_holds(tmp_path, days):
    from mlstage.store.maintenance import gc
    from mlstage.store.store import Store

    st = tmp_path / "store"
    kept = ingest(days[:1], tmp_path / "d", store=st)
    stats(tmp_path / "d", tmp_path / "s", store=st)
    gone = ingest(days[1:2], None, store=st)  # only in the store: no path holds it
    stats(f"@{gone.manifest['id']}", None, store=st)
    cache = st / "cache" / "stats"
    held = {f["sha256"] for f in kept.manifest["files"]}
    lost = {f["sha256"] for f in gone.manifest["files"] if f["path"].endswith(".parquet")}
    assert {p.name for p in cache.iterdir()} == (held | lost) - {
        f["sha256"] for f in kept.manifest["files"] if not f["path"].endswith(".parquet")
    }
    gc(Store.open(st), grace=0)
    assert {p.name for p in cache.iterdir()} == {
        f["sha256"] for f in kept.manifest["files"] if f["path"].endswith(".parquet")
    }


def test_a_dataset_given_as_a_baseline_uses_the_cached_partition_statistics(
    tmp_path, days, monkeypatch
):
    import mlstage.validation.compute as compute
    from mlstage import schema, validate

    st = tmp_path / "store"
    ingest(days[:2], tmp_path / "base", partition_rows=1_000, store=st)
    ingest(days[2:], tmp_path / "new", store=st)
    stats(tmp_path / "base", tmp_path / "s", store=st)
    schema(tmp_path / "s", tmp_path / "sc", store=st)
    read = []
    real = compute.split_stats
    monkeypatch.setattr(compute, "split_stats", lambda p, *a: read.append(p.name) or real(p, *a))
    by_dataset = validate(tmp_path / "new", tmp_path / "v1", schema=tmp_path / "sc",
                          baseline=tmp_path / "base", store=st)  # fmt: skip
    assert read == []  # the baseline's 6 partitions came from the cache
    by_stats = validate(tmp_path / "new", tmp_path / "v2", schema=tmp_path / "sc",
                        baseline=tmp_path / "s", store=st)  # fmt: skip
    a = json.loads((by_dataset.path / "anomalies.json").read_text())
    b = json.loads((by_stats.path / "anomalies.json").read_text())
    assert (a["anomalies"], a["drift"]) == (b["anomalies"], b["drift"])


def test_a_file_changed_after_it_was_appended_is_refused(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    append(days[1:2], tmp_path / "d", tmp_path / "d", store=st)
    _day(days[1], 7)  # the same name, other rows
    with pytest.raises(BadInput, match="other contents"):
        append(days[1:3], tmp_path / "d", tmp_path / "d", store=st)
    assert (tmp_path / "d" / "manifest.json").exists()


def test_a_span_whose_columns_come_in_another_order_splits_as_one_ingest(tmp_path, days):
    st = tmp_path / "store"
    moved = tmp_path / "moved.csv"
    pl.read_csv(days[1]).select("c", "y", "id", "x").write_csv(moved)
    opts = {"split": ["train=8", "eval=2"], "store": st}
    ingest(days[:1], tmp_path / "d1", **opts)
    grown = append([moved], tmp_path / "d1", tmp_path / "d2", store=st)
    whole = ingest([days[0], moved], tmp_path / "all", **opts)
    for split in ("train", "eval"):
        assert _rows(grown, split).equals(_rows(whole, split))
        for f in grown.path.glob(f"{split}*.parquet"):
            assert pl.read_parquet_schema(f).names() == ["id", "x", "c", "y"]


def test_a_day_window_is_checked_before_anything_is_read_and_says_what_it_drops(tmp_path, days):
    from mlstage.cli import app
    from mlstage.stages.spans import span_date

    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "undated", store=st)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    # an undated first span: exit 2 on the first run, with nothing new yet
    with pytest.raises(BadInput, match="no date in its files' names"):
        append([incoming], tmp_path / "undated", tmp_path / "undated", window="7d", store=st)
    dated = [_day(tmp_path / f"2026-12-0{k}.csv", k, rows=1_000) for k in (1, 2, 3)]
    ingest(dated[:1], tmp_path / "d", store=st)
    grown = append([dated[1]], tmp_path / "d", tmp_path / "d", window="2w", store=st)
    assert grown.manifest["params"]["window"] == "14d"  # one spelling per window: one id
    assert grown.manifest["params"]["span_dates"] == ["2026-12-01", "2026-12-02"]
    assert grown.manifest["summary"]["root"] == ingest(dated[:1], None, store=st).manifest["id"]
    # the same bytes under another date make another dataset (the dates are in the id)
    moved = tmp_path / "elsewhere" / "2026-12-20.csv"
    moved.parent.mkdir()
    moved.write_bytes(dated[1].read_bytes())
    ingest(dated[:1], tmp_path / "b", store=st)
    same = append([dated[1]], tmp_path / "b", None, window="14d", store=st)
    other = append([moved], tmp_path / "b", None, window="14d", store=st)
    assert same.manifest["id"] == grown.manifest["id"] != other.manifest["id"]
    assert other.notes and "drops the oldest spans: 2026-12-01" in other.notes[0]
    assert "every older span is dropped" in other.notes[0]
    # a file dated before the window is nothing new: no new version, and a note
    late = _day(tmp_path / "2026-11-01.csv", 9, rows=1_000)
    again = append([late], tmp_path / "d", tmp_path / "d", window="7d", store=st)
    assert again.up_to_date and again.manifest["id"] == grown.manifest["id"]
    assert "before the window" in again.notes[0]
    r = CliRunner().invoke(app, ["ingest", str(late), "--append", str(tmp_path / "d"),
                                 "--window", "7d", "-o", str(tmp_path / "d"), "--store", str(st)])  # fmt: skip
    assert r.exit_code == 0 and "ingest: note: the new files are dated 2026-11-01" in r.stderr
    for bad in ("²", "7 d", "1.5w"):
        with pytest.raises(BadInput, match="a number of spans"):
            append([late], tmp_path / "d", tmp_path / "d", window=bad, store=st)
    # the date nearest the file counts, not one in a folder or bucket name above
    assert str(span_date({"sources": [{"path": "/srv/p_20270101/in/2026-11-01.csv"}]})) == (
        "2026-11-01")  # fmt: skip
    assert span_date({"sources": [{"path": "s3://b/2026/02/30/part.csv"}]}) is None


def test_an_incoming_folder_of_files_of_no_known_format_is_an_error(tmp_path, days):
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d", store=st)
    (tmp_path / "incoming").mkdir()
    (tmp_path / "incoming" / "2026-12-01.csv.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(BadInput, match="holds no file of a known format"):
        append([tmp_path / "incoming"], tmp_path / "d", tmp_path / "d", store=st)


def test_a_span_value_that_does_not_parse_as_its_datasets_type_says_so(tmp_path, days):
    """The advice was "pass --type", which --append refuses: a span is read as its dataset."""
    st = tmp_path / "store"
    ingest(days[:1], tmp_path / "d1", split=["a=1", "b=1"], store=st)
    odd = tmp_path / "odd.csv"
    text = days[1].read_text().splitlines()
    first = text[1].split(",")
    text[1] = ",".join(["seven", *first[1:]])
    odd.write_text("\n".join(text) + "\n")
    with pytest.raises(BadInput, match="'seven' as an integer; a span is read as its dataset") as e:
        append([odd], tmp_path / "d1", tmp_path / "d2", store=st)
    assert "--type" not in str(e.value) and e.value.column == "id"
