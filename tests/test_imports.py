"""The package's import graph has no cycle, between files or between subpackages, counting
imports inside functions too; prediction imports no training code."""

import ast
from pathlib import Path

import se3unet

ROOT = Path(se3unet.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["se3unet", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set) -> set:
    """Every se3unet module ``path`` imports, anywhere in the file; ``from pkg import name``
    counts as importing pkg.name when that is a module, else pkg."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("se3unet"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("se3unet"):
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else target)
    return {m for m in found if m in modules and m != name}


def graph():
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


def find_cycle(edges):
    """One cycle of the directed graph as a list of nodes, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def subpackage(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_files():
    # A file importing its own package's __init__ (which imports the file) is how Python
    # packages work, not a cycle between files: those edges are left out.
    edges = {m: {t for t in targets if not m.startswith(t + ".")} for m, targets in graph().items()}
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_no_import_cycle_between_subpackages():
    edges = {}
    for module, targets in graph().items():
        for target in targets:
            a, b = subpackage(module), subpackage(target)
            if a != b:
                edges.setdefault(a, set()).add(b)
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_prediction_and_inference_touch_no_training_or_evaluation_code():
    edges = graph()
    seen, todo = set(), ["se3unet.predict", "se3unet.inference"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges[module])
    assert not {m for m in seen if m.startswith(("se3unet.train", "se3unet.evaluate"))}
