"""``manage.py check`` refuses a worker expiry within two heartbeats (``jobs.E003``): live
workers would drop out of the registry, and ``/readyz``, between their beats."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


@pytest.mark.parametrize(("expiry", "beat"), [(4.0, 2.0), (1.0, 2.0), (0.0, 0.2)])
def test_an_expiry_within_two_heartbeats_stops_manage_py_check(settings, expiry, beat):
    settings.JOBS_WORKER_EXPIRY, settings.JOBS_HEARTBEAT_SECONDS = expiry, beat
    with pytest.raises(SystemCheckError, match=r"jobs\.E003.*must be above two heartbeats"):
        call_command("check")


def test_an_expiry_above_two_heartbeats_passes(settings):
    settings.JOBS_WORKER_EXPIRY, settings.JOBS_HEARTBEAT_SECONDS = 4.5, 2.0
    call_command("check")
