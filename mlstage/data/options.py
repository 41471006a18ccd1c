"""Parsing of NAME=VALUE options shared by the library and the CLI."""

from __future__ import annotations

import re

from ..core.coltypes import TYPE_NAMES
from ..errors import BadInput, opt
from .splits import is_part_name

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def parse_pairs(items, option: str) -> list[tuple[str, str]]:
    """[("a", "1"), ...] from "a=1" strings or a mapping."""
    if items is None:
        return []
    if isinstance(items, dict):
        return [(str(k), str(v)) for k, v in items.items()]
    pairs = []
    for item in items:
        if isinstance(item, tuple | list) and len(item) == 2:
            pairs.append((str(item[0]), str(item[1])))
            continue
        key, sep, value = str(item).partition("=")
        if not sep or not key or not value:
            raise BadInput(f"{option} {item!r}: expected NAME=VALUE")
        pairs.append((key, value))
    return pairs


def parse_types(items) -> dict[str, str]:
    types = {}
    for col, name in parse_pairs(items, opt("types", "--type")):
        if name not in TYPE_NAMES:
            raise BadInput(
                f"{opt('types', '--type')} {col}={name}: unknown type {name!r}; choose from {', '.join(TYPE_NAMES)}"
            )
        types[col] = name
    return types


def parse_splits(items) -> list[tuple[str, float]]:
    splits: list[tuple[str, float]] = []
    for name, weight in parse_pairs(items, opt("split")):
        if not _NAME.match(name) or name == "data" or is_part_name(name):
            raise BadInput(
                f"{opt('split')} {name}={weight}: a split name is letters, digits, '_', '-' or '.',"
                " not 'data', and does not end in '.part-' and 5 or more digits (a partition's name)"
            )
        try:
            w = float(weight)
        except ValueError:
            raise BadInput(
                f"{opt('split')} {name}={weight}: the weight {weight!r} is not a number"
            ) from None
        if not (w > 0 and w < float("inf")):
            raise BadInput(f"{opt('split')} {name}={weight}: the weight must be a positive number")
        if name in dict(splits):
            raise BadInput(f"{opt('split')} {name}: named twice")
        splits.append((name, w))
    if len(splits) == 1:
        raise BadInput(f"{opt('split')}: give two or more splits (or none for an unsplit dataset)")
    return splits
