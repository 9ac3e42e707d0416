"""The rollup prunes itself when ``cleanup_jobs`` deletes finished jobs (``jobs_cleaned``):
rows as old as the jobs deleted, never the dashboard's last day."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from insights.models import JobRollup
from tests.insights.helpers import rollup_record

OLD = timedelta(days=40)


def cleanup(*args) -> str:
    out = io.StringIO()
    call_command("cleanup_jobs", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_prunes_the_dashboard_rollup_as_old_but_never_its_last_day(acme, globex):
    def minute(age):
        return (timezone.now() - age).replace(second=0, microsecond=0)

    for tenant in (acme, globex):
        for age in (OLD, timedelta(days=2), timedelta(hours=2)):
            rollup_record(
                tenant_id=tenant.pk,
                queue="q",
                type="t",
                outcome="completed",
                wait=0,
                run=0,
                at=minute(age),
            )
    assert "Pruned 1 dashboard rollup row(s)" in cleanup("--older-than", "30d", "--tenant", "acme")
    assert "Pruned 3 dashboard rollup row(s)" in cleanup("--older-than", "0s")
    kept = set(JobRollup.objects.values_list("tenant__schema_name", "minute"))
    assert kept == {("acme", minute(timedelta(hours=2))), ("globex", minute(timedelta(hours=2)))}
    assert "Pruned" not in cleanup("--older-than", "0s", "--dry-run")
