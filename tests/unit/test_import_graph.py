"""jobmaster's modules import each other without cycles — counting every import, type-only
(``if TYPE_CHECKING:``) and function-local ones too, so the layers stay layers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "jobmaster"


def _modules() -> dict[str, Path]:
    result = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        result[name.removesuffix(".__init__")] = path
    return result


def import_graph() -> dict[str, set[str]]:
    """Module → the jobmaster modules it imports (package ``__init__`` files re-export
    and are left out, as importing a submodule runs them anyway)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        if path.name == "__init__.py":
            continue
        package = name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each as the path that closes it)."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_no_import_cycles_in_jobmaster() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_walk_finds_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_the_graph_sees_type_only_and_local_imports() -> None:
    graph = import_graph()
    assert "jobmaster.scheduling" in graph["jobmaster.app"]  # a function-local import
    assert "jobmaster.app" in graph["jobmaster.beat"]        # a TYPE_CHECKING import


_MASTER_MODULES = ("sqlalchemy", "jobmaster.outbox", "jobmaster.master.repository",
                   "jobmaster.master.rows", "jobmaster.master.schema",
                   "jobmaster.master.workflows")
"""What loads SQLAlchemy: imported by the modules below only when the master is used."""
_LAZY_ABOUT_THE_MASTER = ("jobmaster.app", "jobmaster.host", "jobmaster.jobs",
                          "jobmaster.dead_letters", "jobmaster.producer",
                          "jobmaster.worker.writer", "jobmaster.master.timestamps")


def import_time_imports(path: Path) -> set[str]:
    """The modules a module imports when it is imported: its top-level imports, those of
    its classes and of its ``if``/``try`` blocks, not those under ``if TYPE_CHECKING:``
    nor inside functions (relative imports are left out)."""
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody,
                              *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def test_modules_import_the_master_only_when_it_is_used() -> None:
    modules = _modules()
    for name in _LAZY_ABOUT_THE_MASTER:
        eager = {m for m in import_time_imports(modules[name])
                 if any(m == t or m.startswith(t + ".") for t in _MASTER_MODULES)}
        assert not eager, f"{name} imports {sorted(eager)} at import time"


def test_import_time_imports_leave_out_type_checking_and_functions() -> None:
    found = import_time_imports(_modules()["jobmaster.app"])
    assert "jobmaster.producer" in found
    assert "jobmaster.master.repository" not in found   # TYPE_CHECKING and in App.master
    assert "jobmaster.scheduling" not in found           # TYPE_CHECKING and function-local


def test_importing_jobmaster_and_its_worker_command_does_not_load_sqlalchemy() -> None:
    # a worker or a producer imports SQLAlchemy when it first uses the master, not before
    # (it is 60 % of the import time, and forked children that never touch the master
    # need not hold it)
    import subprocess
    import sys

    probe = ("import sys, jobmaster, jobmaster.cli, jobmaster.worker.supervisor, "
             "jobmaster.worker.pool; print('sqlalchemy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
