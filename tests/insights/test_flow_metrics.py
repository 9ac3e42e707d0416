"""Flow control's gauges at GET /metrics and its section of jobs_stats: each budget's
running units, rate tokens and throttled jobs, and the pauses, read at scrape time from
jobs.flow.selectors, with per-tenant series only for budgets that exist."""

import io
import json

import pytest
from django.core.management import call_command

from jobs.flow import services
from jobs.flow.models import LimitBudget
from tests.factories import JobFactory
from tests.insights.test_metrics import scrape

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_budget(acme, globex):
    """acme's plan budget: one unit running, two jobs left waiting by the last claim; the
    global request budget with 4 tokens; globex has no budget (it never claimed)."""
    key = f"generations:{acme.pk}"
    LimitBudget.objects.create(key=key, concurrency=1, throttled=True)
    LimitBudget.objects.create(key="llm_requests", rate=10, burst=10, tokens=4)
    keys = {"created_by": None, "limit_keys": [key, "llm_requests"], "limit_units": [1, 1]}
    JobFactory(tenant=acme, processing=True, **keys)
    JobFactory.create_batch(2, tenant=acme, pending=True, **keys)
    services.pause(scope="tenant", target=globex, actor="ann")
    services.pause(scope="type", target="demo.sleep", actor="ann")


def test_flow_gauges_come_from_the_budgets_and_the_pauses(public_client, acme_budget):
    samples = scrape(public_client)
    mine = (("limit", "generations"), ("scope", "plan"), ("tenant", "acme"))
    requests = (("limit", "llm_requests"), ("scope", "global"), ("tenant", ""))
    assert samples[("jobs_limit_running_units", mine)] == 1
    assert samples[("jobs_limit_throttled_jobs", mine)] == 2
    assert ("jobs_limit_tokens", mine) not in samples  # a concurrency limit has no tokens
    assert samples[("jobs_limit_running_units", requests)] == 1
    assert samples[("jobs_limit_throttled_jobs", requests)] == 0  # not marked throttled
    assert 4 <= samples[("jobs_limit_tokens", requests)] <= 10
    assert samples[("jobs_paused", (("scope", "tenant"), ("target", "globex")))] == 1
    assert samples[("jobs_paused", (("scope", "type"), ("target", "demo.sleep")))] == 1
    tenants = {
        dict(labels)["tenant"] for name, labels in samples if name == "jobs_limit_running_units"
    }
    assert tenants == {"", "acme"}  # no series for a tenant without a budget


def test_jobs_stats_lists_the_budgets_and_the_pauses(acme_budget):
    out = io.StringIO()
    call_command("jobs_stats", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[1].split()[0] == "acme"  # the tenants' table comes first, unchanged
    limits = lines.index("") + 1
    assert lines[limits].split()[:3] == ["limit", "scope", "tenant"]
    assert any(line.split()[:4] == ["generations", "plan", "acme", "1/1"] for line in lines)
    paused = next(i for i, line in enumerate(lines) if line.split()[:2] == ["paused", "target"])
    assert lines[paused + 1].split()[:2] == ["tenant", "globex"]
    assert lines[paused + 2].split()[:2] == ["type", "demo.sleep"]
    assert lines[paused + 3] == ""  # the workers' section follows

    out = io.StringIO()
    call_command("jobs_stats", "--json", stdout=out)
    stats = json.loads(out.getvalue())
    mine = next(use for use in stats["limits"] if use["tenant"] == "acme")
    assert (mine["running"], mine["throttled_jobs"], mine["concurrency"]) == (1, 2, 1)
    assert [(p["scope"], p["target"]) for p in stats["pauses"]] == [
        ("tenant", "globex"),
        ("type", "demo.sleep"),
    ]
