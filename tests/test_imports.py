"""The package's shape: no import cycles (module-level or inside functions), and caffe/ and
the engine import only what their layer may."""
import ast
import pathlib

import keras_icnn

ROOT = pathlib.Path(keras_icnn.__file__).parent


def module_name(path):
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, modules):
    """The keras_icnn modules a file imports, wherever the import stands (``from pkg import
    mod`` is an import of ``pkg.mod``; ``from pkg import name`` one of ``pkg``)."""
    tree, name = ast.parse(path.read_text()), module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("keras_icnn")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                keep = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(keep + ([base] if base else []))
            if base.startswith("keras_icnn"):
                found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                          for a in node.names}
    return found


def graph():
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {i for i in imports(p, modules) if i in modules and i != m}
            for m, p in modules.items()}


def cycles(g):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_engine_imports_nothing_from_the_seed_modules():
    seed = {f"keras_icnn.icnn_{v}" for v in ("gd", "lbfgs", "dgn_gd", "dgn_lbfgs")}
    for m, deps in graph().items():
        if not m.startswith(("keras_icnn.icnn_", "keras_icnn.cli")) and m != "keras_icnn":
            assert not deps & seed, f"{m} imports {deps & seed}"


def test_errors_module_imports_nothing():
    assert graph()["keras_icnn.errors"] == set()
