"""The package's shape: imports point one way, no cycles, small files, a light ``import crossrank``.

Dependencies point ``ops <- layers <- models <- (data, train, explain, serving) <- pipeline <- cli``
(``errors``, ``safe_io`` and ``distributed`` are leaves anyone may use); serving's scoring path
(all of it but the exporter) uses no model code at all, and ``import crossrank`` no torch. The
import graph is read from the source with ``ast`` (function-level imports included), so a lazy
import cannot hide an edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "crossrank"
MAX_LINES = 400

# room -> rooms it must never import
FORBIDDEN = {
    "ops": ("layers", "models", "data", "train", "explain", "cli", "pipeline", "serving",
            "distributed"),
    "layers": ("models", "data", "train", "explain", "cli", "pipeline", "serving"),
    "models": ("data", "train", "explain", "cli", "pipeline", "serving"),
    "data": ("train", "explain", "cli", "pipeline", "serving", "models", "layers"),
    "distributed": ("data", "train", "explain", "cli", "pipeline", "serving", "models",
                    "layers", "ops"),
    "errors": ("data", "train", "explain", "cli", "pipeline", "serving", "models", "layers",
               "ops", "distributed"),
    "safe_io": ("data", "train", "explain", "cli", "pipeline", "serving", "models", "layers",
                "ops", "distributed"),
    "train": ("cli", "pipeline"),
    "explain": ("cli", "pipeline", "train"),
    "serving": ("cli", "pipeline", "train", "explain"),
}
# the scoring path (everything in serving but the exporter) runs without torch: no model code
SCORING_PATH_FORBIDS = ("models", "layers", "ops", "train", "distributed")
# data preparation (fit + encode the training files) is used by the pipeline, not by the rooms
PREPARATION = "crossrank.data.prepare"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every crossrank module ``name`` imports (at any depth of the file)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import sub" imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t.split(".")[0] == "crossrank" and t in known)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_room_imports_upward():
    graph = _graph()
    wrong = []
    for module, targets in graph.items():
        for target in targets:
            if _room(target) in FORBIDDEN.get(_room(module), ()):
                wrong.append(f"{module} imports {target}")
            if target == PREPARATION and _room(module) in ("ops", "layers", "models", "data"):
                wrong.append(f"{module} imports the data preparation {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_scoring_path_imports_no_model_code():
    graph = _graph()
    wrong = [f"{module} imports {target}" for module, targets in graph.items()
             if module.startswith("crossrank.serving") and module != "crossrank.serving.export"
             for target in targets if _room(target) in SCORING_PATH_FORBIDS]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    """The check above can fail: two modules importing each other form a cycle it reports."""
    a = tmp_path / "crossrank" / "a.py"
    a.parent.mkdir()
    (a.parent / "__init__.py").write_text("")
    a.write_text("def f():\n    from crossrank import b\n")
    (a.parent / "b.py").write_text("from crossrank.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", a.parent)
    with pytest.raises(AssertionError, match="crossrank.a -> crossrank.b -> crossrank.a"):
        test_no_import_cycles()


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_files_stay_small(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(SRC)} has {lines} lines (max {MAX_LINES})"


def test_import_crossrank_is_light():
    code = ("import sys, crossrank; heavy = [m for m in ('pyarrow', 'matplotlib', 'triton', "
            "'sklearn', 'torch', 'onnx', 'onnxruntime', 'optuna', 'starlette') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import crossrank pulled in {out.stdout.strip()}"
