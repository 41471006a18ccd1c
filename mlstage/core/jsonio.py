"""Canonical JSON (for hashing) and reading user-written JSON or TOML files."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..errors import BadInput


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: reformatting a file changes nothing."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def dumps_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def jsonable(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def read_text_file(path: Path) -> str:
    """A user-written text file, or bad input saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput("no such file", file=str(path)) from None
    except UnicodeDecodeError as e:
        raise BadInput(f"not UTF-8 text (byte {e.start})", file=str(path)) from None
    except OSError as e:
        raise BadInput(e.strerror or str(e), file=str(path)) from None


def read_config(path: Path) -> Any:
    """Read a user-written JSON or TOML file, naming line and column of a syntax error."""
    text = read_text_file(path)
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise BadInput(f"not valid TOML: {e}", file=str(path)) from None
    else:
        try:
            doc = json.loads(text, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as e:
            raise BadInput(
                f"not valid JSON: {e.msg} (column {e.colno})", file=str(path), line=e.lineno
            ) from None
        except ValueError as e:  # a key given twice
            raise BadInput(str(e), file=str(path)) from None
    _check_finite(doc, "$", str(path))
    return doc


class DuplicateKey(ValueError):
    """A JSON object names a key twice (json.loads would keep the last value silently)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} is given twice in one object")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` for json.loads: an object whose keys are all different."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _check_finite(value: Any, where: str, file: str) -> None:
    """NaN and infinities (JSON's NaN/Infinity extensions, TOML's nan/inf) mean nothing in a
    config and cannot be hashed as canonical JSON: bad input naming the JSON path."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(
            f"at {where}: {value} is not a finite number (leave a bound out instead)", file=file
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}", file)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]", file)
