"""The scikit-learn reference for `featurize`: bench/features_spec.json as a ColumnTransformer.

    python bench/featurize_sklearn.py DATASET_DIR OUT_DIR

Fits on DATASET_DIR/train.parquet (a pandas frame) and writes OUT_DIR/<split>.parquet for
every split: Float32 features and the label as class indices. The closest scikit-learn
equivalent of each entry; where it differs from mlstage:

- one_hot without top_k: no `<oov>` or `<missing>` column (unknown values give all zeros,
  a missing value is a category of its own); with top_k 20: max_categories=21, the 21st
  being the infrequent (and unseen) values, like `<oov>`.
- hash and cross: FeatureHasher (MurmurHash3, not xxHash64), a missing value hashing to
  no bucket as in mlstage; the cross hashes the two values joined by U+001F.

Memory: ColumnTransformer.fit is fit_transform, so fitting holds the whole training
output, kept sparse (the default sparse_threshold; ~28 of 197 values per row are
non-zero). The splits are transformed and written in batches of BATCH rows, so the
dense Float32 output never exists for a whole split.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction import FeatureHasher
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    LabelEncoder,
    MinMaxScaler,
    OneHotEncoder,
    StandardScaler,
)

BATCH = 250_000  # rows: ~0.4 GB of dense float64 per batch
F32 = np.float32


def tokens(X: pd.DataFrame) -> list[list[str]]:
    """One string per row for FeatureHasher: the value (none if missing), or the values
    of a cross joined by U+001F. Vectorised where pandas can: iterating a str Series
    is ~4x slower than its object array, and itertuples ~8x slower than concatenating.
    """
    if X.shape[1] == 1:
        return [[] if v is None else [v] for v in X.iloc[:, 0].to_numpy(object, na_value=None)]
    text = X.iloc[:, 0].fillna("\x00")
    for c in X.columns[1:]:
        text = text + "\x1f" + X[c].fillna("\x00")
    return [[v] for v in text.to_numpy(object)]


def hasher(n: int):
    return make_pipeline(
        FunctionTransformer(tokens),
        FeatureHasher(n, input_type="string", alternate_sign=False, dtype=F32),
    )


def dateparts(X: pd.DataFrame) -> np.ndarray:
    ts = X.iloc[:, 0].dt
    return np.column_stack([ts.month, ts.day_of_week, ts.hour]).astype(F32)


def column_transformer() -> ColumnTransformer:
    median = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    mode_onehot = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(dtype=F32))
    # top_k 20: 20 frequent values and one "infrequent" column, which unseen values join.
    top20 = OneHotEncoder(max_categories=21, handle_unknown="infrequent_if_exist", dtype=F32)
    top20_mode = make_pipeline(SimpleImputer(strategy="most_frequent"), top20)
    # subsample=None: quantiles of every row, as mlstage (the default samples 200,000).
    bins = KBinsDiscretizer(
        5, strategy="quantile", quantile_method="linear", subsample=None, dtype=F32
    )
    return ColumnTransformer([
        ("median_std", median, ["f0", "f2", "f4", "f6"]),
        ("std", StandardScaler(), ["f1", "f3", "f5", "f7"]),
        ("bucketize", bins, ["i0", "i1", "i2"]),
        ("minmax", MinMaxScaler(), ["i3"]),
        ("log", FunctionTransformer(np.log1p), ["i4"]),
        ("onehot_mode", mode_onehot, ["c0"]),
        ("onehot", OneHotEncoder(handle_unknown="ignore", dtype=F32), ["c1", "c2"]),
        ("top20_mode", top20_mode, ["c3"]),
        ("top20", top20, ["c4", "c5"]),
        ("hash_c6", hasher(32), ["c6"]),
        ("hash_c7", hasher(32), ["c7"]),
        ("cross", hasher(16), ["c0", "c1"]),
        ("datetime", FunctionTransformer(dateparts), ["ts"]),
    ])  # fmt: skip


def main(dataset: str, out: str) -> None:
    ct = column_transformer()
    # Only the columns the features and the label read (not id).
    columns = sorted({c for _, _, cols in ct.transformers for c in cols}) + ["label"]
    train = pd.read_parquet(Path(dataset) / "train.parquet", columns=columns)
    ct.fit(train)
    labels = LabelEncoder().fit(train["label"])
    del train
    Path(out).mkdir(parents=True, exist_ok=True)
    for split in sorted(Path(dataset).glob("*.parquet")):
        writer = None
        for batch in pq.ParquetFile(split).iter_batches(batch_size=BATCH, columns=columns):
            df = batch.to_pandas()
            X = ct.transform(df).astype(F32)  # sparse: only the non-zeros are converted
            # Column-major, so each column goes to arrow without a copy (~3x faster).
            X = X.toarray(order="F") if hasattr(X, "toarray") else np.asfortranarray(X)
            cols = [pa.array(X[:, j]) for j in range(X.shape[1])]
            cols.append(pa.array(labels.transform(df["label"]).astype(np.int32)))
            table = pa.table(cols, names=[f"x{j}" for j in range(X.shape[1])] + ["label"])
            writer = writer or pq.ParquetWriter(Path(out) / split.name, table.schema)
            writer.write_table(table)
        writer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
