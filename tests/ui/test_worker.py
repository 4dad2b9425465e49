"""The one background Worker: newest request wins, cancellation, batched progress, errors as text."""

import threading

from explorer.ui.common.worker import Worker

WAIT_MS = 60000


def test_results_errors_and_busy(qtbot):
    worker = Worker()
    results = []
    worker.sig_done.connect(results.append)
    with qtbot.waitSignal(worker.sig_done, timeout=WAIT_MS):
        worker.submit(lambda job: 6 * 7)
        assert worker.is_busy()
    assert results == [42]
    qtbot.waitUntil(lambda: not worker.is_busy(), timeout=WAIT_MS)
    with qtbot.waitSignal(worker.sig_failed, timeout=WAIT_MS) as failed:
        worker.submit(lambda job: int("x"))
    assert "invalid literal" in failed.args[0] and "Traceback" not in failed.args[0]
    worker.shutdown()


def test_the_newest_request_wins_and_the_old_one_is_cancelled(qtbot):
    worker = Worker()
    started, seen_cancel = threading.Event(), []
    results = []
    worker.sig_done.connect(results.append)

    def slow(job):
        started.set()
        seen_cancel.append(job.wait_cancelled(20.0))  # returns at once when cancelled
        return "old"

    worker.submit(slow)
    assert started.wait(10)
    worker.submit(lambda job: "middle")  # replaced by the next one before it ever runs
    with qtbot.waitSignal(worker.sig_done, timeout=WAIT_MS):
        worker.submit(lambda job: "new")
    assert results == ["new"] and seen_cancel == [True]
    worker.shutdown()


def test_progress_arrives_in_order_and_in_batches(qtbot):
    worker = Worker(progress_hz=10)
    batches = []
    worker.sig_progress.connect(batches.append)

    def count(job):
        for i in range(2000):
            job.progress(i)
        return "done"

    with qtbot.waitSignal(worker.sig_done, timeout=WAIT_MS):
        worker.submit(count)
    records = [r for batch in batches for r in batch]
    assert records == list(range(2000))
    assert len(batches) < 200  # batched, not one signal per record
    worker.shutdown()


def test_cancel_drops_the_result(qtbot):
    worker = Worker()
    results = []
    worker.sig_done.connect(results.append)
    started = threading.Event()

    def slow(job):
        started.set()
        job.wait_cancelled(20.0)
        return "late"

    worker.submit(slow)
    assert started.wait(10)
    with qtbot.waitSignal(worker.sig_busy_changed, timeout=WAIT_MS, check_params_cb=lambda busy: not busy):
        worker.cancel()
    assert results == [] and not worker.is_busy()
