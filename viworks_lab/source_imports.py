"""What a Python source file of this repository imports, read from its import statements (no import run).

Used to package the agents' zipapps with every module they need (``release``) and to keep the
repository's rooms one-way (``tests/test_room_rules.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    """``viworks_lab/agents/backend/store.py`` -> ``viworks_lab.agents.backend.store`` (a package: its name)."""
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def imports_of(path: Path, module: str) -> set[str]:
    """Every module name an import statement of ``path`` (module ``module``) names, relative ones
    resolved; ``from package import name`` counts both, as ``name`` may be a module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found
