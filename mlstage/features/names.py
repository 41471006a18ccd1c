"""Output column names (DESIGN §5): `col`, `col=VALUE`, `col=<oov>`, `col=<missing>`,
`col#missing`, `col#K`, `a*b#K`, `col:TOKEN`, `col@month`, `col@month_sin`.

A value that is not plain (letters, digits, `_ . - + /`) is quoted JSON-style, so
`city="New York"` and `x=""` cannot be confused with other names.
"""

from __future__ import annotations

import json
import re

_PLAIN = re.compile(r"^[A-Za-z0-9_.+/-]+$")
OOV = "<oov>"
MISSING = "<missing>"


def quote(value: str) -> str:
    return value if _PLAIN.match(value) else json.dumps(value, ensure_ascii=False)


def one_hot(column: str, value: str) -> str:
    return f"{column}={value if value in (OOV, MISSING) else quote(value)}"


def indicator(column: str) -> str:
    return f"{column}#missing"


def bucket(column: str, k: int) -> str:
    return f"{column}#{k}"


def cross(columns: list[str], k: int) -> str:
    return f"{'*'.join(columns)}#{k}"


def token(column: str, tok: str) -> str:
    return f"{column}:{quote(tok)}"


def part(column: str, name: str) -> str:
    return f"{column}@{name}"
