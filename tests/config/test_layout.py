"""The rooms of the code base and what each may import (docs/architecture.md, "Rooms").

Read from the source with ``ast``, imports inside functions included: an import deferred
into a function is still a dependency. The rules:

- each app imports only the apps below it (``ALLOWED``), and that layering has no cycle;
- the feature apps (schedules, webhooks, insights) may import the engine (``jobs``) and
  the rooms below it, never one another, and the engine imports none of them: they meet it
  through its signals and ``jobs.periodic``;
- no domain module of the engine (anything in ``jobs/`` outside ``jobs/api/``) imports
  ``jobs.api``: the HTTP layer sits on the domain, not under it;
- configuration imports no app (settings name them by dotted path).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("schedules", "webhooks", "insights")
APPS = ("core", "tenants", "accounts", "documents", "jobs", *FEATURES, "console")
BELOW_THE_ENGINE = {"core", "tenants", "accounts", "documents"}
# Each app's allowed imports among the apps: the layering of docs/architecture.md.
ALLOWED = {
    "core": set(),
    "documents": set(),
    "accounts": {"core"},
    "tenants": {"core", "accounts"},
    "jobs": BELOW_THE_ENGINE,
    **{feature: {*BELOW_THE_ENGINE, "jobs"} for feature in FEATURES},
    "console": {*BELOW_THE_ENGINE, "jobs"},
    "config": set(),
}
HTTP_LAYER = "jobs.api"


def imports(root: Path, package: str) -> list[tuple[str, str]]:
    """``(module path, imported dotted name)`` for every absolute import in ``package``
    under ``root`` (none for a package that is not there)."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # migrations name their dependencies by app label, not by import
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from jobs import api`` imports jobs.api: name each imported member too.
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            relative = str(path.relative_to(root))
            found.extend((relative, name) for name in names)
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` that breaks the rules of this module, one line each."""
    wrong = []
    for app, allowed in ALLOWED.items():
        for module, name in imports(root, app):
            top = name.split(".")[0]
            if top in ALLOWED and top != app and top not in allowed:
                wrong.append(f"{module}: {app} may not import {name}")
    for module, name in imports(root, "jobs"):
        in_http_layer = module.startswith("jobs/api/")
        if not in_http_layer and (name == HTTP_LAYER or name.startswith(f"{HTTP_LAYER}.")):
            wrong.append(f"{module}: a domain module may not import {name}")
    return wrong


def test_the_code_base_keeps_to_its_rooms():
    assert violations(ROOT) == []


def test_the_allowed_imports_have_no_cycle():
    # The layering itself is acyclic, so the test before this one rules out cycles.
    order = []
    remaining = {app: set(deps) for app, deps in ALLOWED.items()}
    while remaining:
        ready = [app for app, deps in remaining.items() if not deps - set(order)]
        assert ready, f"cycle among {sorted(remaining)}"
        for app in ready:
            order.append(app)
            del remaining[app]


def test_every_app_of_the_code_base_has_its_rules():
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench"} <= set(ALLOWED)


def _plant(root: Path, module: str, source: str) -> None:
    path = root / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def test_the_checker_reports_each_kind_of_forbidden_import(tmp_path):
    # A small tree with one allowed import of each kind, then one forbidden of each.
    _plant(tmp_path, "jobs/api/views.py", "from jobs import selectors\nfrom jobs.api import x\n")
    _plant(tmp_path, "schedules/services.py", "from jobs import services\nimport tenants.scope\n")
    _plant(tmp_path, "jobs/migrations/0001_x.py", "import schedules\n")
    assert violations(tmp_path) == []

    _plant(
        tmp_path,
        "jobs/selectors.py",
        "def poll():\n    from jobs.api.polling import etag_matches\n",  # in a function
    )
    _plant(tmp_path, "jobs/worker/loops.py", "from jobs import api\n")
    _plant(tmp_path, "jobs/periodic.py", "import schedules.services\n")
    _plant(tmp_path, "webhooks/receivers.py", "from insights import services\n")
    _plant(tmp_path, "config/gunicorn.conf.py", "def hook():\n    from jobs import worker\n")
    assert sorted(violations(tmp_path)) == [
        "config/gunicorn.conf.py: config may not import jobs.worker",
        "jobs/periodic.py: jobs may not import schedules.services",
        "jobs/selectors.py: a domain module may not import jobs.api.polling.etag_matches",
        "jobs/worker/loops.py: a domain module may not import jobs.api",
        "webhooks/receivers.py: webhooks may not import insights.services",
    ]
