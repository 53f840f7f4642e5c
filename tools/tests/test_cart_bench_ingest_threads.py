"""cart-bench ingest splits the gateway's CPU-s by thread: the core loop (main thread) and the
rest (paho's network thread), read from /proc."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from cart_bench.ingest import _split_threads, _thread_cpu_s


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_each_thread_is_read_and_a_busy_one_is_not_the_main_thread():
    stop = threading.Event()
    tids = []

    def spin():
        tids.append(threading.get_native_id())
        while not stop.is_set():
            sum(range(1000))
    t = threading.Thread(target=spin)
    before = _thread_cpu_s(os.getpid())
    t.start()
    deadline = time.time() + 60
    try:
        while time.time() < deadline:       # until the spinning thread has used a clock tick
            time.sleep(0.05)
            if tids and _thread_cpu_s(os.getpid()).get(tids[0], 0.0) >= 0.05:
                break
        after = _thread_cpu_s(os.getpid())
    finally:
        stop.set()
        t.join()
    assert os.getpid() in before and os.getpid() in after
    assert tids[0] in after and tids[0] not in before      # started in between: counted from 0
    main, other = _split_threads(os.getpid(), before, after)
    assert other >= after[tids[0]] >= 0.05
    assert main == pytest.approx(after[os.getpid()] - before[os.getpid()])


def test_no_reading_gives_no_split():
    assert _split_threads(1, {}, {}) == (None, None)
    assert _split_threads(7, {7: 1.0, 8: 2.0}, {7: 1.5, 8: 2.25, 9: 0.5}) == (0.5, 0.75)


@pytest.mark.skipif(not os.path.exists(f"/proc/{os.getpid()}/schedstat"), reason="no schedstat")
def test_run_queue_wait_is_read_per_thread_and_never_goes_back():
    from cart_bench.ingest import _runqueue_s
    a = _runqueue_s(os.getpid())
    sum(range(200_000))
    time.sleep(0.01)
    b = _runqueue_s(os.getpid(), threading.get_native_id())
    assert a is not None and b is not None and b >= a >= 0.0
    assert _runqueue_s(os.getpid(), 2**31 - 1) is None      # no such thread
