"""``manage.py jobs_flow``: pause, resume, override and status, audit-logged as
``cli:<os login>``; bad input is a CommandError and changes nothing."""

import getpass
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db
ACTOR = f"cli:{getpass.getuser()}"


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs_flow", *args, stdout=out)
    return out.getvalue()


def audit() -> list[tuple[str, str, str]]:
    return list(FlowAuditEntry.objects.order_by("id").values_list("actor", "action", "target"))


def test_pause_and_resume_each_scope(acme):
    assert run("pause", "--queue", "reports", "--reason", "db upgrade") == "paused queue reports\n"
    assert run("pause", "--type", "demo.sleep") == "paused type demo.sleep\n"
    assert run("pause", "--tenant", "acme") == "paused tenant acme\n"
    assert Pause.objects.get(scope="queue").reason == "db upgrade"
    assert Pause.objects.get(scope="tenant").target == str(acme.pk)
    assert run("pause", "--tenant", "acme") == "tenant acme was already paused\n"

    assert run("resume", "--tenant", "acme") == "resumed tenant acme\n"
    assert run("resume", "--tenant", "acme") == "tenant acme was not paused\n"
    assert audit() == [
        (ACTOR, "pause", "queue:reports"),
        (ACTOR, "pause", "type:demo.sleep"),
        (ACTOR, "pause", "tenant:acme"),
        (ACTOR, "resume", "tenant:acme"),
    ]


def test_override_set_and_clear(acme):
    LimitBudget.objects.create(key=f"generations:{acme.pk}", concurrency=1)
    out = run("override", "--tenant", "acme", "--limit", "generations", "--concurrency", "4")
    assert out == "generations for acme: concurrency 4\n"
    run("override", "--tenant", "acme", "--limit", "generations", "--rate", "5/s", "--burst", "2")
    assert LimitOverride.objects.get().figures == {"rate": "5/s", "burst": 2}
    assert not LimitBudget.objects.exists()

    out = run("override", "--tenant", "acme", "--limit", "generations", "--clear")
    assert out == "cleared the override of generations for acme\n"
    out = run("override", "--tenant", "acme", "--limit", "generations", "--clear")
    assert out == "acme had no override of generations\n"
    assert [action for _, action, _ in audit()] == [
        "override_set",
        "override_set",
        "override_clear",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "--type", "no.such"], "no job type 'no.such' is registered"),
        (["pause", "--tenant", "nobody"], "no customer tenant with schema 'nobody'"),
        (["pause", "--tenant", "public"], "no customer tenant with schema 'public'"),
        (["pause", "--queue", "a", "--type", "demo.sleep"], "not allowed with argument"),
        (["pause"], "one of the arguments --queue --type --tenant is required"),
        (
            ["override", "--tenant", "acme", "--limit", "llm_requests", "--concurrency", "2"],
            "'llm_requests' is not a tenant or plan limit",
        ),
        (
            ["override", "--tenant", "acme", "--limit", "generations", "--concurrency", "0"],
            "concurrency must be a positive integer",
        ),
        (
            ["override", "--tenant", "acme", "--limit", "generations", "--rate", "fast"],
            "rate must look like '10/s', '600/m', '5/h'",
        ),
        (
            ["override", "--tenant", "acme", "--limit", "generations"],
            "give --concurrency, --rate (and --burst) or --clear",
        ),
        (
            ["override", "--tenant", "acme", "--limit", "generations", "--clear", "--rate", "1/s"],
            "--clear takes no figures",
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(acme, public_tenant, args, message):
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert message in str(refused.value)
    assert not Pause.objects.exists()
    assert not LimitOverride.objects.exists()
    assert audit() == []


def test_status_lists_each_budgets_use_and_the_pauses(acme):
    lines = run("status").splitlines()
    assert lines[0].split() == [
        "limit",
        "scope",
        "tenant",
        "running",
        "tokens",
        "rate/s",
        "waiting",
        "throttled",
    ]
    assert lines[-1] == "no pauses"

    key = f"generations:{acme.pk}"
    LimitBudget.objects.create(key=key, concurrency=1, throttled=True)
    keys = {"limit_keys": [key], "limit_units": [1], "created_by": None}
    JobFactory(tenant=acme, processing=True, **keys)
    JobFactory(tenant=acme, pending=True, **keys)
    run("pause", "--queue", "reports", "--reason", "db")
    lines = run("status").splitlines()
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in lines[1:] if line}
    assert rows[("generations", "plan", "acme")] == ["1/1", "-", "-", "1", "1"]
    assert rows[("llm_requests", "global", "-")] == ["0", "10.0/10", "10", "0", "0"]
    pauses = lines[lines.index("") + 1 :]
    assert pauses[0].split() == ["paused", "target", "by", "at", "(UTC)", "reason"]
    assert pauses[1].split()[:3] == ["queue", "reports", ACTOR]
    assert pauses[1].split()[-1] == "db"
