"""The house's layout, read from the source with ``ast`` (nothing is imported).

Packages import only downward (DESIGN.md, "Layers and names"):

    errors, _state, _common, _hooks, _deprecation, _table, _version   (root helpers)
    model, inputs, adapters, explanation, registry, zoo
    attribution
    features, probe, evaluate, simplify, inspect, text, scale
    plot
    reporting (pellucid.report)
    cli, cli_commands, demo, loading, __main__, __init__

The one exception is a result's one-line ``.plot()``, which imports ``pellucid.plot`` inside the
method. No package reaches into another's private modules or names (the root helpers are there
to be shared), only ``plot/`` and ``reporting/`` import matplotlib, and no module imports itself
back through others (no cycle, counting imports at any depth).
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "pellucid"

TIERS = [
    {"errors", "_state", "_common", "_hooks", "_deprecation", "_table", "_version"},
    {"model", "inputs", "adapters", "explanation", "registry", "zoo"},
    {"attribution"},
    {"features", "probe", "evaluate", "simplify", "inspect", "text", "scale"},
    {"plot"},
    {"reporting"},
    {"cli", "cli_commands", "demo", "loading", "__main__", "__init__"},
]
TIER = {name: i for i, names in enumerate(TIERS) for name in names}
MATPLOTLIB_ALLOWED = {"plot", "reporting"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _package(module: str) -> str:
    """The top-level part a module belongs to: ``pellucid.attribution.relevance.lrp`` ->
    ``attribution``; ``pellucid`` itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(importer: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports() -> list[tuple[str, str, str, bool, int]]:
    """``(importer, imported module, imported name or "", inside a function, line)`` for every
    import in the package (``from pkg import sub`` counts as importing the submodule)."""
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                  for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            lazy = id(node) in nested
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append((module, alias.name, "", lazy, node.lineno))
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(module, is_package, node)
                if target is None:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in MODULES:
                        found.append((module, sub, "", lazy, node.lineno))
                    else:
                        found.append((module, target, alias.name, lazy, node.lineno))
    return found


IMPORTS = _imports()
INTERNAL = [i for i in IMPORTS if i[1] == "pellucid" or i[1].startswith("pellucid.")]


def test_every_part_of_the_package_has_a_tier():
    unknown = sorted({_package(m) for m in MODULES} - set(TIER))
    assert not unknown, f"give these parts of pellucid a tier in TIERS (and DESIGN.md): {unknown}"


def test_packages_import_only_downward():
    upward = []
    for importer, module, name, lazy, line in INTERNAL:
        a, b = _package(importer), _package(module)
        if a == b or TIER[b] <= TIER[a]:
            continue
        if lazy and b == "plot":  # a result's one-line .plot()
            continue
        upward.append(f"{MODULES[importer].relative_to(SRC.parent)}:{line} imports {module}"
                      f"{'.' + name if name else ''} (tier {TIER[a]} -> {TIER[b]})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_private_import_across_packages():
    """``_name`` modules and names are their package's own; the root helpers are shared."""
    private = []
    for importer, module, name, _, line in INTERNAL:
        a, b = _package(importer), _package(module)
        if a == b:
            continue
        inner = module.split(".")[2:]  # below the top-level part
        if any(p.startswith("_") for p in inner) or (name.startswith("_") and name != "__version__"):
            private.append(f"{MODULES[importer].relative_to(SRC.parent)}:{line} imports "
                           f"{module}{'.' + name if name else ''}")
    assert not private, "private imports across packages:\n" + "\n".join(private)


def test_only_plot_and_reporting_import_matplotlib():
    offenders = [f"{MODULES[importer].relative_to(SRC.parent)}:{line}"
                 for importer, module, _, _, line in IMPORTS
                 if module.split(".")[0] == "matplotlib" and _package(importer) not in MATPLOTLIB_ALLOWED]
    assert not offenders, "matplotlib imported outside plot/ and reporting/:\n" + "\n".join(offenders)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    """Modules, not packages: a package's ``__init__`` re-exporting its modules is no cycle, but
    two modules that need each other are one idea split in two, or a helper in the wrong place."""
    edges: dict[str, set[str]] = {}
    for importer, module, _, lazy, _ in INTERNAL:
        if lazy and _package(module) == "plot" and _package(importer) != "plot":
            continue
        if importer.endswith(".__init__") or MODULES[importer].name == "__init__.py":
            continue  # a package face re-exports; its children importing the face is fine
        target = module if module in MODULES else module.rsplit(".", 1)[0]
        if target in MODULES and MODULES[target].name != "__init__.py" and target != importer:
            edges.setdefault(importer, set()).add(target)
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_reader_sees_real_imports():
    """The checks above read what the code imports (a reader that saw nothing would pass them
    all): a module-level import, a relative submodule import and a lazy one inside a method."""
    seen = {(i, m, n, lazy) for i, m, n, lazy, _ in IMPORTS}
    assert ("pellucid.attribution.integrated", "pellucid.registry", "register", False) in seen
    assert ("pellucid.attribution.relevance", "pellucid.attribution.relevance.rules", "", False) in seen
    assert any(i == "pellucid.explanation" and _package(m) == "plot" and lazy
               for i, m, _, lazy in seen)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
