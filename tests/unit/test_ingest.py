"""`ingest` through the Python API: formats, types, splits, and every bad input handled."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import polars as pl
import pytest

from mlstage import ingest
from mlstage.core.artifact import read_manifest
from mlstage.core.hashing import row_hash, stable_hash_many, unit_interval
from mlstage.errors import BadInput
from mlstage.store.store import Store

from ..conftest import SAMPLE, write


def read(path, split="data") -> pl.DataFrame:
    return pl.read_parquet(f"{path}/{split}.parquet")


def test_adult_types_missing_markers_and_manifest(adult_small):
    r = ingest([adult_small], "ds", null=["?"])
    df = read("ds")
    ref = pl.read_csv(adult_small, null_values=["?"])
    assert df.shape == ref.shape == (2000, 15)
    assert df.schema["age"] == pl.Int64 and df.schema["workclass"] == pl.String
    assert df["workclass"].null_count() == ref["workclass"].null_count() > 0
    assert df.equals(ref)
    s = r.manifest["summary"]
    assert s["rows"] == 2000 and s["columns"] == 15 and s["splits"] == {"data": 2000}
    assert s["schema"]["income"] == "string"
    (src,) = s["sources"]
    assert src["bytes"] == adult_small.stat().st_size
    assert src["sha256"] == hashlib.sha256(adult_small.read_bytes()).hexdigest()
    assert r.manifest["inputs"] == [
        {"role": "source", "id": src["sha256"], "path": str(adult_small)}
    ]


def test_inference_of_dates_datetimes_bools_and_missing_markers(tmp_path):
    src = write(
        tmp_path / "d.csv",
        "d,t,b,x,s,n\n"
        "2012/01/01,2012-01-01 10:00:00,true,1.5,a,NA\n"
        "2012/01/02,2012-01-02 11:30:00.250,False,,b,\n"
        "2012/12/31,2012-03-04 00:00:00,TRUE,3,N/A,None\n",
    )
    r = ingest([src], "ds")
    assert r.manifest["summary"]["schema"] == {
        "d": "date",
        "t": "datetime",
        "b": "bool",
        "x": "float",
        "s": "string",
        "n": "string",
    }
    df = read("ds")
    assert df["d"].to_list() == [dt.date(2012, 1, 1), dt.date(2012, 1, 2), dt.date(2012, 12, 31)]
    assert df["t"][1] == dt.datetime(2012, 1, 2, 11, 30, 0, 250000)
    assert df["b"].to_list() == [True, False, True]
    assert df["x"].to_list() == [1.5, None, 3.0]
    assert df["s"].to_list() == ["a", "b", None]
    assert df["n"].null_count() == 3


def test_utc_offsets_of_every_form_are_read_as_utc_wall_time(tmp_path):
    """Z, +02:00, +0200 and -05 in one column, and files that write times differently
    (an offset in one, Z in another, none in a third): one naive datetime column holding
    UTC wall time. "+02:00" used to stay time-zone aware (its format's %:z was not seen as
    an offset), which models trained on "Z" data refused (exit 3); a column mixing Z and
    +02:00 was read as text, and two such files were refused as "datetime but datetime"."""
    mixed = write(tmp_path / "m.csv", "t,v\n2024-06-01T00:00:00Z,1\n"
                  "2024-06-01T00:00:00+02:00,2\n2024-06-01T00:00:00.5+0200,3\n"
                  "2024-06-01T00:00:00-05,4\n")  # fmt: skip
    r = ingest([mixed], "ds")
    assert r.manifest["summary"]["schema"]["t"] == "datetime"
    assert read("ds").schema["t"] == pl.Datetime("us")  # naive
    assert read("ds")["t"].to_list() == [
        dt.datetime(2024, 6, 1), dt.datetime(2024, 5, 31, 22),
        dt.datetime(2024, 5, 31, 22, 0, 0, 500000), dt.datetime(2024, 6, 1, 5),
    ]  # fmt: skip
    ingest([mixed], "forced", types=["t=datetime"])
    assert read("forced").equals(read("ds"))
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "a.csv", "t,v\n2024-06-01T00:00:00Z,1\n")
    write(tmp_path / "logs" / "b.csv", "t,v\n2024-06-01T00:00:00+02:00,2\n")
    write(tmp_path / "logs" / "c.csv", "t,v\n2024-06-01 09:30:00,3\n")
    ingest([tmp_path / "logs"], "files")
    assert read("files").schema["t"] == pl.Datetime("us")
    assert sorted(read("files")["t"].to_list()) == [
        dt.datetime(2024, 5, 31, 22), dt.datetime(2024, 6, 1), dt.datetime(2024, 6, 1, 9, 30)
    ]  # fmt: skip


def test_type_override_and_extra_null_marker(tmp_path):
    src = write(tmp_path / "d.csv", "zip,v\n02134,-\n10001,7\n")
    ingest([src], "ds", types=["zip=string"], null=["-"])
    df = read("ds")
    assert df["zip"].to_list() == ["02134", "10001"]
    assert df["v"].to_list() == [None, 7]


@pytest.mark.parametrize("fmt", ["tsv", "parquet", "json", "jsonl", "ipc"])
def test_other_formats_read_the_same_table(tmp_path, fmt):
    df = pl.DataFrame({"a": [1, 2, None], "b": ["x", None, "z"], "c": [0.5, 1.5, 2.5]})
    path = tmp_path / f"data.{fmt}"
    match fmt:
        case "tsv":
            df.write_csv(path, separator="\t")
        case "parquet":
            df.write_parquet(path)
        case "json":
            df.write_json(path)
        case "jsonl":
            df.write_ndjson(path)
        case "ipc":
            df.write_ipc(path)
    ingest([path], "ds")
    assert read("ds").equals(df)


def test_glob_directory_and_column_union_across_files(tmp_path):
    write(tmp_path / "in" / "a.csv", "x,y\n1,a\n2,b\n")
    write(tmp_path / "in" / "b.csv", "y,x,z\nc,3.5,true\n")
    r = ingest([str(tmp_path / "in" / "*.csv")], "g")
    df = read("g")
    assert df.columns == ["x", "y", "z"]
    assert df.schema["x"] == pl.Float64  # int in one file, float in the other
    assert df["x"].to_list() == [1.0, 2.0, 3.5]
    assert df["z"].to_list() == [None, None, True]
    assert [s["path"] for s in r.manifest["summary"]["sources"]] == [
        str(tmp_path / "in" / "a.csv"),
        str(tmp_path / "in" / "b.csv"),
    ]
    ingest([tmp_path / "in"], "d")
    assert read("d").equals(df)


def test_type_conflict_between_files_names_both(tmp_path):
    a = write(tmp_path / "a.csv", "x\n1\n")
    b = write(tmp_path / "b.csv", "x\nhello\n")
    with pytest.raises(
        BadInput, match=r'column "x" is int in .*a\.csv but string in .*b\.csv.*types x='
    ):
        ingest([a, b], "ds")
    assert not (tmp_path / "ds").exists()


def test_hash_split_is_deterministic_complete_and_near_weights():
    r = ingest([SAMPLE / "adult.csv"], "ds", null=["?"], split=["train=8", "eval=2"])
    counts = r.manifest["summary"]["splits"]
    assert sum(counts.values()) == 32561
    assert abs(counts["train"] / 32561 - 0.8) < 0.01
    train, ev = read("ds", "train"), read("ds", "eval")
    whole = pl.read_csv(SAMPLE / "adult.csv", null_values=["?"])
    assert pl.concat([train, ev]).sort(whole.columns).equals(whole.sort(whole.columns))
    again = ingest([SAMPLE / "adult.csv"], "ds2", null=["?"], split=["train=8", "eval=2"])
    assert again.manifest["id"] == r.manifest["id"]
    other_seed = ingest(
        [SAMPLE / "adult.csv"], "ds3", null=["?"], split=["train=8", "eval=2"], seed=1
    )
    assert not read("ds3", "eval").equals(ev)
    assert other_seed.manifest["fingerprint"] != r.manifest["fingerprint"]


def _documented_split(values: list[object], seed: int, weights: list[float], keyed: bool) -> int:
    """The split a row belongs in, from the README's rules, one row at a time: the row
    hash of the whole row, the text hash of the keys."""
    h = stable_hash_many(values, prefix=str(seed)) if keyed else row_hash(values, seed)
    position, acc = unit_interval(h), 0.0
    for i, w in enumerate(weights[:-1]):
        acc += w / sum(weights)
        if position < acc:
            return i
    return len(weights) - 1


@pytest.mark.parametrize("keys", [[], ["when"], ["name", "n"]])
def test_every_row_is_in_the_split_its_documented_hash_names(tmp_path, keys):
    """Every column type, with missing values, negatives, NaN and dates before 1970: each
    row lands where the per-row reference says: `hashing.row_hash` of the whole row, or
    the text hash (`stable_hash_many`) of its keys."""
    lines = ["id,n,x,ok,name,day,when"]
    for i in range(600):
        miss = i % 11 == 0
        x = ["NaN", "-0.0", f"{(i - 300) * 0.37:.6g}", "1e-7", "inf"][i % 5]
        lines.append(",".join([
            str(i), "" if miss else str((i * 7919) % 200 - 100), "" if i % 13 == 0 else x,
            ["true", "false", ""][i % 3], "" if miss else f"n{i % 17}é",
            f"{1960 + i % 80}-0{1 + i % 9}-1{i % 10}", f"2024-03-0{1 + i % 9}T1{i % 10}:00:0{i % 6}",
        ]))  # fmt: skip
    src = write(tmp_path / "rows.csv", "\n".join(lines) + "\n")
    weights = [5.0, 3.0, 2.0]
    r = ingest([src], "ds", split=["a=5", "b=3", "c=2"], split_key=keys, seed=42)
    assert r.manifest["params"].get("split_hash") == (None if keys else "typed")
    seen = 0
    for i, name in enumerate("abc"):
        part = read("ds", name)
        assert dict(part.schema) == {
            "id": pl.Int64, "n": pl.Int64, "x": pl.Float64, "ok": pl.Boolean,
            "name": pl.String, "day": pl.Date, "when": pl.Datetime("us"),
        }  # fmt: skip
        for row in part.iter_rows(named=True):
            values = [row[k] for k in keys or part.columns]
            assert _documented_split(values, 42, weights, bool(keys)) == i, row
        seen += part.height
        assert 0.1 < part.height / 600 < 0.65
    assert seen == 600


def test_a_split_key_stays_put_when_its_column_is_read_as_another_type(tmp_path):
    """Numeric ids at first, then ids with letters: the key column is read as int, then
    as string, and no old key changes split (the text hash of 17 and of "17" agree)."""
    rows = [f"{i},{i % 5}" for i in range(1000)]
    more = [f"u{i},{i % 5}" for i in range(200)]
    first = write(tmp_path / "v1.csv", "user,v\n" + "\n".join(rows) + "\n")
    grown = write(tmp_path / "v2.csv", "user,v\n" + "\n".join(rows + more) + "\n")
    a = ingest([first], "a", split={"train": 3, "eval": 1}, split_key="user")
    b = ingest([grown], "b", split={"train": 3, "eval": 1}, split_key="user")
    types = [r.manifest["summary"]["schema"]["user"] for r in (a, b)]
    assert types == ["int", "string"]
    for split in ("train", "eval"):
        old = {str(u) for u in read("a", split)["user"]}
        assert old <= set(read("b", split)["user"])


def test_columns_named_like_the_splits_working_columns_are_kept(tmp_path):
    rows = "".join(f"{i},x{i},{-i}\n" for i in range(300))
    src = write(tmp_path / "d.csv", "__split,__hash,__split_\n" + rows)
    ingest([src], "ds", split={"train": 1, "eval": 1})
    both = pl.concat([read("ds", "train"), read("ds", "eval")]).sort("__split")
    assert both.columns == ["__split", "__hash", "__split_"]
    assert both["__hash"].to_list() == [f"x{i}" for i in range(300)]
    assert both["__split_"].to_list() == [-i for i in range(300)]


def test_a_split_rule_this_mlstage_does_not_know_is_refused(tmp_path):
    from mlstage.core.engine import engine_for
    from mlstage.data.conversion import write_dataset
    from mlstage.data.sources import expand_sources

    src = expand_sources([str(write(tmp_path / "d.csv", "a\n1\n2\n"))], "auto", tmp_path)
    with pytest.raises(BadInput, match="split rule 'typed2' is unknown"):
        write_dataset(src, tmp_path, [], {}, [("a", 1), ("b", 1)], [], None, 0, 100, 1000,
                      engine_for(None), split_hash="typed2")  # fmt: skip


def test_split_key_is_stable_as_data_grows(tmp_path):
    rows = [f"{i},{i % 7}" for i in range(2000)]
    first = write(tmp_path / "v1.csv", "id,v\n" + "\n".join(rows[:1000]) + "\n")
    grown = write(tmp_path / "v2.csv", "id,v\n" + "\n".join(rows) + "\n")
    ingest([first], "a", split={"train": 3, "eval": 1}, split_key="id")
    ingest([grown], "b", split={"train": 3, "eval": 1}, split_key="id")
    for split in ("train", "eval"):
        old = set(read("a", split)["id"])
        new = set(read("b", split)["id"])
        assert old <= new  # no old row moved to another split
    assert 0.2 < read("b", "eval").height / 2000 < 0.3


def test_split_order_puts_the_oldest_rows_first(tmp_path):
    lines = [f"2024-01-{d:02d},{d}" for d in range(31, 0, -1)]
    src = write(tmp_path / "t.csv", "day,v\n" + "\n".join(lines) + "\n")
    ingest([src], "ds", split={"train": 0.75, "test": 0.25}, split_order="day")
    train, test = read("ds", "train"), read("ds", "test")
    assert train["day"].max() < test["day"].min()
    assert train.height + test.height == 31
    assert test["v"].to_list() == sorted(test["v"].to_list(), reverse=True)  # input order kept


def test_stdin_is_read_and_recorded_by_content(tmp_path, monkeypatch):
    import io
    import sys

    data = b"a,b\n1,2\n3,4\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    r = ingest(["-"], "ds")
    assert read("ds")["a"].to_list() == [1, 3]
    assert r.manifest["inputs"][0] == {
        "role": "source",
        "id": hashlib.sha256(data).hexdigest(),
        "path": "-",
    }
    assert not list((Store.open().root / "tmp").glob("stdin-*"))


def test_touching_a_source_without_changing_it_reruns_nothing(tmp_path):
    src = write(tmp_path / "d.csv", "a\n1\n")
    first = ingest([src], "ds")
    src.touch()
    again = ingest([src], "ds")
    assert again.up_to_date and again.manifest["id"] == first.manifest["id"]
    write(src, "a\n2\n")
    assert not ingest([src], "ds").up_to_date


# -- bad input: exit 2 with a precise message, nothing written, the previous version intact


@pytest.fixture
def previous(tmp_path):
    good = write(tmp_path / "good.csv", "a,b\n1,2\n")
    return ingest([good], "ds").manifest["id"]


BAD_CSV = {
    "missing": (None, r"missing\.csv: no such file or directory"),
    "empty": (b"", r"empty\.csv: file is empty"),
    "header_only": (b"a,b\n", r"no data rows"),
    "ragged_long": (
        b"a,b\n1,2\n3,4,5\n",
        r"ragged_long\.csv: line 3: 3 fields where the header has 2",
    ),
    "ragged_short": (
        b"a,b\n1,2\n3\n",
        r"ragged_short\.csv: line 3: 1 fields where the header has 2",
    ),
    "bad_utf8": (b"a,b\n1,2\n3,\xff\xfe\n", r"bad_utf8\.csv: line 3: the file is not valid UTF-8"),
    "bad_quote": (b'a,b\n1,x\n"3,4\n', r"bad_quote\.csv: line \d+: malformed CSV"),
    "dup_header": (b"a,a\n1,2\n", r"dup_header\.csv: line 1: the header names a column twice: a"),
}


@pytest.mark.parametrize("case", list(BAD_CSV))
def test_bad_csv_is_exit_2_naming_file_and_line(tmp_path, previous, case):
    content, pattern = BAD_CSV[case]
    path = tmp_path / f"{case}.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BadInput, match=pattern) as info:
        ingest([path], "ds")
    assert info.value.exit_code == 2
    assert read_manifest(tmp_path / "ds")["id"] == previous
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds.")) == []


def test_value_after_the_inference_sample_names_line_column_value(tmp_path, previous):
    src = write(
        tmp_path / "late.csv", "age,name\n" + "".join(f"{i},n{i}\n" for i in range(50)) + "abc,x\n"
    )
    with pytest.raises(BadInput) as info:
        ingest([src], "ds", infer_rows=20)
    msg = str(info.value)
    assert "late.csv: line 52, column \"age\": cannot parse 'abc' as an integer" in msg
    assert "types age=string" in msg  # the Python spelling; the CLI says --type
    assert read_manifest(tmp_path / "ds")["id"] == previous


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"split": ["train=x", "eval=1"]}, r"the weight 'x' is not a number"),
        ({"split": ["train=-1", "eval=1"]}, r"positive"),
        ({"split": ["train"]}, r"expected NAME=VALUE"),
        ({"split": ["train=1"]}, r"two or more splits"),
        ({"types": ["a=decimal"]}, r"unknown type 'decimal'"),
        ({"types": ["nope=int"]}, r'no column "nope"'),
        ({"split": ["a=1", "b=1"], "split_key": "nope"}, r'no column "nope"'),
        ({"split": ["a=1", "b=1"], "split_order": "nope"}, r'no column "nope"'),
        ({"split_key": "a"}, r"need split NAME=WEIGHT"),
        ({"format": "xls"}, r"format .xls.: choose from"),
    ],
)
def test_bad_options_are_exit_2_and_write_nothing(tmp_path, previous, kwargs, pattern):
    with pytest.raises(BadInput, match=pattern):
        ingest([tmp_path / "good.csv"], "ds", **kwargs)
    assert read_manifest(tmp_path / "ds")["id"] == previous


def test_manifest_records_environment_and_params(tmp_path):
    src = write(tmp_path / "d.csv", "a\n1\n")
    m = ingest([src], "ds", null=["?"], seed=3).manifest
    assert m["environment"]["polars"] == pl.__version__
    assert m["params"]["seed"] == 3 and "?" in m["params"]["null_values"]
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text()) == m


def test_whole_numbers_past_int64_stay_text_and_a_jsonl_key_named_twice_is_refused(tmp_path):
    """A column of 20-digit ids was read as float, losing its last digits without a word;
    such a column is now text, kept exactly. A JSON Lines record naming a key twice was
    read with one of its values silently (a JSON array already refused it)."""
    src = write(
        tmp_path / "ids.csv", "id,v\n12345678901234567890,1.5\n98765432109876543211,2\n5,3\n"
    )
    r = ingest([src], "ds")
    assert r.manifest["summary"]["schema"] == {"id": "string", "v": "float"}
    assert read("ds")["id"].to_list() == ["12345678901234567890", "98765432109876543211", "5"]
    fits = write(tmp_path / "big.csv", "id\n9223372036854775807\n-9223372036854775808\n")
    assert ingest([fits], "fits").manifest["summary"]["schema"] == {"id": "int"}
    dup = write(tmp_path / "dup.jsonl", '{"a": 1, "b": 2}\n{"a": 1, "b": 2, "a": 3}\n')
    with pytest.raises(BadInput, match="names the key 'a' twice") as e:
        ingest([dup], "dj")
    assert (e.value.line, e.value.column) == (2, "a")


def test_a_value_that_does_not_parse_as_a_given_type_is_not_blamed_on_inference(tmp_path):
    """A value that does not parse as a type the user gave (--type) said the type was
    inferred from the first rows and to pass --type, which had been passed."""
    src = write(tmp_path / "d.csv", "x,y\n1,a\n2,b\nthree,c\n")
    with pytest.raises(BadInput, match="'three' as an integer; its type was given") as e:
        ingest([src], "ds", types=["x=int"])
    assert "inferred" not in str(e.value) and (e.value.line, e.value.column) == (4, "x")


def test_files_reading_dates_day_first_and_month_first_are_refused(tmp_path):
    """Two files with dates each its own way are read each with its own format, but not
    month/day beside day/month: a.csv's 01/02/2020 could be either, and b.csv proves the
    writer puts the day first. Refused, as before, rather than read as 2 January."""
    write(tmp_path / "a.csv", "d,v\n01/02/2020,1\n03/04/2020,2\n05/06/2020,3\n")
    write(tmp_path / "b.csv", "d,v\n13/02/2020,1\n25/04/2020,2\n")
    with pytest.raises(BadInput, match='column "d" is date in .*a.csv but date in .*b.csv'):
        ingest([tmp_path / "a.csv", tmp_path / "b.csv"], "ds")
