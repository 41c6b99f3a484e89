"""Read W&B runs written offline (``wandb/offline-run-*``) without a server.

wandb 0.31 writes an offline run as one record log, ``run-<id>.wandb``; ``files/config.yaml`` and
``files/wandb-summary.json`` appear only once a run is synced (or when logged online). The log is
LevelDB's log format (32 KiB blocks of records: CRC-32, length, type, payload; a record can span
blocks) after a 7-byte W&B header, and each payload is a ``wandb.proto.wandb_internal_pb2.Record``.
Reading it needs only the protobuf module that wandb ships.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from character.errors import CharacterError

HEADER = b":W&B\xe1\xbe"  # identifier and magic; a version byte follows
HEADER_LENGTH = 7
BLOCK = 32 * 1024
RECORD_HEADER = struct.Struct("<IHB")  # crc32(type + payload), payload length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """What a job's run holds: identity, config, final summary, history rows and console output."""

    path: Path
    run_id: str = ""
    name: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    start_time: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    exit_code: int | None = None  # None: the run never finished (killed, or still running)


def iter_payloads(path: Path) -> Iterator[bytes]:
    """The record payloads of a ``.wandb`` file, in order; stops at a torn or corrupt tail."""
    data = path.read_bytes()
    if not data.startswith(HEADER):
        raise CharacterError(f"{path} is not a W&B run file (it does not start with the W&B header).")
    pos, pending = HEADER_LENGTH, b""
    while pos + RECORD_HEADER.size <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < RECORD_HEADER.size:  # block trailer: padding
            pos += left_in_block
            continue
        crc, length, kind = RECORD_HEADER.unpack_from(data, pos)
        start = pos + RECORD_HEADER.size
        payload = data[start : start + length]
        if kind == 0 and length == 0:  # zero padding up to the end of the block
            pos += left_in_block
            continue
        if len(payload) < length or zlib.crc32(bytes([kind]) + payload) != crc:
            return
        pos = start + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload
            pending = b""


def _key_path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _apply_updates(target: dict[str, Any], record: Any) -> None:
    """Replay a config or summary record: ``nested_key`` [a, b] sets ``target[a][b]`` (a media
    entry's fields, W&B's own ``_wandb`` values), as in wandb-summary.json."""
    for item in record.update:
        *parents, last = _key_path(item)
        node = target
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = json.loads(item.value_json)
    for item in record.remove:
        *parents, last = _key_path(item)
        node = target
        for part in parents:
            node = node.get(part) if isinstance(node.get(part), dict) else {}
        node.pop(last, None)


def read_datastore(path: Path, run: OfflineRun) -> None:
    """Fill ``run`` from the records of its ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    output: list[str] = []
    for payload in iter_payloads(path):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = record.run
            run.run_id, run.name, run.project = info.run_id, info.display_name, info.project
            run.group, run.job_type, run.tags = info.run_group, info.job_type, list(info.tags)
            run.start_time = info.start_time.seconds + info.start_time.nanos / 1e9
            _apply_updates(run.config, info.config)
        elif kind == "config":
            _apply_updates(run.config, record.config)
        elif kind == "summary":
            _apply_updates(run.summary, record.summary)
        elif kind == "history":
            run.history.append(
                {"/".join(_key_path(item)): json.loads(item.value_json) for item in record.history.item}
            )
        elif kind == "output_raw":
            output.append(record.output_raw.line)
        elif kind == "output":
            output.append(record.output.line)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    run.output = "".join(output)


def read_files(files: Path, run: OfflineRun) -> None:
    """Config and summary from a synced run's ``files/`` (config values are ``{value: ...}``)."""
    raw = yaml.safe_load((files / "config.yaml").read_text()) or {}
    run.config = {k: v.get("value") if isinstance(v, dict) else v for k, v in raw.items() if k != "_wandb"}
    run.summary = json.loads((files / "wandb-summary.json").read_text())


def read_offline_run(path: str | Path) -> OfflineRun:
    """One ``offline-run-*`` (or synced ``run-*``) directory."""
    path = Path(path)
    run = OfflineRun(path=path)
    datastores = sorted(path.glob("run-*.wandb"))
    files = path / "files"
    if datastores:
        read_datastore(datastores[0], run)
    if (files / "config.yaml").is_file() and (files / "wandb-summary.json").is_file():
        read_files(files, run)
    elif not datastores:
        raise CharacterError(
            f"{path} is not a W&B run directory: expected a run-<id>.wandb file or "
            "files/config.yaml and files/wandb-summary.json in it."
        )
    return run


def find_offline_runs(path: str | Path) -> list[Path]:
    """Run directories at ``path``: the path itself, or the runs under a ``wandb`` folder (or under
    the folder that holds one)."""
    path = Path(path)
    if list(path.glob("run-*.wandb")) or (path / "files" / "wandb-summary.json").is_file():
        return [path]
    for folder in (path, path / "wandb"):
        runs = sorted(p for p in folder.glob("*run-*") if p.is_dir() and p.name != "latest-run")
        if runs:
            return runs
    return []
