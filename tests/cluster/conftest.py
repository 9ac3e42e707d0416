"""The cluster tests' one cluster (tests/cluster/stack.py), shared by the scenarios."""

import pytest

from tests.cluster import stack


@pytest.fixture(scope="package")
def cluster():
    with stack.running() as running:
        yield running
