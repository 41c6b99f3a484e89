"""What a job prints: a line per stage, progress bars and a summary; the details go to ``logs/``.

A tiny job used to print about 1,300 lines, nearly all INFO and WARNING records of vLLM, DeepSpeed,
transformers and torch, among which the few a person needs (which stage runs, how far it is, what
failed, where the results are) were lost. With ``verbose=false`` (the default), for the job's
duration (``console_session``):

- the console shows the ``console`` logger (stage lines, summary), warnings and errors of our own
  ``character.*`` loggers, errors of every other logger, and our progress bars;
- every log record, Python warning (``logging.captureWarnings``) and line a library writes to
  ``sys.stdout``/``sys.stderr`` (its own progress bars, ``print``, handlers bound to those streams)
  is written to ``<run_dir>/logs/<stage>.log`` (``logs/pipeline.log`` between stages);
- vLLM leaves its logging to ours (``VLLM_CONFIGURE_LOGGING=0``: its records reach our handlers
  with their levels) and torch's C++ logging stops at errors (``TORCH_CPP_LOG_LEVEL``). What C code
  writes straight to the file descriptors cannot be caught in-process without hiding real crashes,
  so it is left alone; the trainers run in a subprocess whose whole output is piped to a file.

``verbose=true`` leaves the console as it always was: every library prints what it prints.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

# The logger whose records the console always shows. Not under ``character``: its lines say again
# what the runner's own lines say, so logs/pipeline.log leaves them out.
CONSOLE_LOGGER = "console"
# Process-wide settings that quieten libraries that read them when they are first imported; set
# only where the user has not set them, and removed again for the trainer subprocesses (whose
# output goes to a file whole).
QUIET_ENVIRONMENT = {"VLLM_CONFIGURE_LOGGING": "0", "TORCH_CPP_LOG_LEVEL": "ERROR"}
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers left printing through their own handlers: the job machinery's (submitit's notes on
# signals and requeues belong in the SLURM job's log, where people look for them).
OWN_HANDLERS_KEPT = ("submitit", "hydra")
# Progress bars on a terminal redraw in place; in a file (SLURM logs, CI) each redraw is a line,
# so there a bar is drawn only once a batch has run this long, and then at this interval.
FILE_BAR_INTERVAL_S = 60.0

console = logging.getLogger(CONSOLE_LOGGER)


@dataclass
class _State:
    verbose: bool = True  # outside a console session (library use, tests) nothing changes
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    environment_set: dict[str, str] = field(default_factory=dict)
    stage: str | None = None  # the stage whose log file is open, if any


_state = _State()


def is_verbose() -> bool:
    """False inside a quiet console session: libraries' output is kept for the log files."""
    return _state.verbose


class ConsoleFilter(logging.Filter):
    """Which records the console shows: ours from WARNING, everyone else's from ERROR."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "console", True) is False:  # e.g. a traceback meant for the log file only
            return False
        if _under(record.name, CONSOLE_LOGGER):
            return True
        if _under(record.name, "character") or _under(record.name, "launchers"):
            return record.levelno >= logging.WARNING
        return record.levelno >= logging.ERROR


class _ConsoleHandler(logging.StreamHandler):
    """A console handler that never writes into the middle of a live progress bar: on a terminal
    it goes through ``tqdm.write``, which clears the bars, prints, and redraws them."""

    def emit(self, record: logging.LogRecord) -> None:
        if not _is_terminal(self.stream):
            super().emit(record)
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's own contract: report, never raise
            self.handleError(record)


class _StreamToLog(io.TextIOBase):
    """Stands in for ``sys.stdout``/``sys.stderr``: each complete line becomes an INFO record of
    the ``stdout``/``stderr`` logger, so what libraries print lands in the log files.

    A carriage return starts the line over (a progress bar redrawing itself), so a bar leaves its
    final state only. ``fileno`` is the real stream's: code that needs a file descriptor (C
    extensions, ``faulthandler``, subprocesses) gets the terminal, as it would without us.
    """

    def __init__(self, name: str, real: TextIO) -> None:
        super().__init__()
        self._log = logging.getLogger(name)
        self._real = real
        self._pending = ""
        self._lock = threading.RLock()
        self._local = threading.local()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._real.fileno()

    def write(self, text: str) -> int:
        if getattr(self._local, "emitting", False):
            # A handler of the record being logged wrote to this stream (logging's last resort,
            # or its error report): straight to the real stream, not round again.
            return self._real.write(text)
        with self._lock:
            *lines, self._pending = (self._pending + text).split("\n")
            self._pending = self._pending.rsplit("\r", 1)[-1]
            self._local.emitting = True
            try:
                for line in lines:
                    line = line.rsplit("\r", 1)[-1].rstrip()
                    if line:
                        self._log.info(line)
            finally:
                self._local.emitting = False
        return len(text)

    def flush(self) -> None:
        pass  # a partial line stays pending until its newline (a bar redraws it meanwhile)


@contextmanager
def console_session(verbose: bool) -> Iterator[None]:
    """Quiet the console for one job (see the module docstring); ``verbose`` changes nothing.

    Undone on the way out, before the launcher prints an error or Hydra a traceback, so those
    reach the real terminal.
    """
    previous = _state.verbose
    _state.verbose = verbose
    if verbose:
        try:
            yield
        finally:
            _state.verbose = previous
        return
    for name, value in QUIET_ENVIRONMENT.items():
        if name not in os.environ:
            os.environ[name] = value
            _state.environment_set[name] = value
    root = logging.getLogger()
    original_handlers = list(root.handlers)
    _state.stdout, _state.stderr = sys.stdout, sys.stderr
    handler = _console_handler(_state.stdout)
    root.handlers = [h for h in original_handlers if not _is_console_handler(h)] + [handler]
    logging.captureWarnings(True)
    try:
        with (
            redirect_stdout(_StreamToLog("stdout", _state.stdout)),
            redirect_stderr(_StreamToLog("stderr", _state.stderr)),
        ):
            adopt_library_loggers()
            yield
    finally:
        logging.captureWarnings(False)
        root.handlers = original_handlers
        handler.close()
        _state.verbose = previous


def subprocess_environment() -> dict[str, str]:
    """The environment for a trainer subprocess: ours, less the quietening settings we added
    (its output goes whole to a log file, so nothing needs quietening there)."""
    return {k: v for k, v in os.environ.items() if _state.environment_set.get(k) != v}


def adopt_library_loggers() -> None:
    """Route loggers that print through a handler of their own (DeepSpeed's on stdout, the
    transformers one on stderr) through ours instead, so the console filter and the log files
    apply to them. Called at session start and around every stage, since libraries set up their
    loggers when first imported, mid-job."""
    if _state.verbose:
        return
    for name, logger in list(logging.root.manager.loggerDict.items()):
        kept = ("character", CONSOLE_LOGGER, *OWN_HANDLERS_KEPT)
        if not isinstance(logger, logging.Logger) or any(_under(name, prefix) for prefix in kept):
            continue
        printing = [h for h in logger.handlers if _is_console_handler(h)]
        if printing:
            for handler in printing:
                logger.removeHandler(handler)
            logger.propagate = True


def progress(*, total: int | None, desc: str, unit: str, initial: int = 0) -> tqdm:
    """A progress bar: rate, ETA and a postfix the caller sets (e.g. tokens/s, loss).

    In a quiet session it draws on the real console, transient on a terminal (the stage's end
    line replaces it), and only for long batches in a file; verbose, it is the bar as it was.
    """
    adopt_library_loggers()
    if _state.verbose:
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, mininterval=2)
    stream = _state.stdout
    if _is_terminal(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, leave=False)
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=stream,
        mininterval=FILE_BAR_INTERVAL_S,
        maxinterval=FILE_BAR_INTERVAL_S,
        delay=FILE_BAR_INTERVAL_S,
    )


def job_log_filter(record: logging.LogRecord) -> bool:
    """logs/pipeline.log holds our records, and other loggers' only between stages (each stage's
    own file holds them while it runs); not the console's lines, which repeat the runner's."""
    if _under(record.name, "character"):
        return True
    return _state.stage is None and not _under(record.name, CONSOLE_LOGGER)


@contextmanager
def stage_log(run_dir: Path, name: str) -> Iterator[Path]:
    """Every record logged while a stage runs, whoever logs it, in ``logs/<stage>.log``."""
    path = run_dir / "logs" / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    previous, _state.stage = _state.stage, name
    adopt_library_loggers()
    try:
        yield path
    finally:
        adopt_library_loggers()
        _state.stage = previous
        root.removeHandler(handler)
        handler.close()


# --- the lines themselves ---------------------------------------------------------------------


def job_started(model: str, persona: str, run_dir: Path, stages: list[str]) -> None:
    console.info("%s on %s: %d stage(s) in %s", persona, model, len(stages), run_dir)


def job_plan(model: str, persona: str, run_dir: Path, plan: str) -> None:
    """``dry_run=true``: what the job would do, stage by stage (runner.describe_plan)."""
    console.info("%s on %s in %s, dry run (nothing runs or is written):\n%s", persona, model, run_dir, plan)


def stage_started(position: str, name: str, resuming: bool = False) -> None:
    console.info("%s %s: %s", position, name, "resuming an interrupted run" if resuming else "running")


def stage_skipped(position: str, name: str) -> None:
    console.info("%s %s: up to date, skipped", position, name)


def stage_restored(position: str, name: str, source: str) -> None:
    console.info("%s %s: restored from %s (same config and inputs), not recomputed", position, name, source)


def stage_reused(position: str, name: str, source: str) -> None:
    console.info(
        "%s %s: taken from the main run %s (same config and inputs), not recomputed", position, name, source
    )


def stage_finished(
    position: str, name: str, seconds: float, counts: Mapping[str, Any], metrics: Mapping[str, Any]
) -> None:
    brief = _brief(seconds, counts, metrics)
    console.info("%s %s: ran in %s%s", position, name, _duration(seconds), f"; {brief}" if brief else "")


def stage_failed(position: str, name: str, seconds: float, error: BaseException, log_path: Path) -> None:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    console.error(
        "%s %s: FAILED after %s: %s\n    details: %s", position, name, _duration(seconds), message, log_path
    )


def job_finished(run_dir: Path, ran: int, skipped: int, seconds: float) -> None:
    """The closing lines: what ran, and where the results, the report and the logs are."""
    report = run_dir / "report.md"
    lines = [f"done in {_duration(seconds)}: {ran} stage(s) ran, {skipped} skipped", f"  results  {run_dir}"]
    if report.exists():
        lines.append(f"  report   {report}")
    lines.append(f"  logs     {run_dir / 'logs'}")
    console.info("\n".join(lines))


def _brief(seconds: float, counts: Mapping[str, Any], metrics: Mapping[str, Any], width: int = 90) -> str:
    """The stage's scalar counts, its throughput and its loss, on one line of at most ``width``."""
    parts = [f"{key}={_number(value)}" for key, value in counts.items() if isinstance(value, int | float)]
    tokens = counts.get("completion_tokens")
    if isinstance(tokens, int | float) and seconds > 0:
        parts.append(f"{tokens / seconds:.0f} tok/s")
    final = next((metrics[k] for k in ("final_loss", "final_gpt_loss") if metrics.get(k) is not None), None)
    if final is not None:
        first = metrics.get("first_loss")
        start = f"{_number(first)} -> " if first is not None else ""
        parts.append(f"loss {start}{_number(final)}")
    text = ", ".join(parts)
    return text if len(text) <= width else text[: width - 3] + "..."


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _is_console_handler(handler: logging.Handler) -> bool:
    """A handler that prints to the terminal (or to our stand-ins for it), not to a file."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    terminals = (sys.__stdout__, sys.__stderr__, _state.stdout, _state.stderr)
    return isinstance(stream, _StreamToLog) or stream in terminals


class _ConsoleFormatter(logging.Formatter):
    """Stage lines as they are; a warning or error says so (and, from a library, which one)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if _under(record.name, CONSOLE_LOGGER) or record.levelno < logging.WARNING:
            return text
        source = "" if _under(record.name, "character") else f"[{record.name}] "
        return f"{record.levelname.lower()}: {source}{text}"


def _console_handler(stream: TextIO) -> logging.Handler:
    handler = _ConsoleHandler(stream)
    handler.setFormatter(_ConsoleFormatter("%(message)s"))
    handler.addFilter(ConsoleFilter())
    return handler
