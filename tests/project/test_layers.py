"""One layer per concern, and no import circle among ganpipe's modules (module-level or function-level
imports: a circle kept alive by imports inside functions is still a circle)."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT
from tests.support.imports import closure, imported_names, module_file, module_name


def import_graph() -> dict[str, set[str]]:
    """module -> the ganpipe modules it imports (package __init__ edges left out: importing
    ganpipe.models.x runs ganpipe/models/__init__.py, which is not a dependency *of* x's code)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(REPO_ROOT.joinpath("ganpipe").rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = set()
        for imported in imported_names(tree, name, path.name == "__init__.py"):
            found = module_file(imported)
            if found is not None:
                target = module_name(found)
                if target != name and not name.startswith(target + "."):
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycles_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_ganpipe():
    assert not cycles(import_graph()), "import circles (function-level imports count too)"


def _reaches(roots: set[str]) -> set[str]:
    return {p.relative_to(REPO_ROOT).as_posix() for p in closure(roots)}


def test_training_does_not_reach_the_registry_or_the_packaging():
    """Training writes a generator file and may fetch a registered one (ganpipe/mlflow_store.py); it
    never registers, promotes or packages a model."""
    reached = _reaches({"ganpipe.training.trainer", "ganpipe.training.launch", "flows.train"})
    assert not reached & {"ganpipe/model_registry.py", "ganpipe/promotion.py"}, sorted(reached)
    assert not [p for p in reached if p.startswith("ganpipe/serving/") and p != "ganpipe/serving/__init__.py"], \
        sorted(reached)


def test_the_generator_file_knows_nothing_of_mlflow():
    reached = _reaches({"ganpipe.generator_io"})
    assert "ganpipe/mlflow_store.py" not in reached and "ganpipe/model_registry.py" not in reached
    assert "mlflow" not in (REPO_ROOT / "ganpipe" / "generator_io.py").read_text()


def test_ganpipe_never_imports_flows():
    graph = import_graph()
    assert not [m for m, targets in graph.items() if any(t.startswith("flows") for t in targets)]


def test_packaging_knows_no_store_registration_or_promotion():
    reached = _reaches({"ganpipe.serving.packaging"})
    assert not reached & {"ganpipe/model_registry.py", "ganpipe/promotion.py", "ganpipe/mlflow_store.py"}, sorted(reached)


# The consumer package, bottom-up: each module may import only the modules before it.
CONSUMER_LAYERS = ("contract", "rules", "backends", "cores", "pyfunc", "packaging", "model", "api",
                   # ganpipe serve (the HTTP service) over them
                   "streaming", "wire", "metrics", "admission", "registry_follower", "jobs", "http_app", "server")


def test_the_consumer_package_imports_downward_only():
    graph = import_graph()
    package = {m for m in graph if m.startswith("ganpipe.serving.")}
    assert package == {f"ganpipe.serving.{m}" for m in CONSUMER_LAYERS}, "declare each module's layer here"
    upward = []
    for i, name in enumerate(CONSUMER_LAYERS):
        below = {f"ganpipe.serving.{m}" for m in CONSUMER_LAYERS[:i]}
        for target in graph[f"ganpipe.serving.{name}"]:
            if target.startswith("ganpipe.serving") and target not in below:
                upward.append(f"{name} -> {target}")
    assert not upward, upward
    # the package itself resolves its names lazily: importing it imports none of its modules
    assert not {t for t in graph["ganpipe.serving"] if t.startswith("ganpipe.")}


def test_using_a_model_is_no_circle_of_modules():
    """The generator file, the package and the public API facade use each other one way only: the
    package never climbs back to ganpipe.synthesis (or the CLI), the generator file knows none of them."""
    graph = import_graph()
    consumer = {m for m in graph if m.startswith("ganpipe.serving")} | {"ganpipe.synthesis", "ganpipe.generator_io"}
    assert not [c for c in cycles({m: graph[m] & consumer for m in consumer})]
    assert graph["ganpipe.synthesis"] == {"ganpipe.serving.api"}
    assert not [m for m in consumer if graph[m] & {"ganpipe.synthesis", "ganpipe.cli"}]
    assert not [t for t in graph["ganpipe.generator_io"] if t.startswith("ganpipe.serving")]
    for gone in ("inference", "packaging", "serving"):  # the old modules of the circle are gone
        assert not (REPO_ROOT / "ganpipe" / f"{gone}.py").exists()
