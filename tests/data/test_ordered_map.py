"""map_in_order: a few threads, results and errors in the stream's order."""

import random
import threading
import time

import pytest

from crossrank.data.ordered_map import map_in_order


def _slow_square(x: int) -> int:
    time.sleep(random.Random(x).uniform(0, 0.004))  # later items often finish first
    return x * x


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_results_come_in_order(workers):
    assert list(map_in_order(_slow_square, range(60), workers=workers)) == \
        [x * x for x in range(60)]


def test_the_work_runs_on_several_threads_at_once():
    # each item waits until two items are being worked on at once: one thread alone would
    # break the barrier (after its timeout) instead of passing it
    both = threading.Barrier(2, timeout=10)

    def work(x: int) -> int:
        both.wait()
        return x

    assert list(map_in_order(work, range(8), workers=2)) == list(range(8))


def test_an_error_of_fn_comes_where_its_result_would_have():
    def fn(x: int) -> int:
        if x == 5:
            raise ValueError("item 5")
        return _slow_square(x)

    got = []
    with pytest.raises(ValueError, match="item 5"):
        for value in map_in_order(fn, range(20), workers=3):
            got.append(value)
    assert got == [x * x for x in range(5)]


def test_an_error_of_the_stream_comes_after_every_result_before_it():
    def items():
        yield from range(6)
        raise OSError("the file is gone")

    got = []
    with pytest.raises(OSError, match="the file is gone"):
        for value in map_in_order(_slow_square, items(), workers=2, ahead=4):
            got.append(value)
    assert got == [x * x for x in range(6)]


def test_an_earlier_error_of_fn_wins_over_the_streams():
    def items():
        yield from range(3)
        raise OSError("later")

    def fn(x: int) -> int:
        if x == 1:
            raise ValueError("first")
        return x

    with pytest.raises(ValueError, match="first"):
        list(map_in_order(fn, items(), workers=2, ahead=4))


def test_closing_early_takes_no_more_items_and_leaves_no_work_running():
    taken, done = [], []

    def items():
        for x in range(1000):
            taken.append(x)
            yield x

    def fn(x: int) -> int:
        time.sleep(0.002)
        done.append(x)
        return x

    results = map_in_order(fn, items(), workers=2, ahead=3)
    assert [next(results) for _ in range(4)] == [0, 1, 2, 3]
    results.close()
    finished = len(done)
    time.sleep(0.02)
    assert len(done) == finished  # nothing was still running after close()
    assert len(taken) <= 4 + 3


def test_ahead_must_be_positive():
    with pytest.raises(ValueError, match="ahead"):
        list(map_in_order(abs, [1], workers=2, ahead=0))
