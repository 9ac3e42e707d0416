"""/metrics under gunicorn (config/gunicorn.conf.py): prometheus-client's multiprocess mode
sums every worker process's samples, whichever worker answers the scrape, and the metrics
directory is emptied when the server starts."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.servers import free_port, request, start_gunicorn
from tests.helpers import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUTE = "api/docs/problems"  # a page of every host, answered without the database
WORKERS = 3
REQUESTS = 12


def _served(port: int) -> float:
    """This route's ``GET 200`` count in one scrape of the platform host's /metrics."""
    answer = request(port, "GET", "/metrics", host="localhost", timeout=10)
    assert answer.status == 200, answer.body[:500]
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            if sample.name == "http_request_duration_seconds_count" and sample.labels == {
                "route": ROUTE,
                "method": "GET",
                "status": "200",
            }:
                return sample.value
    return 0.0


def _serve_and_scrape(tmp_path, directory, log_name) -> list[float]:
    port = free_port()
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(directory), METRICS_TOKEN="")
    server = start_gunicorn(env=env, port=port, log_path=tmp_path / log_name, workers=WORKERS)
    try:
        for _ in range(REQUESTS):  # one connection each: gunicorn spreads them over workers
            assert request(port, "GET", f"/{ROUTE}", host="localhost", timeout=10).status == 200
        return [_served(port) for _ in range(2 * WORKERS)]
    finally:
        server.stop()


def test_every_scrape_sums_all_workers_and_a_restart_starts_from_zero(tmp_path, public_tenant):
    directory = tmp_path / "metrics"
    assert _serve_and_scrape(tmp_path, directory, "first.log") == [REQUESTS] * (2 * WORKERS)
    assert list(directory.glob("*.db"))  # the workers' files, left by the stopped server
    # The same directory again: the files of the last run are removed before workers fork.
    assert _serve_and_scrape(tmp_path, directory, "second.log") == [REQUESTS] * (2 * WORKERS)
