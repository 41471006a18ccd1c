"""The facts a model card takes from people rather than from the store: owner, contact,
intended use, what it is not for, limitations, ethical considerations, references.

A small YAML, JSON or TOML file (`report --card --card-info FILE`), checked against
`schemas/card_info.schema.json` (format `mlstage-card-info/1`; the `format` key may be
left out). An unknown key or a value of the wrong type is bad input (exit 2) naming the
file and the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.documents import validate
from ..core.jsonio import read_config
from ..errors import BadInput

FORMAT = "mlstage-card-info/1"
# In the order the card shows them.
KEYS = ("title", "owner", "contact", "intended_use", "out_of_scope", "limitations",
        "ethical_considerations", "references")  # fmt: skip
LINES = ("title", "owner", "contact")  # one line each; the others may be lists


def read_card_info(path: str | Path) -> dict[str, Any]:
    """The checked facts of a card-info file, in KEYS order, without `format`."""
    path = Path(path)
    doc = _read_yaml(path) if path.suffix.lower() in (".yaml", ".yml") else read_config(path)
    if isinstance(doc, dict) and "format" not in doc:
        doc = {"format": FORMAT, **doc}
    if not isinstance(doc, dict):
        raise BadInput(f"a card-info file holds keys ({', '.join(KEYS)}); found"
                       f" {type(doc).__name__ if doc is not None else 'nothing'}", file=str(path))  # fmt: skip
    _explain(doc, str(path))
    validate(doc, FORMAT, str(path))
    return {k: doc[k] for k in KEYS if k in doc}


def _explain(doc: dict[str, Any], where: str) -> None:
    """The two likeliest mistakes said plainly (the schema's own words for them are
    vaguer): a key the card does not know (a typo), and a value that is not text."""
    for key, value in doc.items():
        if key != "format" and key not in KEYS:
            raise BadInput(f"at $.{key}: unknown key; a card-info file has {', '.join(KEYS)}",
                           file=where)  # fmt: skip
        texts = value if isinstance(value, list) and value and key not in LINES else [value]
        if key != "format" and not all(isinstance(v, str) and v.strip() for v in texts):
            wanted = "a text" if key in LINES else "a text or a list of texts (not empty)"
            raise BadInput(f"at $.{key}: expected {wanted}, found {json.dumps(value)}", file=where)


def _read_yaml(path: Path) -> Any:
    import yaml

    from ..core.jsonio import read_text_file

    text = read_text_file(path)
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(e, "problem", None) or str(e)
        raise BadInput(f"not valid YAML: {reason}", file=str(path), line=line) from None


def _loader():
    """PyYAML's safe loader, stricter: a key given twice is an error (PyYAML keeps the
    last silently), and dates stay text (the card shows what was written)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return Loader
