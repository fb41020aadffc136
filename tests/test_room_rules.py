"""The three rooms and their one-way doors (../shared/DESIGN.md), read from the source's imports.

- the helpers (``viworks_verify``) import neither the checks nor the lab, and pytest only in their plugin modules;
- the checks (``tests_infra``, ``tests_e2e``) import the helpers, never the lab;
- the lab (``viworks_lab``) imports the helpers only, never the checks or the plugin;
- no import cycle anywhere in the helpers or the lab (typing-only imports count: a cycle is a
  misplaced concept whether or not it breaks at run time);
- the helpers' packages are layered: each imports only the packages below it (``LAYERS``);
- no module imports another module's underscore name: what a module shares is its public API.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO
from viworks_lab.source_imports import imports_of, module_name
from viworks_verify import plugin

PACKAGES = ("viworks_verify", "viworks_lab")
CHECKS = ("tests_infra", "tests_e2e")
# The registered plugin modules, the entry-point one, and the run's state they share.
PLUGIN_MODULES = {"viworks_verify.plugin.early", "viworks_verify.plugin.state", *plugin.PLUGIN_MODULES}


def _module_name(path: Path) -> str:
    return module_name(path, REPO)


def _imports(path: Path) -> set[str]:
    return imports_of(path, _module_name(path))


def _sources(*roots: str) -> dict[str, Path]:
    return {_module_name(path): path for root in roots for path in sorted((REPO / root).rglob("*.py"))}


def _offending(sources: dict[str, Path], forbidden: tuple[str, ...], allowed: set[str] = frozenset()) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, path in sources.items()
        if name not in allowed
        for target in _imports(path)
        if target.split(".")[0] in forbidden or target in forbidden
    )


def test_the_helpers_import_neither_the_checks_nor_the_lab():
    assert not _offending(_sources("viworks_verify"), ("viworks_lab", "tests", *CHECKS))


def test_only_the_helpers_plugin_modules_import_pytest():
    assert not _offending(_sources("viworks_verify"), ("pytest", "_pytest"), allowed=PLUGIN_MODULES)


# The one exception, and why: pytest picks its rootdir before the suite's options exist, and has no
# public way to pick it again (``plugin.early._redo_setup``: ``--baseline PATH`` as a separate word).
PRIVATE_API_ALLOWED = {"viworks_verify.plugin.early"}


def test_no_module_imports_pytests_private_api():
    assert not _offending(_sources(*PACKAGES, *CHECKS), ("_pytest",), allowed=PRIVATE_API_ALLOWED)


def test_the_private_api_exception_is_still_needed():
    """A stale exception would let a new private import in unseen."""
    sources = _sources(*PACKAGES)
    assert all(any(t.startswith("_pytest") for t in _imports(sources[name])) for name in PRIVATE_API_ALLOWED)


def test_the_checks_never_import_the_lab():
    assert not _offending(_sources(*CHECKS), ("viworks_lab",))


def test_the_lab_imports_the_helpers_only():
    lab = _sources("viworks_lab")
    assert not _offending(lab, ("tests", *CHECKS, "pytest", *PLUGIN_MODULES))


def test_no_import_cycle_in_the_helpers_or_the_lab():
    sources = _sources(*PACKAGES)
    graph = {
        name: {target for target in _imports(path) if target in sources and target != name}
        for name, path in sources.items()
    }
    cycles = _cycles(graph)
    assert not cycles, f"import cycles: {cycles}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
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
                    found.append(sorted(component))
    return found


# The helpers' packages, lowest first: a package may import only the packages listed before it. Each line
# says what the layer is; a new package goes on the line that says what it may build on.
LAYERS = (
    # values and problems, redaction, the env-file parser, sizes, time, polling, the verdict: nothing of the suite
    "core",
    "pki",  # certificates, pins, public keys, the strict judge
    "target",  # settings, inventory, connections, secrets, the expected release
    "gateway",  # a gateway host: its reader, its snapshot, the knowledge to judge it
    "edge",  # the TLS edge as a client sees it
    "backend",  # the backend host: containers, nginx, the agent's configuration and listeners
    "wire",  # the protocol and the live sessions through the edge
    "gather",  # every host read at once into a run's snapshot
    "report",  # drift, summaries, waivers: what a run says
    "plugin",  # pytest: fixtures, scheduling, reporting
    "cli",  # viworks-verify's commands
)


def _layer_of(module: str) -> str | None:
    """``viworks_verify.gateway.reader`` -> ``gateway``; the top-level modules are their own layer."""
    parts = module.split(".")
    if parts[0] != "viworks_verify":
        return None
    return parts[1] if len(parts) > 1 else "core"  # viworks_verify/__init__: the version only


def _layering_violations(imports: dict[str, set[str]]) -> list[str]:
    found = []
    for name, targets in imports.items():
        own = _layer_of(name)
        for target in sorted(targets):
            other = _layer_of(target)
            if own is None or other is None or other == own or other not in LAYERS:
                continue
            if own not in LAYERS or LAYERS.index(other) > LAYERS.index(own):
                found.append(f"{name} ({own}) imports {target} ({other}, a layer above it or unlisted)")
    return found


def test_every_helper_package_has_a_layer():
    packages = {path.parent.name for path in (REPO / "viworks_verify").glob("*/__init__.py")}
    modules = {path.stem for path in (REPO / "viworks_verify").glob("*.py") if path.stem != "__init__"}
    assert packages | modules <= set(LAYERS), f"not in LAYERS: {sorted((packages | modules) - set(LAYERS))}"


def test_each_helper_package_imports_only_the_layers_below_it():
    sources = _sources("viworks_verify")
    imports = {
        name: {t for t in _imports(path) if t.split(".")[0] == "viworks_verify"} for name, path in sources.items()
    }
    violations = _layering_violations(imports)
    assert not violations, "\n".join(violations)


def test_the_layering_rule_finds_an_upward_import():
    """The rule above cannot pass vacuously."""
    assert _layering_violations(
        {
            "viworks_verify.gather.gathering": {"viworks_verify.gateway.reader", "viworks_verify.core.fact"},
            "viworks_verify.core.fact": {"viworks_verify.report.redaction"},
        }
    ) == [
        "viworks_verify.core.fact (core) imports viworks_verify.report.redaction (report, a layer above it or unlisted)"
    ]


def _underscore_imports(sources: dict[str, Path]) -> list[str]:
    """``from a.b import _name`` where ``a.b`` is another module of the repository (dunders aside)."""
    found = []
    for name, path in sources.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (*PACKAGES, "tests"):
                found.extend(
                    f"{name}:{node.lineno} imports {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                )
    return found


def test_no_module_imports_another_modules_underscore_name():
    found = _underscore_imports(_sources(*PACKAGES, *CHECKS, "tests"))
    assert not found, "\n".join(found)


def test_the_cycle_finder_finds_a_cycle():
    """The rule above cannot pass vacuously."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_checks_fail_one_way_through_the_verdict_helper():
    """No ``assert`` and no ``pytest.fail`` in the checks: every failure is ``verdict.fail(host, subject,
    expected=, found=, evidence=)``, so every verdict reads the same way."""
    other_ways = []
    for name, path in _sources(*CHECKS).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assert):
                other_ways.append(f"{name}:{node.lineno} assert")
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.fail":
                other_ways.append(f"{name}:{node.lineno} pytest.fail")
    assert not other_ways
