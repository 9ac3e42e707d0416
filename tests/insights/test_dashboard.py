"""The queue dashboard (/admin/jobs/dashboard/) and its rollup: runs counted as they end by
a real worker, quantiles from the log-scale buckets within 2% of the exact ones, platform
staff see every tenant and tenant staff their own, and the page never reads job_queue's
history."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from insights.models import JobRollup, bucket_of
from insights.selectors import percentile
from jobs import services
from jobs.signals import JobOutcome, jobs_finished
from jobs.worker import Worker
from tests.factories import JobFactory, UserFactory
from tests.helpers import admin_client_for
from tests.insights.helpers import rollup_record

URL = "/admin/jobs/dashboard/"


@pytest.mark.django_db(transaction=True)
def test_a_worker_counts_each_run_that_ends_in_the_rollup(acme, globex):
    for _ in range(2):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    services.job_enqueue(tenant=acme, type="demo.fail", payload={})
    services.job_enqueue(tenant=globex, type="demo.echo", payload={})
    assert Worker(burst=True, poll_interval=0.1).run() == 4

    totals = {}
    for row in JobRollup.objects.all():
        key = (row.tenant_id, row.queue, row.type)
        done, failed, runs = totals.get(key, (0, 0, 0))
        runs += sum(row.run_buckets.values())
        totals[key] = (done + row.completed, failed + row.failed, runs)
    assert totals == {
        (acme.pk, "default", "demo.echo"): (2, 0, 2),
        (acme.pk, "default", "demo.fail"): (0, 1, 1),
        (globex.pk, "default", "demo.echo"): (1, 0, 1),
    }
    for row in JobRollup.objects.all():  # sparse: only the buckets that counted a run
        assert sum(row.wait_buckets.values()) == sum(row.run_buckets.values())
        assert 1 <= len(row.run_buckets) <= row.completed + row.failed


@pytest.mark.django_db
def test_runs_of_one_minute_add_up_in_one_row(acme):
    minute = timezone.now().replace(second=0, microsecond=0)
    for wait, run in ((0.05, 0.2), (3, 40), (3, 40)):
        rollup_record(
            tenant_id=acme.pk,
            queue="q",
            type="t",
            outcome="completed",
            wait=wait,
            run=run,
            at=minute,
        )
    rollup_record(
        tenant_id=acme.pk, queue="q", type="t", outcome="failed", wait=0, run=0, at=minute
    )
    (row,) = JobRollup.objects.all()
    assert (row.minute, row.completed, row.failed) == (minute, 3, 1)
    assert sum(row.wait_buckets.values()) == sum(row.run_buckets.values()) == 4
    assert row.run_buckets == {str(bucket_of(0.2)): 1, str(bucket_of(40)): 2, str(bucket_of(0)): 1}


def test_percentile_reads_the_bucket_of_the_run_at_that_rank():
    assert percentile({}, 0.5) is None
    counts = {bucket_of(0.01): 50, bucket_of(2): 45, bucket_of(40): 5}
    assert percentile(counts, 0.5) == pytest.approx(0.01, rel=0.02)  # rank 50 of 100
    assert percentile(counts, 0.51) == pytest.approx(2, rel=0.02)
    assert percentile(counts, 0.95) == pytest.approx(2, rel=0.02)
    assert percentile(counts, 0.99) == pytest.approx(40, rel=0.02)
    assert percentile({bucket_of(0): 1}, 0.5) == pytest.approx(0.001, rel=0.02)  # the floor


def _seed(tenant, type_, count, *, minutes_ago=5):
    at = timezone.now() - timedelta(minutes=minutes_ago)
    for _ in range(count):
        rollup_record(
            tenant_id=tenant.pk,
            queue="default",
            type=type_,
            outcome="completed",
            wait=1,
            run=2,
            at=at,
        )


@pytest.mark.django_db
def test_platform_staff_see_every_tenant_and_tenant_staff_their_own(acme, globex, superuser):
    _seed(acme, "acme.only", 3)
    _seed(globex, "globex.only", 4)
    JobFactory(tenant=acme, created_by=None)
    JobFactory(tenant=globex, created_by=None, queue="reports")

    everything = admin_client_for(superuser).get(URL)
    assert everything.status_code == 200
    page = everything.content.decode()
    assert "acme.only" in page
    assert "globex.only" in page
    assert "<svg" in page
    assert "<polyline" in page
    assert everything.context["live"] == {
        "default": {"pending": 1, "processing": 0},
        "reports": {"pending": 1, "processing": 0},
    }
    assert '<meta http-equiv="refresh" content="30">' in page

    carol = UserFactory(username="carol2", tenant=acme, is_staff=True)
    own = admin_client_for(carol).get(URL, {"range": "day"})
    assert own.status_code == 200
    page = own.content.decode()
    assert "acme.only" in page
    assert "globex.only" not in page
    assert own.context["live"] == {"default": {"pending": 1, "processing": 0}}
    assert [row["completed"] for row in own.context["breakdown"]] == [3]


@pytest.mark.django_db
def test_only_staff_may_open_it(acme, public_tenant):
    outsider = UserFactory(username="dave", tenant=acme, is_staff=False)
    response = admin_client_for(outsider).get(URL)
    assert response.status_code == 302  # to the admin's login page
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_the_page_reads_the_rollup_and_only_the_live_queue(acme, superuser):
    _seed(acme, "demo.echo", 2)
    client = admin_client_for(superuser)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(URL, {"range": "day"}).status_code == 200
    job_queue = [q["sql"] for q in queries if "job_queue" in q["sql"]]
    assert len(job_queue) == 1, job_queue
    assert "IN ('pending', 'processing')" in job_queue[0] or 'status" IN' in job_queue[0]
    assert any("job_rollup" in q["sql"] for q in queries)


@pytest.mark.django_db
def test_the_job_list_links_to_it(superuser):
    page = admin_client_for(superuser).get("/admin/jobs/job/").content.decode()
    assert f'href="{URL}" id="job-summary-dashboard"' in page


@pytest.mark.django_db
def test_a_batch_of_runs_is_summed_per_key_in_one_statement(acme, globex):
    """``jobs_finished``: the runs of a batch summed per tenant, queue and type, all rows in
    one upsert in the database's current minute; a retry or a hand-back is not counted."""
    made = [
        (JobFactory(tenant=acme, created_by=None, completed=True), JobOutcome.COMPLETED, 0.2),
        (JobFactory(tenant=acme, created_by=None, completed=True), JobOutcome.COMPLETED, 40),
        (JobFactory(tenant=acme, created_by=None, completed=True), JobOutcome.TIMED_OUT, 40),
        (JobFactory(tenant=acme, created_by=None, completed=True), JobOutcome.RETRYING, 1),
        (JobFactory(tenant=globex, created_by=None, completed=True), JobOutcome.FAILED, 1),
        (JobFactory(tenant=globex, created_by=None, completed=True), JobOutcome.HANDED_BACK, 0),
    ]
    types = {job.tenant_id: job.type for job, _, _ in made}
    for job, _, _ in made:  # one type per tenant, one queue
        job.type, job.queue = types[job.tenant_id], "q"
    with CaptureQueriesContext(connection) as queries:
        jobs_finished.send(sender=Worker, runs=made)
    upserts = [q["sql"] for q in queries if "job_rollup" in q["sql"]]
    assert len(upserts) == 1
    assert "now()" in upserts[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT date_trunc('minute', now())")
        (minute,) = cursor.fetchone()
    rows = {row.tenant_id: row for row in JobRollup.objects.all()}
    assert set(rows) == {acme.pk, globex.pk}
    assert (rows[acme.pk].minute, rows[acme.pk].completed, rows[acme.pk].failed) == (minute, 2, 1)
    assert sum(rows[acme.pk].run_buckets.values()) == 3
    assert sum(rows[acme.pk].wait_buckets.values()) == 3
    assert rows[acme.pk].run_buckets == {str(bucket_of(0.2)): 1, str(bucket_of(40)): 2}
    assert (rows[globex.pk].completed, rows[globex.pk].failed) == (0, 1)
    jobs_finished.send(sender=Worker, runs=made)  # the next batch adds to the same rows
    rows = {row.tenant_id: row for row in JobRollup.objects.all()}
    assert (rows[acme.pk].completed, rows[acme.pk].failed, rows[globex.pk].failed) == (4, 2, 2)
    assert rows[acme.pk].run_buckets == {str(bucket_of(0.2)): 2, str(bucket_of(40)): 4}


@pytest.mark.django_db
def test_a_batch_the_rollup_cannot_store_is_logged_and_swallowed(acme, caplog, monkeypatch):
    from insights import services as rollup

    def refuse(rows):
        raise DatabaseError("rollup unavailable")

    monkeypatch.setattr(rollup, "rollup_add", refuse)
    job = JobFactory(tenant=acme, created_by=None, completed=True)
    (response,) = [
        r
        for receiver, r in jobs_finished.send_robust(
            sender=Worker, runs=[(job, JobOutcome.COMPLETED, 1.0)]
        )
        if getattr(receiver, "__module__", "") == "insights.services"
    ]
    assert response is None
    assert "rollup: could not count runs" in caplog.text


# --- issue 23: breadcrumbs, index link, window legends, ranges, tenant picker, row links ---


@pytest.mark.django_db
def test_legends_give_the_window_s_totals_not_the_last_minute(acme, superuser):
    for minutes_ago in (5, 30):
        rollup_record(
            tenant_id=acme.pk, queue="default", type="demo.fail", outcome="failed",
            wait=1, run=2, at=timezone.now() - timedelta(minutes=minutes_ago),
        )  # fmt: skip
    response = admin_client_for(superuser).get(URL)
    legends = {s["name"]: s["legend"] for s in response.context["charts"][0]["series"]}
    assert legends == {"completed": "0", "failed": "2"}


@pytest.mark.django_db
@pytest.mark.parametrize("range_name", ["hour", "6h", "day", "7d", "30d"])
def test_ranges_from_an_hour_to_30_days(acme, superuser, range_name):
    rollup_record(
        tenant_id=acme.pk, queue="default", type="demo.echo", outcome="completed",
        wait=1, run=2, at=timezone.now() - timedelta(minutes=50),
    )  # fmt: skip
    response = admin_client_for(superuser).get(URL, {"range": range_name})
    assert response.context["range"] == range_name
    assert [row["completed"] for row in response.context["breakdown"]] == [1]


@pytest.mark.django_db
def test_platform_staff_pick_a_tenant_and_rows_link_to_its_jobs(acme, globex, superuser):
    _seed(acme, "acme.only", 3)
    _seed(globex, "globex.only", 4)
    client = admin_client_for(superuser)
    response = client.get(URL, {"tenant": str(acme.pk)})
    assert [row["type"] for row in response.context["breakdown"]] == ["acme.only"]
    assert response.context["scope"] == "acme"
    row = response.context["breakdown"][0]
    assert row["jobs_url"] == f"/admin/jobs/job/?queue=default&type=acme.only&tenant={acme.pk}"
    assert f'href="{row["jobs_url"]}"'.replace("&", "&amp;") in response.content.decode()
    assert client.get(URL, {"tenant": "999999"}).status_code == 404
    assert client.get(URL, {"tenant": "x"}).status_code == 404


@pytest.mark.django_db
def test_tenant_staff_get_no_picker_and_cannot_pick_another_tenant(acme, globex):
    _seed(globex, "globex.only", 4)
    carol = UserFactory(username="carol3", tenant=acme, is_staff=True)
    response = admin_client_for(carol).get(URL, {"tenant": str(globex.pk)})
    assert response.status_code == 200
    assert response.context["scope"] == "acme"
    assert "globex.only" not in response.content.decode()
    assert 'id="tenant-picker"' not in response.content.decode()


@pytest.mark.django_db
def test_breadcrumbs_are_django_s_and_the_index_links_here(superuser):
    client = admin_client_for(superuser)
    page = client.get(URL).content.decode()
    assert '<ol class="breadcrumbs">' in page
    assert '<li aria-current="page">Queue dashboard</li>' in page
    assert f'<a href="{URL}">Queue dashboard</a>' in client.get("/admin/").content.decode()
