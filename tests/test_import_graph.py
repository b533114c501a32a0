"""The import graph of package ``mirage`` has no cycle, and hides none inside functions.

The layers (docs/architecture.md): registries and run folders at the bottom (``mirage.registry``,
``mirage.runs``, conditions, tasks, the rewards' and checkers' registries), engines and evaluation
above them, study and CLI on top. A module imports only from its own layer or below, so the graph
of ``import`` statements, those inside functions included, has no cycle.

An import inside a function of a mirage module is allowed only where it saves real start-up time
(the target pulls in torch, transformers, vllm, verl, pandas or matplotlib, which the importing
command may not need) and says so on its line: ``# why: ...``.

The graph is read with ``ast`` from the source files, nothing is imported. ``import a.b.c`` and
``from a.b import c`` (c a module) are edges to ``a.b.c``; ``from a.b import name`` an edge to
``a.b``; relative imports are resolved; an import also runs the ``__init__`` of every package on the
way (``a``, ``a.b``), so it is an edge to those too unless they already enclose the importer.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = "mirage"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    in_function: bool
    text: str  # the import statement's source lines, joined


def modules(root: Path = LIB / PACKAGE) -> dict[str, Path]:
    """{dotted module name: its file} for every .py file of the package."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module ``name`` names: itself, else the nearest enclosing module that exists."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(known: dict[str, Path]) -> list[Import]:
    """Every import of a package module by a package module (module level and inside functions)."""
    out = []
    for module, path in known.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source, str(path))
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    if child.level:
                        base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                        base_name = ".".join(base + ([child.module] if child.module else []))
                    else:
                        base_name = child.module or ""
                    # from pkg import submodule -> the submodule; from pkg import name -> pkg
                    names = [f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in known else base_name
                             for a in child.names]
                for name in names:
                    if name != PACKAGE and not name.startswith(PACKAGE + "."):
                        continue
                    target = _resolve(name, known)
                    if target and target != module:
                        out.append(Import(module, target, child.lineno, in_function,
                                          " ".join(s.strip() for s in lines[child.lineno - 1:child.end_lineno])))
                visit(child, inside)

        visit(tree, False)
    return out


def graph(known: dict[str, Path], found: list[Import]) -> dict[str, set[str]]:
    """module -> the modules importing it runs: each target and the packages enclosing it that do
    not already enclose the importer."""
    edges: dict[str, set[str]] = {m: set() for m in known}
    for imp in found:
        parts = imp.target.split(".")
        for i in range(1, len(parts) + 1):
            step = ".".join(parts[:i])
            encloses_importer = imp.importer == step or imp.importer.startswith(step + ".")
            if step in known and step != imp.importer and (i == len(parts) or not encloses_importer):
                edges[imp.importer].add(step)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative), each as one
    cycle through it (a path that returns to its start), shortest found by breadth-first search."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    out = []
    for component in components:
        members = set(component)
        start = component[0]
        paths = {start: [start]}
        queue = [start]
        while queue:  # breadth-first from start, inside the component, until an edge returns to it
            node = queue.pop(0)
            nxt = sorted(edges[node] & members)
            if start in nxt:
                out.append(paths[node] + [start])
                break
            for child in nxt:
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    queue.append(child)
    return out


def component(start: str, edges: dict[str, set[str]]) -> list[str]:
    """The modules that ``start`` reaches and that reach ``start`` back."""
    def reach(frm: str, nxt) -> set[str]:
        seen, todo = {frm}, [frm]
        while todo:
            for m in nxt(todo.pop()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen
    back = {m: {a for a in edges if m in edges[a]} for m in edges}
    return sorted(reach(start, lambda m: edges[m]) & reach(start, lambda m: back[m]))


def describe(cycle: list[str], found: list[Import], component: list[str] | None = None) -> str:
    hops = [f"  {len(component)} modules import each other: {', '.join(component)}; one cycle:"] if component else []
    for a, b in zip(cycle, cycle[1:]):
        where = next((i for i in found if i.importer == a and (i.target == b or i.target.startswith(b + "."))), None)
        hops.append(f"  {a} -> {b}" + (f"  (line {where.line}{', in a function' if where.in_function else ''}: "
                                         f"{where.text})" if where else ""))
    return "\n".join(hops)


def test_no_import_cycle_inside_mirage():
    known = modules()
    found = imports(known)
    edges = graph(known, found)
    loops = cycles(edges)
    assert not loops, (f"{len(loops)} group(s) of modules in an import cycle inside {PACKAGE} (move what both "
                       "sides need to the lower layer):\n"
                       + "\n\n".join(describe(c, found, component(c[0], edges)) for c in loops))


def test_in_function_imports_of_mirage_modules_give_their_reason():
    """An import of a mirage module inside a function says on its line why it is not at module level."""
    found = imports(modules())
    hidden = [i for i in found if i.in_function and "# why:" not in i.text]
    assert not hidden, (f"{len(hidden)} in-function import(s) of {PACKAGE} modules without a '# why:' reason "
                        "(move them to module level, or say which heavy package they keep out of start-up):\n"
                        + "\n".join(f"  {i.importer}:{i.line}: {i.text}" for i in hidden))


# --- the checker itself ---------------------------------------------------------------------------
def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return modules(tmp_path / PACKAGE)


def test_the_checker_finds_cycles_through_functions_relative_imports_and_package_inits(tmp_path):
    known = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from mirage import b  # why: test\n",
        "b.py": "from .c import x\n",
        "c.py": "import mirage.a\nx = 1\n",
        "pkg/__init__.py": "from mirage.pkg.low import y\nfrom mirage import top\n",
        "pkg/low.py": "y = 1\n",
        "top.py": "from mirage.pkg import low\n",  # runs pkg/__init__, which imports top
        "d.py": "from mirage.pkg.low import y\n",  # runs pkg/__init__ too, but nothing comes back to d
    })
    found = imports(known)
    assert {(i.importer, i.target, i.in_function) for i in found} >= {
        ("mirage.a", "mirage.b", True), ("mirage.b", "mirage.c", False), ("mirage.c", "mirage.a", False),
        ("mirage.top", "mirage.pkg.low", False)}
    loops = cycles(graph(known, found))
    assert sorted(sorted(set(c)) for c in loops) == [["mirage.a", "mirage.b", "mirage.c"],
                                                     ["mirage.pkg", "mirage.top"]]
    assert all(c[0] == c[-1] for c in loops)


def test_the_checker_accepts_a_package_importing_its_own_submodules(tmp_path):
    known = _package(tmp_path, {
        "__init__.py": "",
        "reg/__init__.py": "from mirage.reg.base import R\nfrom mirage.reg import impl\n",
        "reg/base.py": "R = {}\n",
        "reg/impl.py": "from mirage.reg.base import R\nfrom mirage.reg import base\n",
    })
    assert cycles(graph(known, imports(known))) == []
