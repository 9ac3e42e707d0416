"""``manage.py check`` refuses misconfigured limits, plans and job types, saying what is
wrong: ``jobs.E001``, or the ``ImproperlyConfigured`` of the URL check when it is the first
to import the API (whose serializers read the job types)."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("JOBS_LIMITS", {"x": {"scope": "global", "rate": "ten/s"}}, "rate must look like"),
        ("JOBS_LIMITS", {"x": {"scope": "galaxy", "concurrency": 1}}, "scope must be one of"),
        ("JOBS_PLANS", {"free": {"nope": {"concurrency": 1}}}, "not a limit of scope 'plan'"),
        (
            "JOBS_TYPES",
            {"demo.echo": {"task": "jobs.demo.echo", "limits": {"missing": 1}}},
            "no limit 'missing'",
        ),
    ],
)
def test_a_misconfigured_limit_stops_manage_py_check(settings, setting, value, said):
    setattr(settings, setting, value)
    with pytest.raises((SystemCheckError, ImproperlyConfigured)) as raised:
        call_command("check")
    assert said in str(raised.value)


def test_the_shipped_settings_pass(settings):
    call_command("check")
