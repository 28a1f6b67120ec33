"""The architecture's rules, checked on the source: no import cycle, core never imports Streamlit, only the run
store knows its file names, no module edits sys.path, modules and functions stay small (docs/architecture.md)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "dashboard")
MAX_MODULE_LINES = 330  # "at most about 300"
MAX_FUNCTION_LINES = 60


def sources() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `module` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in known and name != module}
    return found


def test_no_import_cycle():
    modules = sources()
    graph = {m: imports(m, p, set(modules)) for m, p in modules.items()}
    # a package importing its own submodules (core.store -> core.store.disk) is how packages work, not a cycle
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    visiting, done, cycles = set(), set(), []

    def visit(module, trail):
        if module in visiting:
            cycles.append(trail[trail.index(module):] + [module])
            return
        if module in done:
            return
        visiting.add(module)
        for dep in sorted(graph[module]):
            visit(dep, trail + [module])
        visiting.discard(module)
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)
    assert graph["core.callbacks"].isdisjoint({"core.trainer"}) and graph["core.speed"].isdisjoint({"core.trainer"})


def test_core_never_imports_streamlit_and_nothing_edits_sys_path():
    for module, path in sources().items():
        text = path.read_text()
        if module.startswith("core"):
            assert "import streamlit" not in text and "from streamlit" not in text, module
        assert "sys.path" not in text, module


def test_only_the_run_store_knows_its_file_names():
    files = ("config.json", "status.json", "metrics.jsonl", "model.keras", "evaluation.json", "test_predictions.npz")
    names = {f'"{name}"' for name in files} | {"core.store.names", "STATUS_FILE", "METRICS_FILE", "MODEL_FILE",
                                              "EPOCHS_DIR"}
    for module, path in sources().items():
        if module.startswith("core.store") or module == "core.records":
            continue
        text = path.read_text()
        assert not [n for n in names if n in text], module
        if module.startswith("dashboard"):  # the store's version() and signature() are the cache keys
            assert "st_mtime" not in text and ".stat()" not in text, module


@pytest.mark.parametrize("module", sorted(sources()))
def test_modules_and_functions_are_small(module):
    path = sources()[module]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module}: {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{module}.{node.name}: {length} lines"
            assert not [n for n in ast.walk(node) if isinstance(n, ast.ClassDef)], f"a class inside {node.name}"


EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u23E9-\u23FF]")


def test_the_dashboard_uses_material_icons_not_emoji():
    """Issue 20.10: emoji render as empty boxes without a colour-emoji font; Streamlit's :material/...: icons
    come with its own font."""
    for module, path in sources().items():
        if module.startswith("dashboard"):
            assert not EMOJI.findall(path.read_text()), module
