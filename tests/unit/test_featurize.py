"""`featurize`: every transform against an independent computation, batch = row, bad input."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, OneHotEncoder, StandardScaler

from mlstage import ingest
from mlstage.core.hashing import stable_hash, stable_hash_many
from mlstage.errors import BadInput
from mlstage.features.fitted import FittedTransform
from mlstage.stages.featurize import featurize

from ..conftest import SAMPLE, cli, write

WORDS = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "Eta", "theta"]


def frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 10, n)
    x[rng.random(n) < 0.1] = np.nan
    cats = rng.choice(["a", "b", "c", "d", "e"], size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05]).astype(
        object
    )
    cats[rng.random(n) < 0.1] = None
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(0, 6))) for _ in range(n)]
    base = dt.datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            "x": pl.Series(x).fill_nan(None),
            "pos": rng.exponential(3, n),
            "k": rng.integers(0, 20, n),
            "cat": pl.Series(cats.tolist(), dtype=pl.String),
            "other": rng.choice(["u", "v"], size=n),
            "text": texts,
            "when": [base + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 500_000, n)],
            "y": rng.choice(["no", "yes"], size=n),
        }
    )


def spec(*features, label="y", passthrough=()):
    return {
        "format": "mlstage-features/1",
        "label": label,
        "features": list(features),
        "passthrough": list(passthrough),
    }


@pytest.fixture
def data(tmp_path):
    df = frame(3000, 0)
    df.write_parquet(tmp_path / "d.parquet")
    ingest([tmp_path / "d.parquet"], "ds", split={"train": 3, "eval": 1})
    return pl.read_parquet("ds/train.parquet"), pl.read_parquet("ds/eval.parquet")


def run(tmp_path, doc, name="feat"):
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    result = featurize("ds", name, spec=path)
    return result, pl.read_parquet(f"{name}/train.parquet"), pl.read_parquet(f"{name}/eval.parquet")


def test_numeric_transforms_match_scikit_learn(data, tmp_path):
    train, ev = data
    result, ft, fe = run(
        tmp_path,
        spec(
            {"column": "x", "transform": "standardize", "impute": "mean", "indicator": True},
            {"column": "pos", "transform": "minmax"},
            {"column": "k", "transform": "bucketize", "buckets": 4, "output": "ordinal"},
        ),
    )
    assert result.manifest["summary"]["features"] == 4
    mean = train["x"].mean()
    scaler = StandardScaler().fit(train["x"].fill_null(mean).to_numpy()[:, None])
    want = scaler.transform(ev["x"].fill_null(mean).to_numpy()[:, None]).ravel().astype(np.float32)
    np.testing.assert_allclose(fe["x"].to_numpy(), want, rtol=1e-6, atol=1e-6)
    assert fe["x#missing"].to_list() == ev["x"].is_null().cast(pl.Float32).to_list()
    mm = MinMaxScaler().fit(train["pos"].to_numpy()[:, None])
    np.testing.assert_allclose(
        fe["pos"].to_numpy(),
        mm.transform(ev["pos"].to_numpy()[:, None]).ravel(),
        rtol=1e-5,
        atol=1e-6,
    )
    kb = KBinsDiscretizer(n_bins=4, encode="ordinal", strategy="quantile", quantile_method="linear")
    kb.fit(train["k"].to_numpy()[:, None].astype(float))
    assert (
        fe["k"].to_list()
        == kb.transform(ev["k"].to_numpy()[:, None].astype(float)).ravel().tolist()
    )
    assert ft.schema["x"] == pl.Float32 and ft.schema["y"] == pl.Int32


def test_log_clip_and_bucketize_onehot(data, tmp_path):
    train, ev = data
    _, _, fe = run(
        tmp_path,
        spec(
            {"column": "pos", "transform": "log"},
            {"column": "x", "transform": "clip", "min": 40, "max": 60},
            {"column": "k", "transform": "bucketize", "buckets": 3},
        ),
    )
    np.testing.assert_allclose(fe["pos"].to_numpy(), np.log1p(ev["pos"].to_numpy()), rtol=1e-6)
    want = np.clip(ev["x"].to_numpy(), 40, 60)
    np.testing.assert_allclose(fe["x"].to_numpy(), want, rtol=1e-6)  # NaN stays NaN for a missing x
    kb = KBinsDiscretizer(
        n_bins=3, encode="onehot-dense", strategy="quantile", quantile_method="linear"
    )
    kb.fit(train["k"].to_numpy()[:, None].astype(float))
    got = fe.select([c for c in fe.columns if c.startswith("k#")]).to_numpy()
    np.testing.assert_array_equal(got, kb.transform(ev["k"].to_numpy()[:, None].astype(float)))


def test_categorical_transforms(data, tmp_path):
    train, ev = data
    _, _, fe = run(
        tmp_path,
        spec(
            {"column": "cat", "transform": "one_hot", "top_k": 3},
            {"column": "other", "transform": "ordinal"},
            {"column": "k", "transform": "hash", "buckets": 8},
            {"columns": ["cat", "other"], "transform": "cross", "buckets": 16},
        ),
    )
    top3 = ["a", "b", "c"]
    enc = OneHotEncoder(categories=[top3], handle_unknown="ignore", sparse_output=False)
    enc.fit(np.array(top3)[:, None])
    values = ev["cat"].to_list()
    want = enc.transform(
        np.array([v if v is not None else "?" for v in values], dtype=object)[:, None]
    )
    got = fe.select(["cat=a", "cat=b", "cat=c"]).to_numpy()
    np.testing.assert_array_equal(got, want)
    assert fe["cat=<oov>"].to_list() == [1.0 if v in ("d", "e") else 0.0 for v in values]
    assert fe["cat=<missing>"].to_list() == [1.0 if v is None else 0.0 for v in values]
    assert fe["other"].to_list() == [0.0 if v == "u" else 1.0 for v in ev["other"]]
    hashed = fe.select([f"k#{i}" for i in range(8)]).to_numpy().argmax(axis=1)
    assert hashed.tolist() == [stable_hash(int(v)) % 8 for v in ev["k"]]
    crossed = fe.select([f"cat*other#{i}" for i in range(16)]).to_numpy().argmax(axis=1)
    assert crossed.tolist() == [
        stable_hash_many([c, o]) % 16 for c, o in zip(values, ev["other"], strict=True)
    ]


def test_text_transforms_match_scikit_learn(data, tmp_path):
    train, ev = data
    _, _, fe = run(tmp_path, spec({"column": "text", "transform": "tfidf", "max_features": 5}))
    vec = TfidfVectorizer(max_features=5).fit(train["text"].to_list())
    want = vec.transform(ev["text"].to_list()).toarray()
    cols = [f"text:{t}" for t in vec.get_feature_names_out()]
    np.testing.assert_allclose(fe.select(cols).to_numpy(), want, rtol=1e-5, atol=1e-6)
    _, _, fe = run(
        tmp_path, spec({"column": "text", "transform": "counts", "max_features": 4}), "counts"
    )
    vec = CountVectorizer(max_features=4).fit(train["text"].to_list())
    cols = [f"text:{t}" for t in vec.get_feature_names_out()]
    np.testing.assert_array_equal(
        fe.select(cols).to_numpy(), vec.transform(ev["text"].to_list()).toarray()
    )


def test_datetime_parts(data, tmp_path):
    _, ev = data
    _, _, fe = run(
        tmp_path,
        spec(
            {
                "column": "when",
                "transform": "datetime",
                "parts": ["month", "dayofweek", "hour"],
                "cyclic": True,
            }
        ),
    )
    whens = ev["when"].to_list()
    assert fe["when@month"].to_list() == [float(w.month) for w in whens]
    assert fe["when@dayofweek"].to_list() == [float(w.weekday()) for w in whens]
    np.testing.assert_allclose(
        fe["when@hour_sin"].to_numpy(),
        [math.sin(2 * math.pi * w.hour / 24) for w in whens],
        atol=1e-6,
    )


def test_a_time_zone_aware_column_meets_a_transform_as_its_utc_wall_time(data, tmp_path):
    """Datasets ingested before offsets were read as UTC wall time hold time-zone aware
    datetimes; a transform fitted on naive ones (every dataset now) applies to them as
    their UTC wall time, with the same features as the naive column gives (it raised
    "failed to determine supertype", exit 3, in predict and evaluate)."""
    from mlstage.features.fitted import FittedTransform

    train, ev = data
    entry = {"column": "when", "transform": "datetime", "parts": ["hour", "dayofweek"],
             "impute": "mode"}  # fmt: skip
    train.select("when").write_parquet(tmp_path / "t.parquet")
    ft = FittedTransform.fit({"format": "mlstage-features/1", "features": [entry]},
                             [tmp_path / "t.parquet"], {"when": "datetime"})  # fmt: skip
    naive = ev.select("when")
    # the same instants, written as +02:00 (kept aware, as the earlier ingest did)
    aware = naive.with_columns(
        pl.col("when").dt.replace_time_zone("UTC").dt.convert_time_zone("Etc/GMT-2")
    )
    want = ft.apply_lazy(naive.lazy(), with_label=False).collect()
    got = ft.apply_lazy(aware.lazy(), with_label=False).collect()
    assert got.equals(want) and want.height == ev.height


def test_imputation_matches_simple_imputer(data, tmp_path):
    from sklearn.impute import SimpleImputer

    train, ev = data
    _, _, fe = run(
        tmp_path,
        spec(
            {"column": "x", "transform": "minmax", "impute": "median"},
            {"column": "cat", "transform": "one_hot", "impute": "mode", "indicator": True},
        ),
    )
    med = SimpleImputer(strategy="median").fit(train["x"].to_numpy()[:, None]).statistics_[0]
    filled = ev["x"].fill_null(med).to_numpy()
    lo, hi = train["x"].fill_null(med).min(), train["x"].fill_null(med).max()
    np.testing.assert_allclose(fe["x"].to_numpy(), (filled - lo) / (hi - lo), rtol=1e-5)
    mode = (
        SimpleImputer(strategy="most_frequent")
        .fit(np.array(train["cat"].to_list(), dtype=object)[:, None])
        .statistics_[0]
    )
    assert mode == "a"
    missing = ev["cat"].is_null()
    assert fe.filter(missing)["cat=a"].to_list() == [1.0] * missing.sum()
    assert "cat=<missing>" not in fe.columns and fe["cat#missing"].sum() == missing.sum()


def test_unseen_categories_go_to_oov_and_transform_reapplies(data, tmp_path):
    _ = run(
        tmp_path,
        spec(
            {"column": "cat", "transform": "one_hot"},
            {"column": "x", "transform": "standardize"},
            passthrough=["k"],
        ),
    )
    new = frame(50, 9).with_columns(pl.lit("zzz").alias("cat")).drop("y")
    new.write_parquet(tmp_path / "new.parquet")
    ingest([tmp_path / "new.parquet"], "new")
    r = featurize("new", "applied", transform="feat")
    out = pl.read_parquet("applied/data.parquet")
    assert (
        r.manifest["summary"]["label"] == "y" and "y" not in out.columns
    )  # serving data: no label
    assert out["cat=<oov>"].sum() == 50 and out["k"].to_list() == new["k"].to_list()
    doc = json.loads(open("feat/transform.json").read())
    assert doc["format"] == "mlstage-transform/1" and doc["label"]["classes"] == ["no", "yes"]
    assert doc["inputs"] == {"x": "float", "cat": "string"}


def test_spec_change_changes_fingerprint_and_diff_shows_it(data, tmp_path):
    a, _, _ = run(tmp_path, spec({"column": "cat", "transform": "one_hot", "top_k": 2}), "a")
    b, _, _ = run(tmp_path, spec({"column": "cat", "transform": "one_hot", "top_k": 3}), "b")
    assert (
        a.manifest["fingerprint"] != b.manifest["fingerprint"]
        and a.manifest["id"] != b.manifest["id"]
    )
    again, _, _ = run(tmp_path, spec({"column": "cat", "transform": "one_hot", "top_k": 2}), "a")
    assert again.up_to_date
    rows = {
        r["field"]: (r["a"], r["b"]) for r in json.loads(cli("diff", "a", "b", "--json").stdout)
    }
    assert rows["features.cat.spec.top_k"] == (2, 3)
    assert rows["features.cat.fitted.vocabulary"] == (["a", "b"], ["a", "b", "c"])


@pytest.mark.parametrize(
    "entry, pattern",
    [
        (
            {"column": "x", "transform": "squash"},
            r"unknown transform 'squash'; valid: bucketize, clip, counts",
        ),
        (
            {"column": "x", "transform": "standardize", "top_k": 3},
            r"standardize has no option 'top_k'; valid: column, columns, impute, indicator",
        ),
        ({"column": "nope", "transform": "standardize"}, r'no column "nope"'),
        (
            {"column": "cat", "transform": "standardize"},
            r'standardize needs a int or float column; "cat" is string',
        ),
        ({"column": "y", "transform": "one_hot"}, r'"y" is the label'),
        (
            {"columns": ["cat"], "transform": "cross"},
            r"\$\.features\[0\]\.columns: \['cat'\] is too short",
        ),
        ({"column": "cat", "transform": "cross"}, r"cross takes columns"),
        (
            {"column": "x", "transform": "minmax", "impute": "sometimes"},
            r"\$\.features\[0\]\.impute",
        ),
        (
            {"column": "cat", "transform": "one_hot", "impute": "mean"},
            r"impute mean needs a numeric column",
        ),
    ],
)
def test_bad_specs_are_exit_2_naming_the_problem(data, tmp_path, entry, pattern):
    with pytest.raises(BadInput, match=pattern):
        run(tmp_path, spec(entry))
    assert not (tmp_path / "feat").exists()


def test_bad_data_for_a_fitted_transform(data, tmp_path):
    run(
        tmp_path,
        spec({"column": "pos", "transform": "log"}, {"column": "cat", "transform": "one_hot"}),
    )
    bad = frame(20, 3).with_columns(pos=pl.Series([-2.5] + [1.0] * 19))
    bad.write_parquet(tmp_path / "neg.parquet")
    ingest([tmp_path / "neg.parquet"], "neg")
    with pytest.raises(BadInput, match=r'column "pos": log: -2.5 in .* is negative'):
        featurize("neg", "out", transform="feat")
    frame(20, 4).drop("cat").write_parquet(tmp_path / "nocat.parquet")
    ingest([tmp_path / "nocat.parquet"], "nocat")
    with pytest.raises(BadInput, match='no column "cat", which the features need'):
        featurize("nocat", "out", transform="feat")
    frame(20, 5).with_columns(pl.col("pos").cast(pl.String)).write_parquet(tmp_path / "str.parquet")
    ingest([tmp_path / "str.parquet"], "strs")
    with pytest.raises(BadInput, match=r'column "pos": the column is string'):
        featurize("strs", "out", transform="feat")
    write(tmp_path / "one.csv", "x,y\n1,a\n")
    ingest(
        [tmp_path / "one.csv"], "tiny", split={"train": 1e-9, "eval": 1}
    )  # the row lands in eval
    write(tmp_path / "s.json", json.dumps(spec({"column": "x", "transform": "standardize"})))
    with pytest.raises(BadInput, match="the training split is empty"):
        featurize("tiny", "out", spec=tmp_path / "s.json")
    assert not (tmp_path / "out").exists()


# -- one definition: applying to each row alone equals applying to the whole frame


ALL_ENTRIES = [
    {"column": "x", "transform": "standardize"},
    {"column": "x", "transform": "minmax", "impute": "median", "indicator": True},
    {"column": "pos", "transform": "log"},
    {"column": "pos", "transform": "clip", "min": 0.5, "max": 3},
    {"column": "k", "transform": "bucketize", "buckets": 5},
    {"column": "k", "transform": "bucketize", "buckets": 5, "output": "ordinal"},
    {"column": "cat", "transform": "one_hot", "top_k": 3},
    {"column": "cat", "transform": "one_hot", "impute": {"constant": "q"}},
    {"column": "cat", "transform": "ordinal"},
    {"column": "k", "transform": "hash", "buckets": 7},
    {"columns": ["cat", "k"], "transform": "cross", "buckets": 9},
    {"column": "text", "transform": "tfidf", "max_features": 6},
    {"column": "text", "transform": "counts", "max_features": 3},
    {
        "column": "when",
        "transform": "datetime",
        "parts": ["year", "month", "day", "dayofweek", "hour", "minute"],
        "cyclic": True,
    },
]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(0, len(ALL_ENTRIES) - 1), seed=st.integers(0, 10_000), n=st.integers(1, 40)
)
def test_row_path_equals_batch_path(tmp_path, index, seed, n):
    entry = ALL_ENTRIES[index]
    train = frame(200, seed)
    train.write_parquet(tmp_path / "train.parquet")
    types = {
        "x": "float",
        "pos": "float",
        "k": "int",
        "cat": "string",
        "other": "string",
        "text": "string",
        "when": "datetime",
        "y": "string",
    }
    ft = FittedTransform.fit(spec(entry), tmp_path / "train.parquet", types)
    rows = frame(n, seed + 1)
    batch = ft.apply_lazy(rows.lazy(), with_label=False).collect().to_numpy().astype(np.float32)
    row_fn = ft.row_function()
    single = np.array([row_fn(r) for r in rows.to_dicts()], dtype=np.float32).reshape(batch.shape)
    np.testing.assert_allclose(single, batch, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_row_path_on_the_adult_sample(tmp_path):
    ingest([SAMPLE / "adult.csv"], "adult", null=["?"], split={"train": 8, "eval": 2})
    doc = spec(
        {"column": "age", "transform": "standardize"},
        {"column": "workclass", "transform": "one_hot", "impute": "mode", "indicator": True},
        {"columns": ["sex", "race"], "transform": "cross", "buckets": 8},
        {"column": "hours-per-week", "transform": "bucketize", "buckets": 4},
        label="income",
    )
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    featurize("adult", "af", spec=path)
    ft = FittedTransform(json.loads(open("af/transform.json").read()))
    ev = pl.read_parquet("adult/eval.parquet").head(300)
    batch = pl.read_parquet("af/eval.parquet").head(300).drop("income").to_numpy()
    single = np.array([ft.row_function()(r) for r in ev.to_dicts()], dtype=np.float32)
    np.testing.assert_array_equal(single, batch)


@pytest.mark.parametrize(
    "values, dtype, ctype, transform, constant",
    [
        ([1, None, 2, 2, None, 3], pl.Int64, "int", "ordinal", 2.5),
        ([1, None, 2, 2, None, 3], pl.Int64, "int", "one_hot", 2.5),
        ([True, None, False], pl.Boolean, "bool", "one_hot", "yes"),
        ([True, None, False], pl.Boolean, "bool", "ordinal", 1),
        (["a b", None, "b c"], pl.String, "string", "tfidf", 33),
    ],
)
def test_a_constant_fill_is_fitted_as_fill_null_makes_it(
    tmp_path, values, dtype, ctype, transform, constant
):
    # the fit summarises the column (training_column); filling it must give what fitting
    # on `fill_null(constant)` gave, which is what apply fills: an int column filled with
    # 2.5 is a float column ("1.0", ..., "2.5"), a bool one filled with "yes" a string one
    path = tmp_path / "t.parquet"
    pl.DataFrame({"c": pl.Series(values, dtype=dtype)}).write_parquet(path)
    entry = {"column": "c", "transform": transform, "impute": {"constant": constant}}
    doc = {"format": "mlstage-features/1", "features": [entry]}
    ft = FittedTransform.fit(doc, path, {"c": ctype})
    filled = pl.Series("c", values, dtype=dtype).fill_null(constant).cast(pl.String)
    state = ft.entries[0]["state"]
    if transform == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer().fit(filled.to_list())
        assert state["vocabulary"] == sorted(vec.vocabulary_)
        assert state["idf"] == pytest.approx(
            list(vec.idf_[np.argsort(vec.get_feature_names_out())])
        )
    else:
        assert state["vocabulary"] == sorted(set(filled.to_list()))
        out = ft.apply_lazy(pl.read_parquet(path).lazy(), with_label=False).collect()
        oov = [c for c in out.columns if "<oov>" in c or c == "c"]
        if transform == "one_hot":
            assert out[oov[0]].sum() == 0  # every training row is in the vocabulary
        else:
            assert out["c"].max() < len(state["vocabulary"])


@pytest.mark.parametrize("transform", ["standardize", "minmax"])
def test_an_infinite_training_value_is_named_for_scaling_transforms(tmp_path, transform):
    """Its mean, sd or range would be inf or NaN: exit 3 from the JSON writer before."""
    src = tmp_path / "d.csv"
    src.write_text("x,y\n1.0,a\n-inf,b\n2.0,a\ninf,b\n")
    ingest([src], "ds")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"format": "mlstage-features/1", "label": "y",
                                "features": [{"column": "x", "transform": transform}]}))  # fmt: skip
    with pytest.raises(BadInput, match=f"{transform}: the training data holds 1 -inf and 1 inf"):
        featurize("ds", "f", spec=spec)
    assert not (tmp_path / "f").exists()
