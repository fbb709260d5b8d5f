"""spare_cores: the other processes' CPU use, this process's own taken out."""

import subprocess
import sys
import threading
import time

import pytest

from crossrank.spare_cores import encoding_workers, others_busy

pytestmark = pytest.mark.skipif(others_busy(0.01) is None, reason="no /proc/stat")


def test_a_busy_process_beside_counts():
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # started and spinning
        assert max(others_busy(0.2) or 0.0 for _ in range(3)) >= 0.5
    finally:
        child.kill()
        child.wait()


def test_this_process_own_threads_do_not_count():
    def quietest() -> float:
        return min(others_busy(0.2) or 0.0 for _ in range(3))

    before = quietest()  # the machine's own noise, whatever else runs on it
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.1)
        assert quietest() < before + 0.5  # a whole core of this process's is busy
    finally:
        stop.set()
        thread.join()


def test_two_workers_need_about_two_free_cores():
    assert encoding_workers(cores=2, busy=0.0) == 2
    assert encoding_workers(cores=2, busy=0.6) == 1
    assert encoding_workers(cores=4, busy=2.0) == 2
    assert encoding_workers(cores=1, busy=0.0) == 1
