"""bench/flow.py, make bench's flow-control part (issue 21 item 8), runs end to end in a tiny
configuration: real worker processes under bench/flow_settings.py on the test database,
each part's section with its figures, the issue's target and a verdict, and the bench's
rows removed afterwards. Timings are never asserted here (targets belong to bench/)."""

import importlib.util
import sys

import pytest
from django.db import connection

from jobs.models import Job, JobAttempt
from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("bench_flow", ROOT / "bench" / "flow.py")
flow = importlib.util.module_from_spec(_spec)
sys.modules["bench_flow"] = flow  # dataclasses resolve the module of Sizes by name
_spec.loader.exec_module(flow)

TINY = flow.Sizes(
    flood=40,
    window=3.0,
    trickle_period=1.0,
    processes=2,
    flood_concurrency=2,
    rate_seconds=3,
    drain=60,
    drain_concurrency=2,
    rounds=1,
)


def test_slot_shares_count_each_tenants_slot_seconds_per_window():
    jobs = [
        (1, 0.0, 0.0, 10.0),  # holds a slot through both windows
        (2, 0.0, 4.0, 6.0),  # one second in each
        (3, 0.0, 9.0, None),  # still running when the workers stopped at 11
        (2, 7.0, None, None),  # never started
    ]
    assert flow.slot_shares(jobs, start=0.0, end=10.0, stopped=11.0) == [
        (0.0, {1: 5.0, 2: 1.0, 3: 0.0}),
        (5.0, {1: 5.0, 2: 1.0, 3: 1.0}),
    ]


def test_start_profile_counts_each_second_and_finds_pauses_and_bunches():
    offsets = [0.0, 0.1, 0.5, 1.0, 1.2, 1.3, 1.4, 2.9, 3.0, 3.5, 4.2]
    profile = flow.start_profile(offsets, seconds=4)
    assert profile.counts == [3, 4, 1, 2]  # 4.2 is past the seconds counted
    assert profile.longest_gap == pytest.approx(1.5)  # 1.4 → 2.9, after the first second
    assert profile.gap_end == 2.9
    assert profile.most_in_a_second == 4  # 1.0, 1.2, 1.3, 1.4


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_each_part_runs_with_real_workers_and_reports_figures_target_and_verdict(
    tmp_path, monkeypatch, settings
):
    # The bench's servers are the suite's (embedded ones when DATABASE_URL and REDIS_URL are
    # unset), not the first it would find on its own (a PostgreSQL on 127.0.0.1:5432).
    monkeypatch.setattr(flow.bench, "SERVER_URL", settings.DATABASE_URL)
    monkeypatch.setattr(flow.bench, "REDIS_URL", settings.REDIS_URL)
    results = tmp_path / "RESULTS.md"
    report = flow.Report(results)
    for name, measure in flow.parts(connection.settings_dict["NAME"], TINY):
        report.part(name, measure)

    text = results.read_text()
    assert report.failed == [], text
    for title in ("(a): noisy neighbour", "(b): a global rate limit of 20/s", "(c): the cost"):
        assert f"### Flow control {title}" in text
    assert text.count("Measured 20") == 3  # each part names its machine and date
    assert text.count("Target (issue 21)") == 3
    assert text.count("**met**") + text.count("**not met**") == 3
    assert "| flowsmall1 | 3 |" in text  # 3 s, one job a second
    assert "| 0–2 | " in text  # the starts of each second under the rate limit
    assert "| one limit attached" in text
    # Only the bench's own rows were written, and they are gone.
    assert not Job.objects.filter(queue__startswith="bench-flow").exists()
    assert not JobAttempt.objects.exists()
