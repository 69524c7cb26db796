"""The demo's modules: stage functions over a typed context, and an import graph without a cycle."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path

import axis_cli
import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(axis_cli.__file__).parent
DEMO_MODULES = sorted(p.stem for p in PACKAGE.glob("demo*.py"))


def imported_demo_modules(module: str) -> set[str]:
    """The axis_cli.demo* modules that ``module`` imports anywhere (top level, in functions, under TYPE_CHECKING)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:  # from . import demo_x / from .demo_x import y
            names = [f"axis_cli.{node.module}"] if node.module else [f"axis_cli.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "axis_cli":  # from axis_cli import demo_x
            names = [f"axis_cli.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if len(parts) >= 2 and parts[0] == "axis_cli" and parts[1] in DEMO_MODULES and parts[1] != module:
                found.add(parts[1])
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_every_demo_module_imports_and_the_graph_has_no_cycle() -> None:
    assert {"demo", "demo_context", "demo_run", "demo_loop"} <= set(DEMO_MODULES)
    for module in DEMO_MODULES:
        importlib.import_module(f"axis_cli.{module}")
    graph = {m: imported_demo_modules(m) for m in DEMO_MODULES}
    assert "demo_context" in graph["demo_run"]  # the checker sees the imports it must see
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle among the demo modules: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_context_is_a_dataclass_with_typed_fields() -> None:
    from axis_adapters.objectstore import MinioObjectStore
    from axis_cli import demo_context
    from axis_cli.demo_db import LoopDb
    from axis_cli.demo_http import CurationClient
    from axis_cli.demo_procs import ServiceSet
    from axis_simulators.robot import RobotConfig
    from axis_stack import StackInfo
    from axis_synth import PlannedImage

    names = {
        "MinioObjectStore": MinioObjectStore,
        "LoopDb": LoopDb,
        "CurationClient": CurationClient,
        "ServiceSet": ServiceSet,
        "RobotConfig": RobotConfig,
        "StackInfo": StackInfo,
        "PlannedImage": PlannedImage,
    }
    for cls in (demo_context.DemoContext, demo_context.FacilityPlan):
        assert dataclasses.is_dataclass(cls)
        hints = typing.get_type_hints(cls, vars(demo_context), names)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            assert hint is not typing.Any and hint is not dict, f"{cls.__name__}.{f.name} is untyped: {hint}"
            assert f.name != "state"
    context_hints = typing.get_type_hints(demo_context.DemoContext, vars(demo_context), names)
    assert context_hints["facility"] == demo_context.FacilityPlan | None
    assert context_hints["new_versions"] == dict[str, str]
