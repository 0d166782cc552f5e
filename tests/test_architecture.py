"""The layering rules of docs/architecture.md, checked on the source of ``src/millstream``.

Each test parses the code (nothing is imported) and fails with the list of offending
places:

* no import cycle between packages, and none between modules at module scope;
* no import from a lower layer to a higher one (the layers are :data:`LAYERS`; the
  imports under ``if TYPE_CHECKING:`` in :data:`TYPING_ONLY_UPWARD` excepted);
* no module reaching into another package's private names: a ``_name`` imported from
  it, a private module of it, or a ``_name`` attribute that only its classes define
  (the protected names a base class lists in ``extension_points`` excepted);
* no source file over 1,000 lines.

A package is a folder under ``src/millstream`` (``millstream.core``); a module at the top
(``millstream.testing``) is a package of its own. ``millstream._utils``,
``millstream._version`` and ``millstream.exceptions`` are the base every package may use.
"""

from __future__ import annotations

import ast
import pathlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "millstream"

#: Bottom to top; a package may import only from its own layer's packages and below.
LAYERS: list[set[str]] = [
    {"millstream._utils", "millstream._version", "millstream.exceptions"},
    {"millstream.core"},
    {"millstream.graph", "millstream.collection"},  # need only core
    {"millstream.operators"},
    {"millstream.kafka", "millstream.connectors"},  # client code of the external systems
    {"millstream.sources"},
    {"millstream.sinks"},
    {"millstream.time"},
    {"millstream.checkpoint"},
    {"millstream.dask"},
    {"millstream.dataframe", "millstream.batch"},
    {"millstream.metrics"},
    {"millstream.cli"},
    {"millstream.testing"},
    {"millstream._stream_methods"},  # Stream's registered methods, for type checkers only
    {"millstream"},  # the package's __init__: wires every layer (the composition root)
    {"millstream.__main__"},
]
BASE = LAYERS[0]

#: Upward imports allowed on purpose: (importing module, imported module) -> why.
ALLOWED_UPWARD = {
    ("millstream.sources", "millstream.sinks.files"): (
        "Streamz has sink_to_file in streamz.sources: millstream.sources finds it in "
        "millstream.sinks on first use (a module __getattr__)"
    ),
}

#: Upward imports allowed only under ``if TYPE_CHECKING:`` (never run): (importing
#: package, imported module) -> why.
TYPING_ONLY_UPWARD = {
    ("millstream.core", "millstream._stream_methods"): (
        "type checkers must see the methods the layers above register on Stream at run "
        "time (source.map(f) is a map); Stream derives from StreamMethods for them only"
    ),
}

MAX_LINES = 1000


@dataclass
class Module:
    name: str
    path: pathlib.Path
    is_package: bool
    tree: ast.Module
    #: (imported module or ``module.attribute``, line, at module scope)
    imports: list[tuple[str, int, bool]] = field(default_factory=list)
    #: local name -> imported module (``import x as y``, ``from . import mod``)
    module_aliases: dict[str, str] = field(default_factory=dict)
    #: (imported from, name, line) of ``from x import name``
    names: list[tuple[str, str, int]] = field(default_factory=list)
    #: (imported module, line) of the imports under ``if TYPE_CHECKING:``
    typing_only: set[tuple[str, int]] = field(default_factory=set)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer_of(package: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if package in layer:
            return i
    return None


def _module_scope_nodes(tree: ast.Module) -> set[int]:
    """ids of the import statements that run when the module is imported."""
    scope: set[int] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                scope.add(id(node))
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return scope


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import statements under ``if TYPE_CHECKING:`` (run by no interpreter)."""
    return {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    }


def load_modules() -> dict[str, Module]:
    modules = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        name = module_name(path)
        modules[name] = Module(name, path, path.name == "__init__.py", tree)
    for module in modules.values():
        at_scope = _module_scope_nodes(module.tree)
        typing_only = _type_checking_nodes(module.tree)
        for node in ast.walk(module.tree):
            scoped = id(node) in at_scope
            if id(node) in typing_only:
                module.typing_only |= {(m, node.lineno) for m in _imported_modules(module, node)}
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "millstream":
                        module.imports.append((alias.name, node.lineno, scoped))
                        if alias.asname:
                            module.module_aliases[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                if source.split(".")[0] != "millstream":
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if full in modules:  # ``from . import kafka``: a module
                        module.imports.append((full, node.lineno, scoped))
                        module.module_aliases[alias.asname or alias.name] = full
                    else:
                        module.imports.append((source, node.lineno, scoped))
                        module.names.append((source, alias.name, node.lineno))
    return modules


def _imported_modules(module: Module, node: ast.Import | ast.ImportFrom) -> list[str]:
    """What ``load_modules`` records as imported by ``node`` (a module, or where the names
    come from)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = _resolve(module, node)
    return [source] + [f"{source}.{alias.name}" for alias in node.names]


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    parts = module.name.split(".")
    if not module.is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(SRC.parents[1])}:{line}"


MODULES = load_modules()


def _find_cycle(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Each strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = [0]

    def strongconnect(v: str) -> Iterator[list[str]]:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                yield from strongconnect(w)
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
                yield sorted(component)

    for v in sorted(graph):
        if v not in index:
            yield from strongconnect(v)


def _edge_allowed(importer: Module, imported: str, line: int) -> bool:
    def listed(allowed: dict[tuple[str, str], str]) -> bool:
        return any(
            package_of(importer.name) == a and (imported == b or imported.startswith(b + "."))
            for a, b in allowed
        )

    typing_only = (imported, line) in importer.typing_only
    return listed(ALLOWED_UPWARD) or (typing_only and listed(TYPING_ONLY_UPWARD))


# -- the rules ----------------------------------------------------------------------------


def test_every_package_has_a_layer():
    missing = sorted({package_of(m) for m in MODULES if layer_of(package_of(m)) is None})
    assert not missing, (
        f"packages without a layer: {missing}; add each to LAYERS here and to the layer "
        "table of docs/architecture.md"
    )


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES.values():
        for target, line, _ in module.imports:
            a, b = package_of(module.name), package_of(target)
            if a != b and not _edge_allowed(module, target, line):
                graph[a].add(b)
    cycles = list(_find_cycle(graph))
    assert not cycles, f"packages importing each other: {cycles}"


def test_no_import_cycle_between_modules_at_module_scope():
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES.values():
        for target, _, scoped in module.imports:
            if scoped and target in MODULES and target != module.name:
                # importing a package's module runs the package's __init__ first
                graph[module.name].add(target)
    # a package's __init__ importing its own modules is how a package is built, and a
    # module importing a sibling through the package is the same edge: leave both out
    for name in list(graph):
        graph[name] = {
            t for t in graph[name] if not (MODULES[t].is_package and name.startswith(t + "."))
        }
    cycles = list(_find_cycle(graph))
    assert not cycles, f"modules importing each other when imported: {cycles}"


def test_imports_go_down_the_layers():
    wrong = []
    for module in MODULES.values():
        own = layer_of(package_of(module.name))
        for target, line, _ in module.imports:
            other = layer_of(package_of(target))
            if own is None or other is None or other <= own:
                continue
            if _edge_allowed(module, target, line):
                continue
            wrong.append(f"{_where(module, line)}: {module.name} imports {target}")
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(wrong)


def test_no_module_imports_another_packages_private_names():
    wrong = []
    for module in MODULES.values():
        own = package_of(module.name)
        for target, line, _ in module.imports:
            if package_of(target) in (own, *BASE) or target in BASE:
                continue
            if any(_private(part) for part in target.split(".")[2:]):
                wrong.append(f"{_where(module, line)}: private module {target}")
        for source, name, line in module.names:
            if package_of(source) in (own, *BASE) or source in BASE:
                continue
            if _private(name) and name != "_global_sinks":  # Streamz's name, see below
                wrong.append(f"{_where(module, line)}: {name} from {source}")
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module.module_aliases
                and _private(node.attr)
            ):
                target = module.module_aliases[node.value.id]
                if package_of(target) != own and target not in BASE:
                    wrong.append(f"{_where(module, node.lineno)}: {target}.{node.attr}")
    assert not wrong, "private names of another package:\n" + "\n".join(wrong)


def _extension_points(cls: ast.ClassDef) -> set[str]:
    """The names a class lists in ``extension_points = (...)`` (annotated or not)."""
    names: set[str] = set()
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "extension_points" for t in targets):
            names |= {
                c.value
                for c in ast.walk(value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return names


def _class_private_names() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(underscore name -> packages whose classes define it, package -> the names its
    classes list in ``extension_points``)."""
    defined: dict[str, set[str]] = defaultdict(set)
    open_names: dict[str, set[str]] = defaultdict(set)
    for module in MODULES.values():
        package = package_of(module.name)
        for cls in (n for n in ast.walk(module.tree) if isinstance(n, ast.ClassDef)):
            for name in _own_private_names(cls):
                defined[name].add(package)
            open_names[package] |= _extension_points(cls)
    return defined, open_names


def test_no_class_uses_private_members_defined_only_in_another_package():
    defined, open_names = _class_private_names()
    wrong = []
    for module in MODULES.values():
        own = package_of(module.name)
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            owners = defined.get(node.attr)
            if not owners or own in owners:
                continue
            if any(node.attr in names for names in open_names.values()):
                continue
            wrong.append(
                f"{_where(module, node.lineno)}: .{node.attr} (defined by {sorted(owners)})"
            )
    assert not wrong, (
        "private members of another package's classes (use a public name or list the hook "
        "in the base class's extension_points):\n" + "\n".join(wrong)
    )


def _classes() -> dict[tuple[str, str], ast.ClassDef]:
    return {
        (module.name, node.name): node
        for module in MODULES.values()
        for node in module.tree.body
        if isinstance(node, ast.ClassDef)
    }


def _base_class(
    module: Module, expr: ast.expr, classes: dict[tuple[str, str], ast.ClassDef]
) -> tuple[str, str] | None:
    """The (module, class) a base-class expression names, following imports."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        target = module.module_aliases.get(expr.value.id)
        return (target, expr.attr) if (target, expr.attr) in classes else None
    if not isinstance(expr, ast.Name):
        return None
    where, name = module.name, expr.id
    for _ in range(8):  # through re-exports
        if (where, name) in classes:
            return where, name
        found = [(src, n) for src, n, _ in MODULES[where].names if n == name]
        if not found or found[0][0] not in MODULES:
            return None
        where = found[0][0]
    return None


def _own_private_names(cls: ast.ClassDef) -> set[str]:
    names = set()
    for node in ast.walk(cls):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and _private(node.attr)
        ):
            names.add(node.attr)
    for stmt in cls.body:
        if isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name) and _private(t.id))
        elif (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and _private(stmt.target.id)
        ):
            names.add(stmt.target.id)
    return names


def test_no_subclass_uses_private_members_of_a_base_class_in_another_package():
    """A node class built on another package's node (a Dask node on a core one) uses it
    through public names and listed extension points only, even when it overrides them."""
    classes = _classes()
    _, open_names = _class_private_names()
    allowed = set().union(*open_names.values())
    wrong = []
    for (module_name_, class_name), cls in classes.items():
        module = MODULES[module_name_]
        own = package_of(module_name_)
        inherited: dict[str, tuple[str, str]] = {}
        pending = [_base_class(module, b, classes) for b in cls.bases]
        while pending:
            key = pending.pop()
            if key is None:
                continue
            for name in _own_private_names(classes[key]):
                inherited.setdefault(name, key)
            pending.extend(_base_class(MODULES[key[0]], b, classes) for b in classes[key].bases)
        foreign = {
            name: key
            for name, key in inherited.items()
            if package_of(key[0]) != own and name not in allowed
        }
        for node in ast.walk(cls):
            name = getattr(node, "attr", None) or getattr(node, "name", None)
            if name in foreign and isinstance(
                node, (ast.Attribute, ast.FunctionDef, ast.AsyncFunctionDef)
            ):
                base = ".".join(foreign[name])
                wrong.append(f"{_where(module, node.lineno)}: {class_name} uses {base}.{name}")
    assert not wrong, "private members of a base class in another package:\n" + "\n".join(wrong)


def test_no_source_file_over_1000_lines():
    long = []
    for module in MODULES.values():
        lines = module.path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_LINES:
            long.append(f"{module.path.relative_to(SRC.parents[1])}: {lines} lines")
    assert not long, "files to split:\n" + "\n".join(long)


# -- the checker checks ---------------------------------------------------------------------


def test_the_rules_see_what_they_look_for():
    """The parser finds the imports the rules judge (guards against a checker that sees
    nothing and so passes)."""
    stream = MODULES["millstream.core.stream"]
    assert any(t == "millstream.core.refs" for t, _, _ in stream.imports)
    top = MODULES["millstream"]
    assert {"millstream.operators", "millstream.sources", "millstream.time"} <= {
        t for t, _, _ in top.imports
    }
    assert layer_of("millstream.core") < layer_of("millstream.dask")  # type: ignore[operator]
    assert list(_find_cycle({"a": {"b"}, "b": {"a"}, "c": {"a"}})) == [["a", "b"]]
    defined, open_names = _class_private_names()
    assert "millstream.core" in defined["_emit"] and "_emit" in open_names["millstream.core"]
    assert len(MODULES) > 50
