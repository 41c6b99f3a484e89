"""Data-parallel generation: several copies of one engine, each in its own process on its own GPUs.

A 4-8B model fits one GPU, so on a node with eight of them, eight replicas of the engine (each
with ``tensor_parallel_size`` GPUs) generate eight times as fast as one, where tensor parallelism
over eight GPUs would mostly add communication. A batch is cut into contiguous slices, one per
replica, generated at the same time, and put back in order. Every row keeps its own seed, so a
replicated vLLM engine returns what a single one would.

Each replica is a spawned Python process that sees only its GPUs (``CUDA_VISIBLE_DEVICES`` is set
before anything imports torch) and talks to this process over a pipe. This module imports
nothing heavy at the top, because every spawned replica imports it first. A replica builds its
engine with the ``build`` function it is given (``factory.build_replica``), so this module does not
import the factory that creates it.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Callable
from typing import Any

from character.engines.base import (
    Choices,
    Conversation,
    Engine,
    EngineInfo,
    Generation,
    LoraAdapter,
    Sampling,
)
from character.errors import CharacterError

ReplicaBuilder = Callable[[dict[str, Any], str, bool], Engine]


def _replica_main(
    connection: Any,
    build: ReplicaBuilder,
    engine_cfg: dict[str, Any],
    model_path: str,
    system_role: bool,
    gpus: str | None,
) -> None:
    """The replica process: build the engine, then answer requests until told to stop."""
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    try:
        engine = build(engine_cfg, model_path, system_role)
        connection.send(("ready", engine.info))
    except BaseException:  # noqa: BLE001  (reported to the parent, which raises it)
        connection.send(("error", traceback.format_exc()))
        return
    while True:
        request = connection.recv()
        if request is None:
            engine.close()
            connection.send(("closed", None))
            return
        try:
            connection.send(("ok", engine.generate(*request)))
        except BaseException:  # noqa: BLE001
            connection.send(("error", traceback.format_exc()))


def gpu_slices(replicas: int, gpus_per_replica: int, visible: list[str]) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value of each replica; None for all of them without GPUs."""
    if not visible:
        return [None] * replicas
    needed = replicas * gpus_per_replica
    if needed > len(visible):
        raise CharacterError(
            f"data_parallel_size={replicas} x tensor_parallel_size={gpus_per_replica} needs {needed} GPUs, "
            f"but {len(visible)} are visible ({','.join(visible)}); lower one of them."
        )
    return [",".join(visible[r * gpus_per_replica : (r + 1) * gpus_per_replica]) for r in range(replicas)]


def visible_gpus() -> list[str]:
    """The GPU ids this process may use (CUDA_VISIBLE_DEVICES, or every device torch sees)."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [d for d in declared.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def slices(n: int, parts: int) -> list[range]:
    """``n`` rows cut into ``parts`` contiguous, nearly equal ranges (some empty when n < parts)."""
    size, extra = divmod(n, parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (1 if part < extra else 0))
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


class ReplicatedEngine(Engine):
    """``replicas`` copies of the engine ``engine_cfg`` describes, used as one engine.

    ``build(engine_cfg, model_path, system_role)`` creates one copy in its replica's process; it
    must be a module-level function (the spawned process unpickles it by name) whose module imports
    nothing heavy at the top, since it is imported before the replica's GPUs are set.
    """

    def __init__(
        self,
        engine_cfg: dict[str, Any],
        model_path: str,
        system_role: bool,
        replicas: int,
        *,
        build: ReplicaBuilder,
    ) -> None:
        super().__init__()
        if replicas < 2:
            raise CharacterError(f"data_parallel_size={replicas}: a replicated engine needs at least 2.")
        # the replicas (vLLM / transformers, built from the same config) constrain when this is set
        self.constrains_choices = bool(engine_cfg.get("constrained_answers", True))
        gpus = gpu_slices(replicas, int(engine_cfg.get("tensor_parallel_size", 1)), visible_gpus())
        context = multiprocessing.get_context("spawn")
        self._connections = []
        self._processes = []
        for replica_gpus in gpus:
            parent, child = context.Pipe()
            process = context.Process(
                target=_replica_main,
                args=(child, build, engine_cfg, model_path, system_role, replica_gpus),
                daemon=True,
            )
            process.start()
            self._connections.append(parent)
            self._processes.append(process)
        infos = [self._receive(i) for i in range(replicas)]
        first = infos[0]
        self._info = EngineInfo(
            backend=first.backend,
            model=first.model,
            details={**first.details, "data_parallel_size": replicas, "replica_gpus": gpus},
        )

    def _receive(self, replica: int) -> Any:
        try:
            status, payload = self._connections[replica].recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"engine replica {replica} exited without answering") from None
        if status == "error":
            self.close()
            raise RuntimeError(f"engine replica {replica} failed:\n{payload}")
        return payload

    @property
    def info(self) -> EngineInfo:
        return self._info

    def _generate(
        self,
        conversations: list[Conversation],
        sampling: Sampling,
        prefills: list[str | None],
        lora: LoraAdapter | None,
        seeds: list[int | None],
        choices: list[Choices | None] | None = None,
    ) -> list[Generation]:
        parts = slices(len(conversations), len(self._connections))
        row_choices = choices if choices is not None else [None] * len(conversations)
        busy = []
        for replica, part in enumerate(parts):
            if len(part):
                request = ([conversations[i] for i in part], sampling, [prefills[i] for i in part], lora)
                per_row = ([seeds[i] for i in part], [row_choices[i] for i in part])
                self._connections[replica].send((*request, *per_row))
                busy.append(replica)
        results: list[Generation] = []
        for replica in busy:  # in slice order, so the rows come back in input order
            results.extend(self._receive(replica))
        return results

    def close(self) -> None:
        for connection, process in zip(self._connections, self._processes, strict=True):
            if process.is_alive():
                try:
                    connection.send(None)
                    if connection.poll(60):
                        connection.recv()
                except (BrokenPipeError, EOFError, OSError):
                    pass
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        self._connections, self._processes = [], []
