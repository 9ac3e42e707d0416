"""Steps the console's browser tests share: log in, submit a job, find a job's status."""

import json

from playwright.sync_api import expect

from tests.factories import PASSWORD


def log_in(page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(lambda r: "/api/jobs?" in r.url) as listing:
        page.get_by_role("button", name="Log in").click()
    assert listing.value.status == 200
    expect(page.get_by_role("heading", name="Submit a job")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


def submit(page, job_type: str, payload: dict) -> str:
    """Submit through the form; returns the new job's id."""
    page.get_by_label("Job type").select_option(job_type)
    page.get_by_label("Payload (JSON object)").fill(json.dumps(payload))
    with page.expect_response(
        lambda r: r.url.endswith("/api/jobs") and r.request.method == "POST"
    ) as created:
        page.get_by_role("button", name="Submit job").click()
    assert created.value.status == 202
    job_id = created.value.json()["id"]
    expect(page.locator(f"#job-{job_id}")).to_be_visible()
    return job_id


def status_of(page, job_id: str):
    """The status of a job's row, in words."""
    return page.locator(f"#job-{job_id} .status-text")
