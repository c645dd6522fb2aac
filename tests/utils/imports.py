"""The project's import graph, read from the source: module-level and function-level imports of our modules.

`python -m tests.utils.imports` prints the function-level imports with their reasons, and any cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backend", "ml")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    line: int
    deferred: bool  # inside a function, not at module level
    reason: str  # the comment line just above a deferred import


@dataclass
class Graph:
    modules: set[str] = field(default_factory=set)
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            out[imp.source].add(imp.target)
        return out

    def cycles(self) -> list[list[str]]:
        """Every strongly connected group of more than one module (or a module importing itself)."""
        edges, index, low, stack, on_stack, found = self.edges(), {}, {}, [], set(), []
        counter = [0]

        def visit(node: str) -> None:
            index[node] = low[node] = counter[0]
            counter[0] += 1
            stack.append(node)
            on_stack.add(node)
            for nxt in edges.get(node, ()):
                if nxt not in index:
                    visit(nxt)
                    low[node] = min(low[node], low[nxt])
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges.get(node, ()):
                    found.append(sorted(group))

        for node in sorted(edges):
            if node not in index:
                visit(node)
        return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        # `from package import module` names a module; `from module import name` names the module.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return sorted({name for name in names if name in modules})


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _reason_above(lines: list[str], lineno: int) -> str:
    """The comment that heads a block of imports (blank lines and other imports may come between)."""
    for line in reversed(lines[: lineno - 1]):
        text = line.strip()
        if text.startswith("#"):
            return text.lstrip("# ")
        if text and not text.startswith(("import ", "from ")):
            return ""
    return ""


def _walk(node: ast.AST, deferred: bool, source: str, lines: list[str], graph: Graph) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            continue  # for the type checker only: never imported at run time
        if isinstance(child, ast.Import | ast.ImportFrom):
            reason = _reason_above(lines, child.lineno)
            for target in _targets(child, graph.modules):
                graph.imports.append(Import(source, target, child.lineno, deferred, reason))
        inner = deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        _walk(child, inner, source, lines, graph)


def read_graph(packages: tuple[str, ...] = PACKAGES) -> Graph:
    files = [p for package in packages for p in sorted((ROOT / package).rglob("*.py"))]
    graph = Graph(modules={module_name(p) for p in files})
    for path in files:
        text = path.read_text()
        _walk(ast.parse(text), False, module_name(path), text.splitlines(), graph)
    return graph


def library_imports(folder: str) -> dict[str, set[str]]:
    """The top-level packages outside the project each module under `folder` imports, at any level."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[module_name(path)] = names - set(PACKAGES)
    return found


def main() -> None:
    graph = read_graph()
    deferred = [imp for imp in graph.imports if imp.deferred]
    statements = sorted({(imp.source, imp.line, imp.reason) for imp in deferred})
    print(f"{len(graph.modules)} modules, {len(graph.imports)} imports of project modules")
    print(f"{len(statements)} function-level import statements of project modules:")
    for source, line, reason in statements:
        targets = ", ".join(sorted(i.target for i in deferred if (i.source, i.line) == (source, line)))
        print(f"  {source}:{line} -> {targets}\n      {reason or '(no reason given)'}")
    cycles = graph.cycles()
    print(f"cycles: {cycles or 'none'}")
    outward = [i for i in graph.imports if i.source.startswith("ml") and not i.target.startswith("ml")]
    print(f"ml -> backend imports: {outward or 'none'}")


if __name__ == "__main__":
    main()
