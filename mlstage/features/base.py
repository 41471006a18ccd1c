"""The base of every feature transform, and what they share: the column kinds each
accepts, the text tokenizer, NaN for a missing numeric output. See `transforms` for the
conventions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

NUMERIC = ("int", "float")


CATEGORICAL = ("string", "int", "bool")


TEMPORAL = ("date", "datetime")


TOKEN_PATTERN = r"\b\w\w+\b"


_TOKENS = re.compile(TOKEN_PATTERN)


NAN = float("nan")


def tokens(text: str | None) -> list[str]:
    return _TOKENS.findall(text.lower()) if text else []


class Transform:
    """Base: subclasses set `name`, `accepts`, `options`, and implement the four methods."""

    name = ""
    accepts: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    multi = False  # takes `columns` (several) instead of `column`
    text_input = False  # reads the canonical text of its column (categorical transforms)

    def nan_on_missing(self, entry: dict) -> bool:
        """Whether a missing input gives NaN outputs (rather than all-zero or a slot of its own).

        Such a transform gets a fitted fill value when training saw no missing value, so
        an estimator that rejects NaN never meets one it was not trained with."""
        return True

    def fit(self, entry: dict, col) -> dict[str, Any]:
        """The fitted state, from a `training_column.Column` (None for `multi`)."""
        return {}

    def outputs(self, entry: dict, state: dict) -> list[str]:
        return [entry["column"]]

    def exprs(self, entry: dict, state: dict, x) -> list:
        raise NotImplementedError

    def row(self, entry: dict, state: dict) -> Callable[[Any], list[float]]:
        raise NotImplementedError
