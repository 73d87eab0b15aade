"""The package's shape, read from its source with ``ast``: the import graph and where shared names live.

Which imports count: every ``import`` and ``from ... import`` between modules of the package, at
module level or inside a function. Imports under ``if TYPE_CHECKING:`` run only for type checkers
and are left out. Module-level imports must form an acyclic graph. A function-level import is
allowed only to put off an optional or heavy dependency (torch, a command's module), never to break
a cycle, so the graph with function-level imports must be acyclic too. Imports through
``importlib`` (the package root's lazy names, the command modules of ``cli``) are not seen here;
they only ever go down the tree.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "perceptual_sim"
ROOT = "perceptual_sim"
LAB = "perceptual_sim.lab"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    names_from_package: bool  # ``from PACKAGE import NAME`` where NAME is not a submodule


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@functools.cache
def _edges() -> list[Edge]:
    modules = _modules()
    edges = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool, name: str = name, package: str = package) -> None:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for child in node.orelse:
                    visit(child, in_function)
                return
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == ROOT:
                        edges.append(Edge(name, alias.name, node.lineno, in_function, alias.name == ROOT))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                if base.split(".")[0] == ROOT:
                    for alias in node.names:
                        sub = f"{base}.{alias.name}"
                        if sub in modules:
                            edges.append(Edge(name, sub, node.lineno, in_function, False))
                        else:
                            edges.append(Edge(name, base, node.lineno, in_function, base in _packages()))
            inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            for child in ast.iter_child_nodes(node):
                visit(child, inside)

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return edges


def _packages() -> set[str]:
    return {name for name, path in _modules().items() if path.name == "__init__.py"}


def _cycle(edges: list[Edge]) -> list[str] | None:
    """A cycle of the graph as a list of modules (first == last), or None."""
    graph: dict[str, list[str]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e.target)
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_the_graph_sees_the_package():
    assert {"perceptual_sim.metric", "perceptual_sim.models.card", "perceptual_sim.cli.options",
            "perceptual_sim.lab.cli.train", "perceptual_sim.lab.evaluate.bapps"} <= set(_modules())
    assert any(e.source == "perceptual_sim.metric" and e.target == "perceptual_sim.models.registry" for e in _edges())


def test_module_level_imports_are_acyclic():
    assert _cycle([e for e in _edges() if not e.in_function]) is None


def test_no_function_level_import_hides_a_cycle():
    cycle = _cycle(_edges())
    assert cycle is None, f"import cycle through a function-level import: {' -> '.join(cycle)}"


def test_no_module_imports_names_from_a_package_init_above_it():
    """``from . import __version__`` worked only because of import order; entry points (``__main__``) may."""
    upward = [e for e in _edges() if e.names_from_package and not e.source.endswith("__main__")
              and (e.source + ".").startswith(e.target + ".")]
    assert upward == []
    assert not [e for e in _edges() if e.target == ROOT and e.source != ROOT]


def test_hub_imports_no_model_module():
    reached, todo = set(), ["perceptual_sim.models.hub"]
    while todo:
        source = todo.pop()
        for e in _edges():
            if e.source == source and e.target not in reached:
                reached.add(e.target)
                todo.append(e.target)
    assert "perceptual_sim.models.card" in reached
    assert not reached & {"perceptual_sim.metric", "perceptual_sim.api", "perceptual_sim.backbones",
                          "perceptual_sim.convert", "perceptual_sim.lab.train"}, sorted(reached)


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_module_imports_no_hub_code():
    """metric.py builds from a card: resolving a model string, the Hub's downloads and their eviction
    on a failed check live in models/ (``models.registry.load``, which ``from_pretrained`` calls)."""
    path = PACKAGE / "metric.py"
    targets = {e.target for e in _edges() if e.source == "perceptual_sim.metric"}
    assert "perceptual_sim.models.registry" in targets
    assert not {t for t in targets if _inside(t, "perceptual_sim.models")} - {
        "perceptual_sim.models.archs", "perceptual_sim.models.card", "perceptual_sim.models.registry"}, targets
    names = {n.id for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(n, ast.Name)}
    assert not names & {"hub", "evict", "HUB_PREFIX", "resolve"}, names & {"hub", "evict", "HUB_PREFIX", "resolve"}


def test_the_models_layer_imports_nothing_above_it():
    """models/ (models as data) stands under the nn.Module: it uses the file helpers and the version only."""
    above = {e.target for e in _edges() if _inside(e.source, "perceptual_sim.models")
             and not _inside(e.target, "perceptual_sim.models")}
    assert above <= {"perceptual_sim.files", "perceptual_sim._version"}, above


def test_nothing_outside_the_lab_imports_it():
    """The lab (training, evaluation, their commands) uses the library; the library never imports the lab.
    The command line names the lab's two commands by module and imports them through importlib when they run."""
    assert any(_inside(e.source, LAB) for e in _edges()), "the graph sees no lab"
    into = [e for e in _edges() if _inside(e.target, LAB) and not _inside(e.source, LAB)]
    assert into == [], into


def test_shared_names_are_defined_once():
    """MODES, the image suffixes, decode_square and the version each have one home."""
    homes: dict[str, list[str]] = {}
    for name, path in _modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            defined = [t.id for t in targets if isinstance(t, ast.Name)]
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.append(node.name)
            for d in defined:
                homes.setdefault(d, []).append(name)
    assert homes["MODES"] == ["perceptual_sim.models.archs"]
    assert homes["IMAGE_SUFFIXES"] == ["perceptual_sim.images"]
    assert homes["decode_square"] == ["perceptual_sim.images"]
    assert homes["__version__"] == ["perceptual_sim._version"]
