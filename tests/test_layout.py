"""The package's shape: layers that import one way, no import cycles, imports at the top of modules.

``lint-imports`` (run by ``.ci/run``) checks the layers contract in pyproject.toml; these tests check
the same graph from inside the suite, plus what the contract cannot say (cycles inside a layer,
imports hidden in functions), and that the contract itself fails on an upward import.
"""
import ast
import os
import sys
from pathlib import Path

import grimp
import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "genzoo"
# optional heavy dependencies imported where they are used (the only imports allowed inside functions)
LAZY_OK = ("matplotlib", "safetensors")


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("genzoo")


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in adj[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(adj):
        if m not in index:
            visit(m)
    return out


def test_no_import_cycles(graph):
    assert _cycles(graph) == []


LAYERS = ["cli", "serve", "evaluation", "features", "metrics", "training", "models",
          ("sampling", "nn", "losses", "viz"), "data", "io", ("errors", "_version")]


def _layer_of(module: str) -> int | None:
    top = module.split(".")[1] if module.count(".") else None
    for i, layer in enumerate(LAYERS):
        if top == layer or (isinstance(layer, tuple) and top in layer):
            return i
    return None


def test_every_import_points_down_the_layers(graph):
    upward = []
    for m in graph.modules:
        lm = _layer_of(m)
        for target in graph.find_modules_directly_imported_by(m):
            lt = _layer_of(target)
            if lm is not None and lt is not None and lt < lm:
                upward.append(f"{m} -> {target}")
    assert upward == []


def test_every_package_module_is_in_a_layer(graph):
    tops = {m.split(".")[1] for m in graph.modules if m.count(".")}
    assert tops - {"__main__"} <= {x for layer in LAYERS for x in (layer if isinstance(layer, tuple) else (layer,))}


def test_no_imports_inside_functions_except_optional_heavy_dependencies():
    hidden = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        if isinstance(node, ast.ImportFrom):
                            names = [node.module or ""]
                        else:
                            names = [a.name for a in node.names]
                        if not all(n.split(".")[0] in LAZY_OK for n in names):
                            hidden.append(f"{path.relative_to(SRC)}:{node.lineno} {names}")
    assert hidden == []


def test_the_contract_fails_on_an_upward_import(tmp_path):
    """A copy of the package with one upward import (data -> models) breaks the contract in pyproject.toml."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "src" / "genzoo" / "data" / "base.py"
    base.write_text(base.read_text() + "\nimport genzoo.models.registry  # an upward import\n")
    lint = shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    broken = subprocess.run([lint], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout and "genzoo.data.base -> genzoo.models" in broken.stdout
