"""A requeued job's old attempt stops before its next stage even when Python swallowed the exit.

submitit's USR2 handler requeues the job and calls ``sys.exit``; when the signal lands while a
finalizer runs (an engine collected at the end of its stage), Python only prints "Exception
ignored" and the attempt goes on. These tests raise the signal from such a finalizer, with a
handler that does what submitit's does (the real one needs a SLURM job, which
tests/slurm/test_slurm_sweep.py runs), through the real runner and the toy stages: toy_rows'
``teardown_s`` stands in for an engine shut down in a finalizer.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from character.io import read_json
from character.pipeline import preemption
from tests.pipeline.test_runner import run, statuses

# The swallowed exit is exactly what these tests stage; pytest reports it as "unraisable".
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

REQUEUES: list[int] = []


def submitit_like_handler(signum: int, frame: FrameType | None) -> None:
    """What submitit's handler does after checkpointing: requeue (recorded here), then exit."""
    REQUEUES.append(signum)
    sys.exit(-1)


def signal_during_teardown(run_root: Path) -> None:
    """Send the requeue signal once toy_rows' engine-like finalizer runs (it then waits 30 s)."""
    marker = run_root / "tiny" / "loving" / "toy_rows" / "teardown.started"

    def send() -> None:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), preemption.REQUEUE_SIGNAL)

    threading.Thread(target=send, daemon=True).start()


SIGNALLED = ("+plugin_params.toy_rows.rows=3", "+plugin_params.toy_rows.teardown_s=30")


@pytest.fixture
def requeue_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Install the submitit-like handler; restore the old one and a fresh flag afterwards."""
    monkeypatch.setattr(preemption, "REQUEUED", threading.Event())
    REQUEUES.clear()
    previous = signal.signal(preemption.REQUEUE_SIGNAL, submitit_like_handler)
    yield
    signal.signal(preemption.REQUEUE_SIGNAL, previous)


def test_without_the_watch_a_swallowed_requeue_lets_the_attempt_finish(
    run_root: Path, requeue_handler: None
) -> None:
    """The failure the watch exists for: the exit is swallowed and every later stage still runs."""
    signal_during_teardown(run_root)
    started = time.time()
    summary = run(run_root, *SIGNALLED)
    assert time.time() - started < 25  # the exit ended the finalizer's wait, then was ignored
    assert REQUEUES == [preemption.REQUEUE_SIGNAL]  # the handler ran (and its exit was ignored)
    assert statuses(summary) == {"prepare": "ran", "toy_rows": "ran", "toy_count": "ran"}


def test_a_requeued_attempt_stops_before_its_next_stage_and_the_next_attempt_goes_on(
    run_root: Path, requeue_handler: None
) -> None:
    preemption.watch_requeue_signal()
    preemption.watch_requeue_signal()  # a second call does not wrap the wrapper
    signal_during_teardown(run_root)
    with pytest.raises(SystemExit) as stopped:
        run(run_root, *SIGNALLED)
    assert stopped.value.code == -1
    assert REQUEUES == [preemption.REQUEUE_SIGNAL]

    run_dir = run_root / "tiny" / "loving"
    # toy_rows finished before the runner looked; toy_count never started.
    assert statuses(read_json(run_dir / "summary.json")) == {"prepare": "ran", "toy_rows": "ran"}
    assert (run_dir / "toy_rows" / "manifest.json").exists()
    assert not (run_dir / "toy_count").exists()
    log = (run_dir / "logs" / "pipeline.log").read_text()
    assert "the job was requeued; this attempt stops before toy_count" in log

    # The requeued attempt (a fresh process: no requeue seen) keeps the finished stages.
    preemption.REQUEUED.clear()
    again = run(run_root, "+plugin_params.toy_rows.rows=3")
    assert statuses(again) == {"prepare": "skipped", "toy_rows": "skipped", "toy_count": "ran"}


def test_a_requeue_swallowed_in_the_last_stage_reports_no_result(
    run_root: Path, requeue_handler: None
) -> None:
    """Returning a summary would let submitit write a successful result for a requeued job."""
    preemption.watch_requeue_signal()
    signal_during_teardown(run_root)
    with pytest.raises(SystemExit):
        run(run_root, *SIGNALLED, "stage.run=[prepare,toy_rows]")
    summary = read_json(run_root / "tiny" / "loving" / "summary.json")
    assert statuses(summary) == {"prepare": "ran", "toy_rows": "ran"}  # the work itself is kept
    assert (
        "the job was requeued; this attempt stops instead of reporting the job finished"
        in (run_root / "tiny" / "loving" / "logs" / "pipeline.log").read_text()
    )


def test_the_watch_leaves_a_process_without_a_python_handler_alone() -> None:
    previous = signal.signal(preemption.REQUEUE_SIGNAL, signal.SIG_DFL)
    try:
        preemption.watch_requeue_signal()
        assert signal.getsignal(preemption.REQUEUE_SIGNAL) is signal.SIG_DFL
    finally:
        signal.signal(preemption.REQUEUE_SIGNAL, previous)
