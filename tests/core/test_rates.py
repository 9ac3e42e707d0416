"""core.rates.RateCounter on the real Redis: the one counter of the jobs API and the login
limits (one round trip per operation, tests/jobs/api/test_rate_limit_charges.py)."""

import uuid

import pytest

from core.rates import RateCounter


@pytest.fixture
def counter():
    return RateCounter("test", uuid.uuid4().hex, "3/m")


def test_take_counts_each_unit_and_says_when_one_is_over_the_limit(counter):
    usages = [counter.take() for _ in range(4)]
    assert [(u.count, u.remaining, u.exceeded) for u in usages] == [
        (1, 2, False),
        (2, 1, False),
        (3, 0, False),
        (4, 0, True),
    ]
    assert {(u.limit, u.window_seconds) for u in usages} == {(3, 60)}
    assert all(1 <= u.reset_seconds <= 60 for u in usages)


def test_peek_takes_nothing(counter):
    assert (counter.peek().count, counter.peek().reset_seconds) == (0, 60)
    counter.take()
    assert counter.peek().count == 1


def test_take_all_or_none_takes_every_unit_or_none(counter):
    usage, taken = counter.take_all_or_none(2)
    assert (usage.count, taken) == (2, True)
    usage, taken = counter.take_all_or_none(2)
    assert (usage.count, taken) == (2, False)
    usage, taken = counter.take_all_or_none(1)
    assert (usage.count, usage.remaining, taken) == (3, 0, True)


def test_give_back_returns_one_unit_and_never_goes_below_zero(counter):
    counter.take()
    counter.take()
    counter.give_back()
    assert counter.peek().count == 1
    counter.give_back()
    counter.give_back()
    assert counter.peek().count == 0


def test_partitions_and_groups_count_apart(counter):
    counter.take()
    assert RateCounter(counter.group, "another", counter.rate).peek().count == 0
    assert RateCounter("another", counter.key, counter.rate).peek().count == 0
