"""Polling tests: the long-poll listener of this process must not outlive the test
database (its connection would block DROP DATABASE)."""

import pytest

from jobs.api.realtime.longpoll import listener


@pytest.fixture(autouse=True)
def _stop_listener():
    yield
    listener.stop()
