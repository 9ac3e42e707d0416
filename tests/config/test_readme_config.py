"""The configuration tables of docs/configuration.md, the README and docs/operations.md
match the code, both ways.

- Every variable ``config/settings.py`` reads (its ``env(...)`` and ``required(...)``
  calls, found with ``ast``) has a row in docs/configuration.md, and every row there names
  a variable settings reads or one the Makefile takes (``NAME ?= default``). The README's
  short table holds only rows of that one, word for word.
- Every variable ``config/gunicorn.conf.py`` reads (``os.environ.get(...)``) has a row in
  the gunicorn table of docs/operations.md ("Production"), or in "Configuration" when
  settings reads it too; every gunicorn row names a variable gunicorn reads.
"""

import ast
import re

from tests.helpers import ROOT

README = (ROOT / "README.md").read_text()
CONFIGURATION_DOC = (ROOT / "docs" / "configuration.md").read_text()
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def _table_after(text: str, marker: str) -> set[str]:
    """The variables in the first column of the first table after ``marker`` in ``text``."""
    rest = text[text.index(marker) :]
    lines = rest.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    names = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


CONFIGURATION = _table_after(CONFIGURATION_DOC, "# Configuration\n")
GUNICORN = _table_after(OPERATIONS, "`config/gunicorn.conf.py` reads a few variables of its own")


def _constant_strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List):
        return [item for element in node.elts for item in _constant_strings(element)]
    return []


def _names_read(path: str, is_read) -> set[str]:
    """Names of the variables read by the calls ``is_read`` accepts: the first argument, a
    string constant or the variable of a ``for`` loop over string constants."""
    tree = ast.parse((ROOT / path).read_text())
    loops = {
        node.target.id: _constant_strings(node.iter)
        for node in ast.walk(tree)
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name)
    }
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and is_read(node.func) and node.args:
            first = node.args[0]
            found = loops.get(first.id, []) if isinstance(first, ast.Name) else []
            found = found or _constant_strings(first)
            assert found, f"{path}:{node.lineno}: cannot tell which variable is read"
            names |= set(found)
    return names


def _is_settings_read(func: ast.AST) -> bool:
    return isinstance(func, ast.Name) and func.id in ("env", "required")


def _is_environ_get(func: ast.AST) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "environ"
    )


SETTINGS = _names_read("config/settings.py", _is_settings_read)
GUNICORN_READS = _names_read("config/gunicorn.conf.py", _is_environ_get)
MAKEFILE = set(re.findall(r"^([A-Z][A-Z0-9_]*) \?=", (ROOT / "Makefile").read_text(), re.M))


def test_the_readers_are_found():
    assert {"DATABASE_URL", "SECRET_KEY", "METRICS_TOKEN", "LOG_LEVEL"} <= SETTINGS
    assert {"WEB_CONCURRENCY", "BIND", "LOG_LEVEL"} <= GUNICORN_READS
    assert "PORT" in MAKEFILE


def test_every_variable_settings_reads_is_in_the_configuration_table():
    assert sorted(SETTINGS - CONFIGURATION) == []


def test_every_configuration_row_is_read_by_settings_or_the_makefile():
    assert sorted(CONFIGURATION - SETTINGS - MAKEFILE) == []


def _rows_after(text: str, marker: str) -> list[str]:
    lines = text[text.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start + 2 : end]


def test_the_readme_rows_are_rows_of_the_configuration_page():
    # The README links from the root, the page from docs/: the same link either way.
    readme_rows = [
        row.replace("](docs/", "](") for row in _rows_after(README, "\n## Configuration\n")
    ]
    assert readme_rows
    page_rows = set(_rows_after(CONFIGURATION_DOC, "# Configuration\n"))
    assert [row for row in readme_rows if row not in page_rows] == []


def test_every_variable_gunicorn_reads_is_documented():
    assert sorted(GUNICORN_READS - GUNICORN - (CONFIGURATION & SETTINGS)) == []


def test_every_gunicorn_row_is_read_by_gunicorn():
    assert sorted(GUNICORN - GUNICORN_READS) == []
