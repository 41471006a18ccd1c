"""The package's shape, checked: imports point down the layers, no stage module imports
another, the report never imports a stage, few loose modules, no module past ~450 lines.

Layers, bottom up (CONTRIBUTING.md): core < store < data < validation < features < model
< serving < stages < report < cli; `errors` and `version` sit under everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "mlstage"
LAYERS = ["core", "store", "data", "validation", "features", "model", "serving", "stages",
          "report", "cli"]  # fmt: skip
ROOT_MODULES = {"__init__", "__main__", "errors", "version"}
MAX_LINES = 460


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module inside mlstage) for every import, at any depth."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = ".".join([*base, *([node.module] if node.module else [])])
            if node.module is None:  # from . import x, y: the modules x, y
                found += [(node.lineno, ".".join([*base, a.name])) for a in node.names]
            else:
                found.append((node.lineno, target))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlstage."):
            found.append((node.lineno, node.module.removeprefix("mlstage.")))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.removeprefix("mlstage.")) for a in node.names
                      if a.name.startswith("mlstage.")]  # fmt: skip
    return found


def _layer(module: str) -> int | None:
    top = module.split(".")[0]
    return LAYERS.index(top) if top in LAYERS else None


MODULES = _modules()


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in MODULES.items():
        mine = _layer(module)
        if mine is None:
            continue
        for line, target in _imports(module, path):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                wrong.append(f"{path.relative_to(PKG)}:{line}: {module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_stage_imports_another_stage_and_report_imports_none():
    shared = {"stages.base"}
    wrong = []
    for module, path in MODULES.items():
        for line, target in _imports(module, path):
            if not target.startswith("stages.") or target in shared:
                continue
            if module.startswith("stages.") and target != module or module.startswith("report"):
                wrong.append(f"{path.relative_to(PKG)}:{line}: {module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_few_loose_modules_and_none_too_long():
    loose = {p.stem for p in PKG.glob("*.py")}
    assert loose <= ROOT_MODULES, loose - ROOT_MODULES
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert not long, long


@pytest.mark.parametrize("folder", LAYERS)
def test_every_folder_is_a_package_with_a_docstring(folder):
    init = PKG / folder / "__init__.py"
    assert init.exists()
    assert ast.get_docstring(ast.parse(init.read_text())), f"{folder}/__init__.py says nothing"


def test_the_rule_catches_a_violation(tmp_path):
    """The checker itself works: a stage importing another stage is found."""
    bad = tmp_path / "x.py"
    bad.write_text("from .validate import validate\nfrom ..cli import app\n")
    found = [t for _, t in _imports("stages.x", bad)]
    assert found == ["stages.validate", "cli"]
