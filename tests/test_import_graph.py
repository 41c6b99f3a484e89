"""The import graph of our code has no cycle, and no stage module imports another.

The graph is read statically (``ast``, nothing is imported) from every module under
``character/``, ``launchers/`` and ``openrlhf_ext/``: a node per module (a package is its
``__init__``), an edge per import of one of those packages, wherever it is written (at the top,
inside a function, under ``TYPE_CHECKING``). An import names the longest dotted prefix that is one
of our modules: ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``.

A **stage module** is a module that defines a class deriving from
``character.pipeline.stage.Stage``, directly or through another class of ours, as its bases are
written (a name or ``module.Name``, resolved through the module's imports). Stages talk through
the files they write; what two stages both need lives in a module that is not a stage module. So
no stage module may import another, directly or through any chain of our modules.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("character", "launchers", "openrlhf_ext")
STAGE_BASE = "character.pipeline.stage.Stage"


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = module_files()
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def ours(dotted: str) -> str | None:
    """The module an import of ``dotted`` names: its longest prefix that is one of ours."""
    parts = dotted.split(".")
    while parts:
        if ".".join(parts) in MODULES:
            return ".".join(parts)
        parts.pop()
    return None


def absolute(module: str, node: ast.ImportFrom) -> str:
    """The package ``from <node.module> import ...`` reads from, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def bindings(module: str) -> Iterator[tuple[str | None, str]]:
    """Every (local name or None, fully qualified name) an import statement of ``module`` makes."""
    for node in ast.walk(TREES[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.asname or alias.name.split(".")[0], alias.name
                if alias.asname is None:
                    yield None, alias.name  # ``import a.b`` binds ``a`` and imports ``a.b``
        elif isinstance(node, ast.ImportFrom):
            source = absolute(module, node)
            for alias in node.names:
                yield alias.asname or alias.name, f"{source}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for _, qualified in bindings(module):
            target = ours(qualified)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def stage_modules() -> dict[str, list[str]]:
    """Stage modules and the stage classes each defines."""
    classes: dict[str, list[ast.expr]] = {}  # qualified class name -> its bases as written
    names: dict[str, dict[str, str]] = {}  # module -> local name -> qualified name
    for module in MODULES:
        local = {name: qualified for name, qualified in bindings(module) if name is not None}
        for node in TREES[module].body:
            if isinstance(node, ast.ClassDef):
                local[node.name] = f"{module}.{node.name}"
                classes[f"{module}.{node.name}"] = node.bases
        names[module] = local

    def qualified(module: str, base: ast.expr) -> str | None:
        if isinstance(base, ast.Name):
            return names[module].get(base.id)
        if isinstance(base, ast.Attribute):
            owner = qualified(module, base.value)
            return f"{owner}.{base.attr}" if owner else None
        return None

    stages = {STAGE_BASE}
    changed = True
    while changed:  # through subclasses of subclasses, in any order
        changed = False
        for name, bases in classes.items():
            module = name.rsplit(".", 1)[0]
            if name not in stages and any(qualified(module, base) in stages for base in bases):
                stages.add(name)
                changed = True
    found: dict[str, list[str]] = {}
    for name in sorted(stages - {STAGE_BASE}):
        module, cls = name.rsplit(".", 1)
        found.setdefault(module, []).append(cls)
    return found


GRAPH = import_graph()
STAGE_MODULES = stage_modules()


def test_the_import_graph_has_no_cycle() -> None:
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as error:
        cycle = error.args[1]  # [a, b, ..., a]: each imported by the one after it
        pytest.fail(f"import cycle (each module imported by the next): {' <- '.join(cycle)}")


def test_no_stage_module_imports_another() -> None:
    def path_to_a_stage(start: str) -> list[str] | None:
        """The shortest import chain from ``start`` to another stage module, if any."""
        seen, frontier = {start}, [[start]]
        while frontier:
            chains = []
            for chain in frontier:
                for target in sorted(GRAPH[chain[-1]] - seen):
                    if target in STAGE_MODULES:
                        return [*chain, target]
                    seen.add(target)
                    chains.append([*chain, target])
            frontier = chains
        return None

    sideways = [chain for module in STAGE_MODULES if (chain := path_to_a_stage(module))]
    assert not sideways, "stage modules importing other stage modules:\n" + "\n".join(
        " -> ".join(chain) for chain in sideways
    )


def test_the_graph_sees_every_stage_and_function_level_imports() -> None:
    """The reader itself: the stage modules it finds are those whose classes, once imported with
    the built-in stages, derive from ``Stage``; and it sees imports written inside functions."""
    import importlib

    from character.pipeline import builtin  # noqa: F401  (imports every built-in stage)
    from character.pipeline.stage import Stage

    for module in STAGE_MODULES:
        importlib.import_module(module)

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    defined = {cls.__module__ for cls in subclasses(Stage) if cls.__module__.split(".")[0] in PACKAGES}
    assert defined == set(STAGE_MODULES)
    assert "character.preferences.stage" in STAGE_MODULES
    # character.engines.factory imports the replicated engine inside build_engine
    assert "character.engines.replicated" in GRAPH["character.engines.factory"]


def spelled_stage_folders(tree: ast.AST, stage_names: set[str]) -> list[tuple[int, str]]:
    """``<path> / "<stage>"`` or ``<path> / "<stage>/..."``: a path into a stage's folder built
    from the stage's name written out, instead of ``ctx.input_dirs`` or ``stage_folder``."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Div)
            and isinstance(node.right, ast.Constant)
            and isinstance(node.right.value, str)
            and node.right.value.split("/")[0] in stage_names
        ):
            found.append((node.lineno, node.right.value))
    return found


def test_no_module_spells_a_stage_folder() -> None:
    """Stage outputs are named: a stage reads its inputs through ``ctx.input_dirs`` and the
    producing stage's accessors, a tool reading finished runs through ``run_dirs.stage_folder``;
    nowhere is ``run_dir / "eval" / "preferences"`` written by hand. (``data/prompts`` is the
    shipped prompt folder, not the stage's, and is the one name that may appear.)"""
    from character.config.schema import PIPELINE_ORDER

    stage_names = set(PIPELINE_ORDER)
    spelled = {
        name: hits
        for name, tree in TREES.items()
        if name != "character.data.sources" and (hits := spelled_stage_folders(tree, stage_names))
    }
    assert not spelled, f"stage folders spelled by hand (module: [(line, path)]): {spelled}"


def test_the_folder_check_sees_a_spelled_folder() -> None:
    tree = ast.parse('summary = run_dir / "eval/preferences" / "summary.json"\nx = run_dir / "logs"')
    assert spelled_stage_folders(tree, {"eval", "report"}) == [(1, "eval/preferences")]
