"""The run directory's layout is written once: no module but :mod:`scanner.store` (and the checkpoint
module, for a model's own files) spells a dataset's directory, sidecar record, named part or marker
folder. Checked on the source (string constants and ``path / "name"`` joins), so a new stage cannot
quietly spell another stage's paths again."""

from __future__ import annotations

import ast
from pathlib import Path

import scanner
from scanner import store
from scanner.models import checkpoint

PACKAGE = Path(scanner.__file__).parent
OWNERS = {PACKAGE / "store.py", PACKAGE / "models" / "checkpoint.py"}


def _layout_names() -> tuple[set[str], set[str]]:
    """(file and folder names that only the owners spell, dataset directory names)."""
    files = {store.PUBLISHED, store.UNITS_DIR, store.STAGING_DIR, store.METRICS_FILE, store.MANIFEST_FILE}
    files |= {checkpoint.WEIGHTS_FILE, checkpoint.RECORD_FILE}
    for spec in store.DATASETS.values():
        files |= {n for n in (spec.record, spec.markers) if n}
        files |= {name for _, name in spec.parts if "." in name}  # named files (folders are checked as joins)
    return files, set(store.DATASETS)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def test_no_module_spells_the_run_layout():
    files, datasets = _layout_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in OWNERS:
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if node.value in files:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}")
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                right = node.right
                if isinstance(right, ast.Constant) and right.value in datasets:
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: / {right.value!r}")
    assert not found, "layout spelled outside scanner.store:\n" + "\n".join(found)


def test_the_check_sees_a_spelled_path(tmp_path):
    # the walker itself: a join onto a dataset directory and a record name are both caught
    files, datasets = _layout_names()
    tree = ast.parse('def f(out):\n    return out / "predictions", "_scan.json"\n')
    joins = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and n.right.value in datasets]
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in files]
    assert len(joins) == 1 and len(names) == 1


def test_partition_keys_come_from_the_schemas():
    from scanner import schemas

    assert store.DATASETS["instances"].keys == schemas.INSTANCE_PARTITIONS
    assert store.DATASETS["datasets"].keys == schemas.DATASET_PARTITIONS
    assert store.DATASETS["attributions"].keys == schemas.ATTRIBUTION_PARTITIONS
