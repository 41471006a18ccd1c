"""The dataset matrix through the whole chain (see tests/matrix/matrix.py).

`make test` runs the scikit-learn datasets and a seeded sample of the generated cases
(MLSTAGE_MATRIX_SAMPLE, default 6); `make test-matrix` runs them all (MLSTAGE_MATRIX=all).
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
    generated = [c for c in every if not c.label.startswith("sklearn:")]
    rng = random.Random(int(os.environ.get("MLSTAGE_MATRIX_SEED", "13")))
    sample = rng.sample(generated, int(os.environ.get("MLSTAGE_MATRIX_SAMPLE", "6")))
    return sample + [c for c in every if c.label.startswith("sklearn:")]


@pytest.mark.parametrize("case", _selected(), ids=lambda c: c.name)
def test_whole_chain(case, tmp_path):
    facts = run_chain(case, tmp_path)
    if case.task == "classification":
        assert len(facts["classes"]) >= 2
