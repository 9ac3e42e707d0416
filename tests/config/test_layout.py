"""The rooms of the code base and what each may import (docs/architecture.md, "Rooms").

Read from the source with ``ast``, imports inside functions included: an import deferred
into a function is still a dependency.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("core", "tenants", "accounts", "jobs", "console", "documents")
# Each app's allowed imports among the apps: the layering of docs/architecture.md.
ALLOWED = {
    "core": set(),
    "documents": set(),
    "accounts": {"core"},
    "tenants": {"core", "accounts"},
    "jobs": {"core", "tenants", "accounts", "documents"},
    "console": {"core", "tenants", "accounts", "jobs"},
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Top-level project packages imported by ``package`` → the modules importing them."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue  # migrations name their dependencies by app label, not by import
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in (*APPS, "config") and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_config_imports_no_app_module():
    assert imported_packages("config") == {}


def test_apps_import_only_the_rooms_below_them():
    wrong = {
        app: {
            dep: sorted(modules)
            for dep, modules in imported_packages(app).items()
            if dep not in ALLOWED[app]
        }
        for app in APPS
    }
    assert {app: deps for app, deps in wrong.items() if deps} == {}


def test_the_allowed_imports_have_no_cycle():
    # The layering above is itself acyclic, so the test before this one rules out cycles.
    order = []
    remaining = {app: set(deps) for app, deps in ALLOWED.items()}
    while remaining:
        ready = [app for app, deps in remaining.items() if not deps - set(order)]
        assert ready, f"cycle among {sorted(remaining)}"
        for app in ready:
            order.append(app)
            del remaining[app]
