"""bench/report.py: a benchmark run's report is written part by part, so a part that fails
(e.g. the cluster case without ``ethtool``) keeps the parts before and after it, and
records the failure, instead of losing the whole run's report."""

import importlib.util

import pytest

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
report_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_module)
Report = report_module.Report


def test_each_part_is_in_the_file_when_it_ends_and_a_failure_is_recorded(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("## An earlier run\n\n")
    report = Report(results)
    report.write("## Run of today")

    def fails():
        # Written already: a crash from here on cannot lose it.
        assert "### poll\n\n200 req/s" in results.read_text()
        raise FileNotFoundError(2, "No such file or directory", "ethtool")

    report.part("poll", lambda: "### poll\n\n200 req/s")
    report.part("cluster", fails)
    report.part("fanout", lambda: "### fanout\n\n1,000 waiters")
    report.part("drains", lambda: None)  # measured for a later part only: nothing written

    text = results.read_text()
    assert text.startswith("## An earlier run\n\n## Run of today\n\n### poll\n\n200 req/s\n\n")
    assert "### cluster: failed" in text
    assert "FileNotFoundError: [Errno 2] No such file or directory: 'ethtool'" in text
    assert text.endswith("### fanout\n\n1,000 waiters\n\n")
    assert report.failed == ["cluster"]
    assert list(report.durations) == ["poll", "cluster", "fanout", "drains"]
    assert "Traceback" in capsys.readouterr().err  # the whole traceback, in the run's output


def test_without_a_file_the_report_is_printed_only(tmp_path, capsys):
    report = Report(None)
    report.part("poll", lambda: "### poll")
    assert "### poll" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_is_not_a_failed_part(tmp_path):
    """Ctrl-C stops the run (what was written stays); it is not reported as a result."""
    report = Report(tmp_path / "RESULTS.md")

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        report.part("workers", interrupted)
    assert report.failed == []
