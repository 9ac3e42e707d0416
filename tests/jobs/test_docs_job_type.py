"""docs/jobs.md's "Writing a job type" works as written: its code blocks are copied out of
the page (each names its file on its first line), the type is built from them, and the
page's own tests run: the unit tests and the one through a real worker."""

import re
import sys
from pathlib import Path

import pytest

from jobs.registry import get_job_type

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"
_BLOCK = re.compile(r"```python\n# (?P<path>[\w/.]+\.py)[^\n]*\n(?P<code>.*?)```", re.S)


def _blocks() -> dict[str, str]:
    """The page's Python blocks by the file their first line names."""
    return {match["path"]: match["code"] for match in _BLOCK.finditer(PAGE.read_text())}


@pytest.fixture
def documented_type(tmp_path, settings):
    """The page's ``reports`` package on the path and its JOBS_TYPES entry in the settings;
    the page's test module, loaded."""
    blocks = _blocks()
    package = tmp_path / "reports"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(blocks["reports/tasks.py"])
    namespace = {"JOBS_TYPES": dict(settings.JOBS_TYPES)}
    exec(blocks["config/settings.py"], namespace)  # noqa: S102 - our own documentation
    sys.path.insert(0, str(tmp_path))
    try:
        settings.JOBS_TYPES = namespace["JOBS_TYPES"]
        tests = {}
        exec(blocks["tests/reports/test_word_count.py"], tests)  # noqa: S102 - as above
        yield tests
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "reports"]:
            del sys.modules[name]


def test_the_page_names_every_file_of_the_example():
    assert set(_blocks()) == {
        "reports/tasks.py",
        "config/settings.py",
        "tests/reports/test_word_count.py",
    }


def test_the_documented_type_is_registered_with_its_options(documented_type):
    job_type = get_job_type("reports.word_count")
    assert (job_type.max_attempts, job_type.timeout_seconds) == (3, 60)
    assert job_type.validate_payload({"document_id": "00000000-0000-0000-0000-000000000001"}) == {
        "document_id": "00000000-0000-0000-0000-000000000001",
        "top": 10,
    }


def test_the_pages_own_tests_pass(documented_type, acme):
    tests = [name for name in documented_type if name.startswith("test_")]
    assert len(tests) == 3
    for name in tests:
        documented_type[name](acme)
