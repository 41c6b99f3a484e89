"""Stop a requeued job's old attempt even when Python swallowed the exit that requeued it.

On SLURM's USR2 (sent before the time limit and on preemption) submitit's handler checkpoints,
requeues the job and calls ``sys.exit``. A signal handler runs inside whatever frame the main
thread was executing, and when that frame is a finalizer (an inference engine being
garbage-collected at the end of its stage, say) Python prints "Exception ignored" and carries on.
The old attempt then runs on beside the requeued one until SLURM kills it, and may even finish
and write a successful result, which tells the launcher the job is done while its requeued copy
is still queued. So the handler is wrapped to remember the requeue, and the runner checks it
before each stage and before it returns: a requeued attempt starts no new stage and reports no
result. A stage already running when the signal came is ended by SLURM (or finishes first; its
outputs are written atomically and resumable either way).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger("character.pipeline")

# Set once a requeue handler exited; never cleared in the process (the attempt is over).
REQUEUED = threading.Event()
# SLURM's signal for time-out and preemption, as submitit's executors configure it.
REQUEUE_SIGNAL = signal.SIGUSR2
# The exit status submitit itself exits with after requeueing.
REQUEUED_EXIT_STATUS = -1


def watch_requeue_signal(signum: int = REQUEUE_SIGNAL) -> None:
    """Wrap the Python handler of ``signum`` (submitit's) so that its exit is remembered.

    Does nothing when no Python handler is installed (not a submitit job) or when already wrapped.
    """
    handler = signal.getsignal(signum)
    if not callable(handler) or getattr(handler, "remembers_requeue", False):
        return

    def remember_requeue(number: int, frame: FrameType | None) -> None:
        try:
            handler(number, frame)
        except SystemExit:  # the handler requeued the job and ends this attempt
            REQUEUED.set()
            raise

    remember_requeue.remembers_requeue = True  # type: ignore[attr-defined]
    signal.signal(signum, remember_requeue)


def stop_if_requeued(before: str) -> None:
    """End this attempt (as submitit would have) if the job was requeued; ``before`` says where."""
    if REQUEUED.is_set():
        log.warning("the job was requeued; this attempt stops %s and the requeued one goes on", before)
        raise SystemExit(REQUEUED_EXIT_STATUS)
