"""The job admin on the public host: list, filters, search, detail, actions, read-only rules,
and tenant scoping for staff who belong to a tenant (carol, staff of acme)."""

import html
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.roles import ALL_TENANTS
from jobs import selectors
from jobs.admin import CappedCountPaginator, JobAdmin
from jobs.flow.models import LimitBudget, Pause
from jobs.models import Job, JobAttempt, JobStatus
from tests.factories import JobFactory, UserFactory
from tests.helpers import admin_client_for
from tests.jobs.test_engine import run_burst

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/job/"


def failed_job(tenant, **fields):
    return JobFactory(tenant=tenant, type="demo.fail", failed=True, **fields)


def listed(response) -> list:
    assert response.status_code == 200, response
    return list(response.context["cl"].result_list)


def action(client, name: str, *jobs, select_across: bool = False):
    return client.post(
        LIST,
        {
            "action": name,
            "_selected_action": [str(job.pk) for job in jobs],
            "index": "0",
            "select_across": "1" if select_across else "0",
        },
    )


# --- the list ------------------------------------------------------------------------------


def test_superuser_sees_every_tenant_newest_first(superuser_client, acme, globex):
    older = JobFactory(tenant=acme, created_at=timezone.now() - timedelta(hours=1))
    newer = JobFactory(tenant=globex)
    assert [job.id for job in listed(superuser_client.get(LIST))] == [newer.id, older.id]


def test_list_columns(superuser_client, acme):
    started = timezone.now() - timedelta(minutes=1)
    job = JobFactory(
        tenant=acme,
        type="ai_generation",
        completed=True,
        started_at=started,
        completed_at=started + timedelta(seconds=2.5),
    )
    body = superuser_client.get(LIST).content.decode()
    assert str(job.id)[:8] in body
    assert "acme" in body
    assert '<span class="job-status job-status-completed">Completed</span>' in body
    assert '<td class="field-queue">default</td>' in body
    assert "1/3" in body
    assert "2.50 s" in body


def test_list_queries_do_not_grow_with_rows(superuser_client, acme, globex):
    JobFactory.create_batch(2, tenant=acme)
    superuser_client.get(LIST)  # warm up: content types, session
    with CaptureQueriesContext(connection) as few:
        superuser_client.get(LIST)
    JobFactory.create_batch(20, tenant=acme)
    JobFactory.create_batch(20, tenant=globex)
    with CaptureQueriesContext(connection) as many:
        assert len(listed(superuser_client.get(LIST))) == 42
    assert len(many) == len(few)


def test_list_never_counts_the_whole_table(superuser_client, acme):
    """Every count is capped by a LIMIT, or bounded to the last minutes by completed_at."""
    JobFactory.create_batch(3, tenant=acme)
    with CaptureQueriesContext(connection) as queries:
        superuser_client.get(LIST + "?status=pending")
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "job_queue" in q["sql"]]
    assert len(counts) == 7  # the page's, and six of the summary's
    unbounded = [sql for sql in counts if "LIMIT" not in sql and '"completed_at" >=' not in sql]
    assert unbounded == []


def test_paginator_caps_the_count_and_says_so(superuser_client, acme, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "count_cap", 3)
    monkeypatch.setattr(JobAdmin, "list_per_page", 2)
    JobFactory.create_batch(5, tenant=acme)
    response = superuser_client.get(LIST)
    assert len(listed(response)) == 2
    assert response.context["cl"].result_count == 3
    assert "3+ jobs" in " ".join(response.content.decode().split())


def test_summary_counts_oldest_pending_and_recent_throughput(superuser_client, acme, globex):
    JobFactory(tenant=acme, created_at=timezone.now() - timedelta(minutes=90))
    JobFactory(tenant=globex, scheduled=True)  # not due: not late
    failed_job(acme)
    JobFactory(tenant=globex, completed=True)
    JobFactory(tenant=globex, completed=True, completed_at=timezone.now() - timedelta(hours=1))
    response = superuser_client.get(LIST)
    summary = response.context["job_summary"]
    assert summary.counts == {
        "pending": 2,
        "processing": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 0,
    }
    assert timedelta(minutes=89) < summary.oldest_pending_age < timedelta(minutes=120)
    assert (summary.completed_recently, summary.failed_recently) == (1, 1)
    assert 'id="job-summary"' in response.content.decode()


def test_summary_counts_stop_at_the_cap(superuser_client, acme, monkeypatch):
    monkeypatch.setattr("jobs.selectors.SUMMARY_COUNT_CAP", 2)
    JobFactory.create_batch(3, tenant=acme, created_by=None)
    failed_job(acme)
    response = superuser_client.get(LIST)
    assert response.context["job_summary"].counts["pending"] == 3  # cap + 1: "more"
    assert dict(response.context["job_summary_counts"])["pending"] == "2+"
    assert dict(response.context["job_summary_counts"])["failed"] == "1"
    assert '<span class="count">2+</span>' in response.content.decode()


def test_summary_of_tenant_staff_counts_their_tenant_only(carol_client, acme, globex):
    failed_job(acme)
    failed_job(globex)
    JobFactory(tenant=globex)
    summary = carol_client.get(LIST).context["job_summary"]
    assert summary.counts["failed"] == 1
    assert summary.counts["pending"] == 0
    assert summary.failed_recently == 1


# --- filters and search -----------------------------------------------------------------


def test_filter_by_status_type_tenant_and_created_date(superuser_client, acme, globex):
    failed = failed_job(acme)
    echo = JobFactory(tenant=acme, type="demo.echo")
    other = JobFactory(tenant=globex, type="ai_generation")
    old = JobFactory(tenant=globex, created_at=timezone.now() - timedelta(days=30))

    def ids(query):
        return {job.id for job in listed(superuser_client.get(LIST + query))}

    assert ids("?status=failed") == {failed.id}
    assert ids("?type=ai_generation") == {other.id}
    assert ids(f"?tenant={acme.pk}") == {failed.id, echo.id}
    response = superuser_client.get(LIST)
    dates = next(
        spec
        for spec in response.context["cl"].filter_specs
        if getattr(spec, "field_path", None) == "created_at"
    )
    past_week = next(
        choice["query_string"]
        for choice in dates.choices(response.context["cl"])
        if choice["display"] == "Past 7 days"
    )
    assert ids(past_week) == {failed.id, echo.id, other.id}
    assert old.id in ids("")


def test_tenant_filter_of_superuser_lists_customer_tenants(superuser_client, acme, globex):
    spec = _tenant_filter_choices(superuser_client.get(LIST))
    assert {"Acme", "Globex"} <= spec
    assert "Platform" not in spec


@pytest.mark.parametrize(
    "term",
    [
        lambda job: str(job.id),
        lambda job: str(job.id)[:8],
        lambda job: str(job.id)[:8].upper(),
        lambda job: "demo.fail",
        lambda job: job.created_by.username,
    ],
    ids=["uuid", "short-id", "short-id-uppercase", "type", "username"],
)
def test_search(superuser_client, acme, term):
    job = failed_job(acme, created_by=UserFactory(username="dora", tenant=acme))
    JobFactory(tenant=acme, type="demo.echo")
    assert [found.id for found in listed(superuser_client.get(LIST, {"q": term(job)}))] == [job.id]


def test_search_for_nothing_matching_is_empty(superuser_client, acme):
    JobFactory(tenant=acme)
    assert listed(superuser_client.get(LIST, {"q": "no-such-type"})) == []


# --- detail --------------------------------------------------------------------------------


def test_detail_pretty_prints_payload_result_error_and_traceback(superuser_client, acme):
    job = failed_job(
        acme, payload={"prompt": "Quarterly report", "pages": 3}, result={"partial": True}
    )
    response = superuser_client.get(f"{LIST}{job.pk}/change/")
    assert response.status_code == 200
    body = html.unescape(response.content.decode())
    assert '{\n  "pages": 3,\n  "prompt": "Quarterly report"\n}' in body
    assert '{\n  "partial": true\n}' in body
    assert "demo failure" in body
    assert "Traceback (most recent call last):\nJobError: demo failure" in body
    for event in ("Created", "Started", "Failed", "attempt 1, waited", "ran "):
        assert event in body
    assert 'name="type"' not in body  # read-only: no form inputs for fields


def test_detail_offers_the_operations(superuser_client, acme):
    response = superuser_client.get(f"{LIST}{failed_job(acme).pk}/change/")
    choices = dict(response.context["action_form"].fields["action"].choices)
    choices.pop("")
    assert choices == {
        "retry_jobs": "Retry",
        "cancel_jobs": "Cancel",
        "run_jobs_now": "Run now",
    }  # deleting is the page's own delete link


# --- read-only rules -----------------------------------------------------------------------


def test_no_add_no_edit_no_bulk_delete(superuser_client, acme):
    job = failed_job(acme)
    assert superuser_client.get(f"{LIST}add/").status_code == 403
    response = superuser_client.post(
        f"{LIST}{job.pk}/change/", {"status": "completed", "result": '{"forged": true}'}
    )
    assert response.status_code == 403
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.FAILED, None)
    choices = dict(superuser_client.get(LIST).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in choices
    assert {"retry_jobs", "cancel_jobs", "run_jobs_now"} <= set(choices)


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_unfinished_job_cannot_be_deleted(superuser_client, acme, status):
    job = JobFactory(tenant=acme, **{status: True})
    assert superuser_client.get(f"{LIST}{job.pk}/delete/").status_code == 403
    assert superuser_client.post(f"{LIST}{job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()


def test_finished_job_can_be_deleted_by_superuser(superuser_client, acme):
    job = failed_job(acme)
    response = superuser_client.post(f"{LIST}{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()


# --- actions -------------------------------------------------------------------------------


def test_retry_action_makes_failed_and_cancelled_jobs_pending(superuser_client, acme):
    failed = failed_job(acme)
    cancelled = JobFactory(tenant=acme, cancelled=True)
    completed = JobFactory(tenant=acme, completed=True)
    response = action(superuser_client, "retry_jobs", failed, cancelled, completed)
    assert response.status_code == 302
    for job in (failed, cancelled, completed):
        job.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == (JobStatus.PENDING, 0, "")
    assert cancelled.status == JobStatus.PENDING
    assert completed.status == JobStatus.COMPLETED
    messages = [str(m) for m in superuser_client.get(LIST).context["messages"]]
    assert "2 job(s) retried: pending again." in messages
    assert any("1 job(s) skipped" in message for message in messages)


def test_cancel_action_cancels_pending_and_flags_processing(superuser_client, acme):
    pending = JobFactory(tenant=acme)
    processing = JobFactory(tenant=acme, processing=True)
    action(superuser_client, "cancel_jobs", pending, processing)
    pending.refresh_from_db()
    processing.refresh_from_db()
    assert pending.status == JobStatus.CANCELLED
    assert (processing.status, processing.cancel_requested) == (JobStatus.PROCESSING, True)


def test_run_now_action_makes_a_scheduled_job_due(superuser_client, acme):
    scheduled = JobFactory(tenant=acme, scheduled=True)
    action(superuser_client, "run_jobs_now", scheduled)
    assert Job.objects.filter(pk=scheduled.pk, run_at__lte=Now()).exists()


def test_actions_process_at_most_the_limit(superuser_client, acme, monkeypatch):
    monkeypatch.setattr("jobs.admin.ACTION_LIMIT", 2)
    jobs = [failed_job(acme) for _ in range(3)]
    action(superuser_client, "retry_jobs", *jobs)
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 2
    messages = [str(m) for m in superuser_client.get(LIST).context["messages"]]
    assert any("Only the newest 2" in message for message in messages)


def detail_action(client, job, name: str):
    return client.post(
        f"{LIST}{job.pk}/change/",
        {"CHANGE_FORM-action": name, "_selected_action": str(job.pk), "index": "0"},
    )


@pytest.mark.parametrize(
    ("name", "make", "expect"),
    [
        ("retry_jobs", lambda t: failed_job(t), {"status": JobStatus.PENDING}),
        ("cancel_jobs", lambda t: JobFactory(tenant=t), {"status": JobStatus.CANCELLED}),
        (
            "run_jobs_now",
            lambda t: JobFactory(tenant=t, scheduled=True),
            {"status": JobStatus.PENDING, "run_at__lte": Now()},
        ),
    ],
)
def test_detail_page_runs_one_operation(superuser_client, acme, name, make, expect):
    job = make(acme)
    response = detail_action(superuser_client, job, name)
    assert response.status_code == 302
    assert response["Location"] == f"{LIST}{job.pk}/change/"
    assert Job.objects.filter(pk=job.pk, **expect).exists()


def test_detail_operation_on_a_job_in_the_wrong_state_changes_nothing(superuser_client, acme):
    job = JobFactory(tenant=acme, completed=True)
    detail_action(superuser_client, job, "retry_jobs")
    messages = [str(m) for m in superuser_client.get(LIST).context["messages"]]
    assert messages == ["1 job(s) skipped: A completed job cannot be retried."]
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_detail_operation_applies_to_the_page_job_only(superuser_client, acme):
    job, other = failed_job(acme), failed_job(acme)
    response = superuser_client.post(
        f"{LIST}{job.pk}/change/",
        {"CHANGE_FORM-action": "retry_jobs", "_selected_action": str(other.pk), "index": "0"},
    )
    assert response.status_code == 400
    assert Job.objects.filter(pk__in=[job.pk, other.pk], status=JobStatus.FAILED).count() == 2


# --- tenant scoping: carol is staff of acme ----------------------------------------------


@pytest.fixture
def globex_failed(globex):
    return failed_job(globex, created_by=UserFactory(username="bob", tenant=globex))


@pytest.fixture
def acme_failed(acme):
    return failed_job(acme)


def _tenant_filter_choices(response) -> set[str]:
    for spec in response.context["cl"].filter_specs:
        if getattr(spec, "parameter_name", None) == "tenant":
            return {label for _, label in spec.lookup_choices}
    raise AssertionError("no tenant filter")


def test_carol_lists_only_acme_jobs(carol_client, acme_failed, globex_failed):
    assert [job.id for job in listed(carol_client.get(LIST))] == [acme_failed.id]
    assert str(globex_failed.id)[:8] not in carol_client.get(LIST).content.decode()


def test_carol_gets_no_tenant_column_or_filter(carol_client, acme_failed, globex_failed):
    response = carol_client.get(LIST)
    names = {getattr(spec, "parameter_name", None) for spec in response.context["cl"].filter_specs}
    assert "tenant" not in names
    assert "internal" not in names
    assert "tenant_name" not in response.context["cl"].list_display
    assert "column-tenant_name" not in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [
        lambda globex_job: {"tenant": str(globex_job.tenant_id)},
        lambda globex_job: {"q": str(globex_job.id)},
        lambda globex_job: {"q": str(globex_job.id)[:8]},
        lambda globex_job: {"q": "bob"},
        lambda globex_job: {"q": "demo.fail", "status": "failed", "type": "demo.fail"},
    ],
    ids=["tenant-filter", "search-uuid", "search-short-id", "search-username", "search-type"],
)
def test_carol_cannot_reach_globex_jobs_by_filter_or_search(
    carol_client, acme_failed, globex_failed, query
):
    found = {job.id for job in listed(carol_client.get(LIST, query(globex_failed)))}
    assert globex_failed.id not in found


@pytest.mark.parametrize(
    ("who", "url", "expected"),
    [
        ("carol", "{acme}/change/", 200),
        ("carol", "{globex}/change/", 302),
        ("carol", "{globex}/history/", 302),
        ("carol", "{globex}/delete/", 403),
        ("carol", "{acme}/delete/", 403),  # deleting needs a model permission carol lacks
        ("superuser", "{globex}/change/", 200),
        ("superuser", "{globex}/history/", 200),
    ],
)
def test_detail_pages_by_url(
    carol_client, superuser_client, acme_failed, globex_failed, who, url, expected
):
    client = {"carol": carol_client, "superuser": superuser_client}[who]
    response = client.get(LIST + url.format(acme=acme_failed.pk, globex=globex_failed.pk))
    assert response.status_code == expected
    if expected == 302:  # the admin's "does not exist" redirect, nothing about the job
        assert response["Location"] == "/admin/"


def test_carol_acts_on_acme_jobs(carol_client, acme_failed):
    action(carol_client, "retry_jobs", acme_failed)
    acme_failed.refresh_from_db()
    assert acme_failed.status == JobStatus.PENDING


@pytest.mark.django_db(transaction=True)  # a real worker runs the bulk job
def test_carol_cannot_act_on_globex_jobs(carol_client, acme_failed, globex_failed):
    action(carol_client, "retry_jobs", globex_failed)
    action(carol_client, "retry_jobs", globex_failed, select_across=True)
    run_bulk()  # the bulk job started by select_across
    assert detail_action(carol_client, globex_failed, "retry_jobs")["Location"] == "/admin/"
    assert detail_action(carol_client, globex_failed, "cancel_jobs")["Location"] == "/admin/"
    globex_failed.refresh_from_db()
    assert globex_failed.status == JobStatus.FAILED
    acme_failed.refresh_from_db()  # select_across applied to carol's scope: acme only
    assert acme_failed.status == JobStatus.PENDING


@pytest.mark.parametrize(
    ("who", "url", "expected"),
    [
        ("carol", "/admin/accounts/user/", 403),
        ("carol", "/admin/tenants/tenant/", 403),
        ("carol", "/admin/tenants/tenant/add/", 403),
        ("superuser", "/admin/accounts/user/", 200),
        ("superuser", "/admin/tenants/tenant/", 200),
    ],
)
def test_only_platform_staff_manage_tenants_and_users(
    carol_client, superuser_client, who, url, expected
):
    client = {"carol": carol_client, "superuser": superuser_client}[who]
    assert client.get(url).status_code == expected


def test_tenant_staff_stay_confined_even_with_model_permissions(acme, globex, public_tenant):
    from django.contrib.auth.models import Permission

    dave = UserFactory(username="dave", tenant=acme, is_staff=True)
    dave.user_permissions.set(Permission.objects.filter(codename__endswith="_user"))
    globex_job = failed_job(globex)
    client = admin_client_for(dave)
    assert globex_job.id not in {job.id for job in listed(client.get(LIST))}
    assert client.get("/admin/accounts/user/").status_code == 403


def test_non_staff_users_are_sent_to_login(alice, public_tenant):
    response = admin_client_for(alice).get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_list_offers_no_facet_counts(superuser_client, acme):
    """Facets would count every filter choice over the whole table on each page."""
    JobFactory(tenant=acme)
    response = superuser_client.get(LIST, {"_facets": "True"})
    assert response.context["cl"].add_facets is False
    body = response.content.decode()
    assert "Show counts" not in body
    assert "Hide counts" not in body


# --- issue 23: filters, search, live version, bulk actions, the job page -------------------


def run_bulk() -> None:
    """Run the bulk jobs (the platform's queue) with a real worker, and nothing else."""
    run_burst(queues=[settings.JOBS_PLATFORM_QUEUE])


def _ids(client, query: dict) -> set:
    return {job.id for job in listed(client.get(LIST, query))}


def test_filters_by_queue_scheduled_error_paused_and_throttled(superuser_client, acme, globex):
    report = JobFactory(tenant=acme, queue="reports")
    later = JobFactory(tenant=acme, scheduled=True)
    failed = failed_job(acme)
    paused = JobFactory(tenant=globex, pending=True, type="ai_generation")
    Pause.objects.create(scope="type", target="ai_generation", paused_by="admin")
    key = f"generations:{acme.pk}"
    LimitBudget.objects.create(key=key, concurrency=1, throttled=True)
    throttled = JobFactory(tenant=acme, pending=True, limit_keys=[key], limit_units=[1])
    assert _ids(superuser_client, {"queue": "reports"}) == {report.id}
    assert _ids(superuser_client, {"scheduled": "yes"}) == {later.id}
    assert later.id not in _ids(superuser_client, {"scheduled": "no"})
    assert _ids(superuser_client, {"has_error": "yes"}) == {failed.id}
    assert failed.id not in _ids(superuser_client, {"has_error": "no"})
    assert _ids(superuser_client, {"held": "paused"}) == {paused.id}
    assert _ids(superuser_client, {"held": "throttled"}) == {throttled.id}


@pytest.mark.parametrize("query", [{"held": "x"}, {"scheduled": "maybe"}, {"status": "nope"}])
def test_a_filter_value_that_is_no_choice_is_an_invalid_filter(superuser_client, query):
    response = superuser_client.get(LIST, query)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_carol_sees_her_tenant_pause_but_not_another_tenants(carol_client, acme, globex):
    mine = JobFactory(tenant=acme, pending=True)
    JobFactory(tenant=globex, pending=True)
    Pause.objects.create(scope="tenant", target=str(acme.pk), paused_by="admin")
    Pause.objects.create(scope="tenant", target=str(globex.pk), paused_by="admin")
    assert _ids(carol_client, {"held": "paused"}) == {mine.id}


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("demo failure", {"failed"}),
        ('"demo failure"', {"failed"}),
        ("quarterly", {"report"}),
        ("quarterly -failure", {"report"}),
        ("nothing-like-it", set()),
    ],
)
def test_search_in_error_text_and_payload(superuser_client, acme, term, found):
    jobs = {
        "failed": failed_job(acme),
        "report": JobFactory(tenant=acme, payload={"prompt": "Quarterly report"}),
    }
    JobFactory(tenant=acme, payload={"prompt": "other"})
    assert _ids(superuser_client, {"q": term}) == {jobs[name].id for name in found}


def test_carol_search_in_error_text_finds_acme_jobs_only(carol_client, acme_failed, globex_failed):
    assert _ids(carol_client, {"q": "demo failure"}) == {acme_failed.id}
    assert _ids(carol_client, {"q": "!!!"}) == set()  # no word: not every acme job
    assert _ids(carol_client, {"q": "t" + str(acme_failed.tenant_id)}) == set()


def test_live_version_is_conditional_and_changes_with_the_list(superuser_client, acme):
    job = failed_job(acme)
    first = superuser_client.get(LIST + "live/", {"status": "failed"})
    assert first.status_code == 200
    version = first.json()["version"]
    assert first["ETag"] == f'"{version}"'
    unchanged = superuser_client.get(
        LIST + "live/", {"status": "failed"}, headers={"if-none-match": f'"{version}"'}
    )
    assert unchanged.status_code == 304
    action(superuser_client, "retry_jobs", job)
    changed = superuser_client.get(LIST + "live/", {"status": "failed"})
    assert changed.json()["version"] != version


def test_live_version_of_a_bad_filter_is_a_400(superuser_client):
    assert superuser_client.get(LIST + "live/", {"held": "nope"}).status_code == 400


def test_live_version_is_for_staff_only(alice, public_tenant):
    response = admin_client_for(alice).get(LIST + "live/")
    assert response.status_code == 302


@pytest.mark.django_db(transaction=True)  # a real worker runs the bulk job
def test_bulk_retry_over_every_match_runs_as_a_job(superuser_client, acme, globex, monkeypatch):
    monkeypatch.setattr("jobs.bulk.BATCH_SIZE", 2)
    matching = [failed_job(acme) for _ in range(5)]
    other_error = JobFactory(tenant=acme, failed=True, error="something else")
    other_tenant = failed_job(globex)
    response = superuser_client.post(
        f"{LIST}?tenant={acme.pk}&q=demo+failure",
        {"action": "retry_jobs", "_selected_action": [str(matching[0].pk)], "index": "0",
         "select_across": "1"},
    )  # fmt: skip
    assert response.status_code == 302
    bulk = Job.objects.get(type="jobs.bulk")
    assert bulk.internal
    assert bulk.tenant.is_platform
    assert bulk.payload["match"]["tenant_id"] == acme.pk
    page = superuser_client.get(LIST).content.decode()
    assert "bulk retry" in page
    assert "waiting for a worker" in page
    assert Job.objects.filter(status=JobStatus.FAILED).count() == 7  # nothing yet
    run_bulk()
    bulk.refresh_from_db()
    assert bulk.status == JobStatus.COMPLETED
    assert bulk.result == {"matched": 5, "done": 5, "asked": 0, "skipped": 0}
    assert bulk.progress == 100
    assert set(Job.objects.filter(status=JobStatus.FAILED).values_list("id", flat=True)) == {
        other_error.id,
        other_tenant.id,
    }
    assert "5 matched: 5 done" in superuser_client.get(LIST).content.decode()


@pytest.mark.django_db(transaction=True)  # a real worker runs the bulk job
def test_bulk_cancel_and_delete_cover_the_filter_only(superuser_client, acme):
    pending = JobFactory.create_batch(3, tenant=acme, pending=True, queue="reports")
    kept = JobFactory(tenant=acme, pending=True)
    superuser_client.post(
        f"{LIST}?queue=reports",
        {"action": "cancel_jobs", "_selected_action": [str(pending[0].pk)], "index": "0",
         "select_across": "1"},
    )  # fmt: skip
    run_bulk()
    assert Job.objects.filter(queue="reports", status=JobStatus.CANCELLED).count() == 3
    superuser_client.post(
        f"{LIST}?queue=reports&status=cancelled",
        {"action": "delete_finished_jobs", "_selected_action": [str(pending[0].pk)],
         "index": "0", "select_across": "1"},
    )  # fmt: skip
    run_bulk()
    assert not Job.objects.filter(queue="reports", internal=False).exists()
    kept.refresh_from_db()
    assert kept.status == JobStatus.PENDING


@pytest.mark.django_db(transaction=True)  # a real worker runs the bulk job
def test_carol_bulk_retry_is_acme_s_and_hidden_from_acme_s_clients(
    carol_client, alice_client, acme_failed, globex_failed
):
    carol_client.post(
        f"{LIST}?tenant={globex_failed.tenant_id}",  # no tenant filter for carol: ignored
        {"action": "retry_jobs", "_selected_action": [str(acme_failed.pk)], "index": "0",
         "select_across": "1"},
    )  # fmt: skip
    bulk = Job.objects.get(type="jobs.bulk")
    assert bulk.tenant_id == acme_failed.tenant_id
    assert bulk.internal
    assert alice_client.get(f"/api/jobs/{bulk.id}").status_code == 404
    run_bulk()
    acme_failed.refresh_from_db()
    globex_failed.refresh_from_db()
    assert (acme_failed.status, globex_failed.status) == (JobStatus.PENDING, JobStatus.FAILED)


def test_job_page_leads_with_status_error_and_attempts(superuser_client, acme):
    job = failed_job(acme, worker_id="")
    JobAttempt.objects.create(
        job=job,
        number=1,
        worker_id="host-1:42",
        started_at=timezone.now() - timedelta(seconds=3),
        finished_at=timezone.now(),
        outcome="failed",
        error="demo failure",
        traceback="Traceback (most recent call last):\nJobError: demo failure",
    )
    body = html.unescape(superuser_client.get(f"{LIST}{job.pk}/change/").content.decode())
    status, error, attempts, payload = (
        body.index(text) for text in ("job-status-failed", "demo failure", "host-1:42", "payload")
    )
    assert status < error < attempts < payload
    assert body.count("Traceback (most recent call last)") == 1
    assert "host-1:42 (last attempt)" in body
    assert "Worker id" not in body


# --- issue 23: a search's page on a million rows ------------------------------------------


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_a_search_s_page_sorts_ids_then_joins_the_page_only(superuser_client, acme, globex):
    """Many matches of a search (platform staff, every tenant): the page is the 50 newest, in
    order, in one statement, and no join of tenant or creator sees more than the page's
    rows (the sort is a top-N of ids on the table alone, ``CappedCountPaginator``)."""
    now = timezone.now()
    made = [
        failed_job((acme, globex)[i % 2], created_at=now - timedelta(seconds=i)) for i in range(120)
    ]
    JobFactory.create_batch(5, tenant=acme)  # no match
    first = superuser_client.get(LIST, {"q": "demo failure"})
    assert [job.id for job in listed(first)] == [job.id for job in made[:50]]
    third = superuser_client.get(LIST, {"q": "demo failure", "p": "3"})
    assert [job.id for job in listed(third)] == [job.id for job in made[100:]]

    jobs = selectors.jobs_matching(
        tenant=ALL_TENANTS, match=selectors.JobMatch(search="demo failure")
    )
    page = CappedCountPaginator(jobs, 50).page(1)
    sql, params = page.object_list.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()[0]
    nodes = list(_plan_nodes(plan["Plan"]))
    joins = [n for n in nodes if n["Node Type"] in ("Hash Join", "Nested Loop", "Merge Join")]
    assert joins
    assert max(n["Actual Rows"] for n in joins) == 50
    assert [job.id for job in page.object_list] == [job.id for job in made[:50]]


def test_carol_s_search_page_is_acme_s_only(carol_client, acme, globex):
    now = timezone.now()
    for i in range(60):
        failed_job((acme, globex)[i % 2], created_at=now - timedelta(seconds=i))
    response = carol_client.get(LIST, {"q": "demo failure"})
    assert {job.tenant_id for job in listed(response)} == {acme.pk}
    assert response.context["cl"].result_count == 30


def _searches(client, params) -> int:
    """The statements of one list request that read the matches of its search."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST, params).status_code == 200
    return sum("to_tsvector" in query["sql"] for query in queries)


def test_a_search_s_first_page_reads_its_matches_once(superuser_client, acme, monkeypatch):
    """Counting (capped) and the first page come from one scan of the matches while they are
    all counted; another page, or more matches than the cap, reads them once more."""
    now = timezone.now()
    made = [failed_job(acme, created_at=now - timedelta(seconds=i)) for i in range(60)]
    monkeypatch.setattr(JobAdmin, "list_per_page", 20)
    assert _searches(superuser_client, {"q": "demo failure"}) == 1
    page = listed(superuser_client.get(LIST, {"q": "demo failure"}))
    assert [job.id for job in page] == [job.id for job in made[:20]]
    assert _searches(superuser_client, {"q": "demo failure", "p": "2"}) == 2
    second = listed(superuser_client.get(LIST, {"q": "demo failure", "p": "2"}))
    assert [job.id for job in second] == [job.id for job in made[20:40]]
    monkeypatch.setattr(CappedCountPaginator, "count_cap", 30)  # 60 matches: capped
    assert _searches(superuser_client, {"q": "demo failure"}) == 2
    capped = superuser_client.get(LIST, {"q": "demo failure"})
    assert [job.id for job in listed(capped)] == [job.id for job in made[:20]]
    assert capped.context["cl"].result_count == 30


@pytest.mark.parametrize(
    "ordering", [("tenant__name", "-created_at", "id"), ("tenant", "id"), ("?",)]
)
def test_a_list_ordered_by_anything_but_its_columns_counts_apart(acme, globex, ordering):
    """Only an ordering by the table's own columns is redone over the counted matches;
    any other is counted alone and its page read ids first, in the list's own order."""
    for tenant in (acme, globex, acme, globex, acme):
        JobFactory(tenant=tenant)
    jobs = Job.objects.select_related("tenant").order_by(*ordering)
    paginator = CappedCountPaginator(jobs, 2)
    page = paginator.page(1)
    assert (paginator.count, paginator.first_ids) == (5, None)
    if ordering != ("?",):
        assert [job.id for job in page.object_list] == [job.id for job in jobs[:2]]
