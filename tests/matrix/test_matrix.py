"""The dataset matrix through the whole chain (see tests/matrix/matrix.py).

`make test` runs the scikit-learn datasets, the XGBoost and LightGBM cases and a seeded
sample of the other generated cases (MLSTAGE_MATRIX_SAMPLE, default 6); `make
test-matrix` runs them all (MLSTAGE_MATRIX=all).
"""

from __future__ import annotations

import os
import random

import pytest

from .matrix import cases, run_chain


def _selected():
    every = cases()
    if os.environ.get("MLSTAGE_MATRIX") == "all":
        return every
    generated = [c for c in every if not c.always]
    rng = random.Random(int(os.environ.get("MLSTAGE_MATRIX_SEED", "13")))
    sample = rng.sample(generated, int(os.environ.get("MLSTAGE_MATRIX_SAMPLE", "6")))
    return sample + [c for c in every if c.always]


# case name -> the drift its random eval split raised (read by the last test)
RANDOM_SPLIT_DRIFT: dict[str, list] = {}


@pytest.mark.parametrize("case", _selected(), ids=lambda c: c.name)
def test_whole_chain(case, tmp_path):
    facts = run_chain(case, tmp_path)
    RANDOM_SPLIT_DRIFT[case.name] = facts["random_split_drift"]
    if case.task == "classification":
        assert len(facts["classes"]) >= 2


def test_random_splits_raise_drift_at_most_at_the_documented_rate():
    """Each case's eval split is a hashed random split of its own data. The schema's
    family-wise level (0.05) bounds how often such a split raises drift: over the cases
    run above, no more than the 99th percentile of Binomial(cases, 0.05)."""
    from scipy.stats import binom

    if not RANDOM_SPLIT_DRIFT:
        pytest.skip("no case of the matrix ran in this session")
    flagged = {k: v for k, v in RANDOM_SPLIT_DRIFT.items() if v}
    allowed = int(binom.ppf(0.99, len(RANDOM_SPLIT_DRIFT), 0.05))
    assert len(flagged) <= allowed, (len(RANDOM_SPLIT_DRIFT), flagged)
