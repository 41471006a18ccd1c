"""Reference for `train`: scikit-learn called directly on the same feature arrays.

    python bench/train_direct.py FEATURES_DIR ESTIMATOR_JSON

Loads FEATURES_DIR/train.parquet into one float32 array (as mlstage does) and fits
the estimator the JSON names with its params; nothing else (no metrics, no files).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
from sklearn import ensemble, linear_model

features, config = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
outputs = json.loads((features / "transform.json").read_text())["outputs"]
label = json.loads((features / "transform.json").read_text())["label"]["column"]
df = pl.read_parquet(features / "train.parquet")
X = np.ascontiguousarray(df.select(outputs).to_numpy(), dtype=np.float32)
y = df[label].to_numpy()
del df
cls = getattr(ensemble, config["estimator"], None) or getattr(linear_model, config["estimator"])
cls(**config.get("params", {}), random_state=config.get("seed", 0)).fit(X, y)
print(X.shape)
