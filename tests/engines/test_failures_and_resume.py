"""Failing servers are retried with backoff then named; an interrupted batch resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from character.engines.base import Sampling
from character.engines.batch import BatchItem, meta_path, run_batch
from character.engines.openai_engine import OpenAIEngine
from character.engines.server import free_port
from character.errors import CharacterError
from character.io import read_json, read_jsonl
from tests.conftest import REPO


class FaultInjectingServer:
    """A real HTTP server on 127.0.0.1 that answers the chat-completions route with programmed
    failures (HTTP 500 / 429, or too slow), after ``ok_first`` good answers. It exists because
    no real server can be told to fail on cue; it records when each request arrived."""

    def __init__(self, mode: str, ok_first: int = 0) -> None:
        self.mode, self.ok_first, self.arrivals = mode, ok_first, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.arrivals.append(time.monotonic())
                if len(owner.arrivals) <= owner.ok_first:
                    body = json.dumps(
                        {
                            "id": "x",
                            "object": "chat.completion",
                            "created": 0,
                            "model": "m",
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": "Fine."},
                                }
                            ],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
                        }
                    ).encode()
                    self._send(200, body)
                elif owner.mode == "slow":
                    time.sleep(1.5)
                    self._send(200, b"{}")
                else:
                    self._send(int(owner.mode), b'{"error": {"message": "injected failure"}}')

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


CONV = [[{"role": "user", "content": "Hi."}]]


@pytest.mark.parametrize("mode", ["500", "429", "slow"])
def test_bounded_retries_with_backoff_then_a_clear_error(mode: str) -> None:
    server = FaultInjectingServer(mode)
    try:
        engine = OpenAIEngine(server.url, "m", max_retries=2, timeout_s=0.5, max_concurrency=1)
        with pytest.raises(CharacterError) as error:
            engine.generate(CONV, Sampling(max_tokens=4))
        assert server.url in str(error.value) and "after up to 2 retries" in str(error.value)
        if mode != "slow":
            assert f"HTTP {mode}" in str(error.value)
        assert len(server.arrivals) == 3  # one try + 2 retries, then it stops
        gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
        if mode != "slow":  # exponential backoff: each wait longer than the one before
            assert 0.3 < gaps[0] < gaps[1]
    finally:
        server.close()


def test_server_down_names_the_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = OpenAIEngine(url, "m", max_retries=1, timeout_s=1)
    with pytest.raises(CharacterError, match=f"endpoint {url}.*APIConnectionError"):
        engine.generate(CONV, Sampling(max_tokens=4))


def test_missing_api_key_variable_is_named(monkeypatch) -> None:
    monkeypatch.delenv("TEACHER_KEY_FOR_TEST", raising=False)
    with pytest.raises(CharacterError, match="TEACHER_KEY_FOR_TEST"):
        OpenAIEngine("http://127.0.0.1:1/v1", "m", api_key_env="TEACHER_KEY_FOR_TEST")


def test_a_failing_chunk_records_no_partial_row(tmp_path: Path) -> None:
    server = FaultInjectingServer("500", ok_first=2)
    try:
        engine = OpenAIEngine(server.url, "m", max_retries=1, max_concurrency=2)
        items = [BatchItem(id=f"r{i}", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(6)]
        out = tmp_path / "rows.jsonl"
        with pytest.raises(CharacterError):
            run_batch(engine, items, Sampling(max_tokens=4), out, chunk_size=2)
        assert [row["id"] for row in read_jsonl(out)] == ["r0", "r1"]  # only the finished chunk
        assert read_json(meta_path(out))["status"] == "running"
    finally:
        server.close()


BATCH_SCRIPT = """
import sys
from character.engines.base import Sampling
from character.engines.batch import BatchItem, run_batch
from character.engines.transformers_engine import TransformersEngine
engine = TransformersEngine(sys.argv[1], dtype="float32", batch_size=2)
items = [BatchItem(id=f"row-{i}", messages=[{"role": "user", "content": f"Tell me fact {i}."}]) for i in range(30)]
run_batch(engine, items, Sampling(temperature=0.7, max_tokens=12, seed=0), __import__("pathlib").Path(sys.argv[2]), chunk_size=2)
"""


def test_killed_batch_run_resumes_with_every_row_once(tmp_path: Path, tiny_model: str) -> None:
    out = tmp_path / "rows.jsonl"
    command = [sys.executable, "-c", BATCH_SCRIPT, tiny_model, str(out)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 8):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = [row["id"] for row in read_jsonl(out)]
    assert 8 <= len(before) < 30
    subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=300)
    rows = read_jsonl(out)
    assert sorted(row["id"] for row in rows) == sorted(f"row-{i}" for i in range(30))
    assert [row["id"] for row in rows[: len(before)]] == before  # earlier rows kept, not redone
    meta = read_json(meta_path(out))
    assert meta["status"] == "complete" and meta["rows_resumed"] == len(before)
    assert meta["engine"]["backend"] == "transformers" and meta["sampling"]["seed"] == 0
    assert all(row["texts"] and row["completion_tokens"][0] > 0 for row in rows)
