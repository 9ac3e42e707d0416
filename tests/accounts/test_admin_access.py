"""Who may use the admin: staff of an inactive tenant are refused at log-in and on every
page, even with an open session, while platform staff are not; the "view on site" shortcut
(``/admin/r/<content_type>/<id>/``) looks nothing up for tenant staff."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus
from tests.accounts.test_admin_login_limits import WRONG_PASSWORD, admin_login
from tests.factories import JobFactory, UserFactory
from tests.helpers import admin_client_for

pytestmark = pytest.mark.django_db

JOBS = "/admin/jobs/job/"


def _deactivate(tenant) -> None:
    tenant.is_active = False
    tenant.save()


@pytest.fixture
def acme_superuser(public_tenant, acme):
    """A superuser who happens to belong to acme: platform-wide all the same."""
    return UserFactory(username="root", tenant=acme, is_staff=True, is_superuser=True)


@pytest.fixture
def platform_staff(public_tenant):
    return UserFactory(username="operator", is_staff=True)


def test_staff_of_an_inactive_tenant_cannot_log_in(carol, acme, acme_superuser, platform_staff):
    _deactivate(acme)
    response = admin_login("carol")
    assert (response.status_code, response.logged_in) == (200, False)
    assert WRONG_PASSWORD in response.text  # nothing tells whether the password was right
    for user in (acme_superuser, platform_staff):
        response = admin_login(user.username)
        assert (response.status_code, response.logged_in) == (302, True)

    acme.is_active = True
    acme.save()
    assert admin_login("carol").logged_in


def test_an_open_session_is_refused_on_every_page_once_the_tenant_is_inactive(
    carol, acme, acme_superuser, platform_staff
):
    job = JobFactory(tenant=acme, created_by=None)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)
    pages = ["/admin/", "/admin/jobs/", JOBS, f"{JOBS}{job.pk}/change/", "/admin/password_change/"]
    carol_client = admin_client_for(carol)
    others = [admin_client_for(acme_superuser), admin_client_for(platform_staff)]
    for page in pages:
        assert carol_client.get(page).status_code == 200, page
    others_before = [[client.get(page).status_code for page in pages] for client in others]

    _deactivate(acme)
    for page in pages:
        response = carol_client.get(page)
        assert (response.status_code, response["Location"]) == (
            302,
            f"/admin/login/?next={page}",
        ), page
    # Platform staff are unaffected (the superuser sees every page, plain staff what their
    # permissions allow).
    assert [[client.get(page).status_code for page in pages] for client in others] == (
        others_before
    )
    assert others_before[0] == [200] * len(pages)
    retry = carol_client.post(
        JOBS, {"action": "retry_jobs", "_selected_action": [job.pk], "index": "0"}
    )
    assert retry.status_code == 302
    assert retry["Location"].startswith("/admin/login/")
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED


def test_view_on_site_looks_nothing_up_for_tenant_staff(carol_client, superuser_client, globex):
    job = JobFactory(tenant=globex, created_by=None)
    content_type = ContentType.objects.get_for_model(Job)
    existing = f"/admin/r/{content_type.pk}/{job.pk}/"
    missing = f"/admin/r/{content_type.pk}/00000000-0000-0000-0000-000000000000/"

    for url in (existing, missing):
        with CaptureQueriesContext(connection) as queries:
            response = carol_client.get(url)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")
        assert not [query for query in queries if "job_queue" in query["sql"]]

    # Platform staff keep Django's shortcut (jobs have no page of their own: 404 too).
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.get(existing)
    assert response.status_code == 404
    assert [query for query in queries if "job_queue" in query["sql"]]
