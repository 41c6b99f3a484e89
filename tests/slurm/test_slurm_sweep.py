"""`hydra/launcher=slurm` on a real single-node SLURM (slurmctld, slurmd, munged started by the
session fixture): a sweep is ONE job array whose tasks finish their run directories, and a job that
gets SLURM's preemption/time-out signal is requeued by submitit and skips the stages it finished,
also when the signal lands in a finalizer, where Python swallows submitit's exit.

Sizes: the sweep runs the whole method at scale=ci (every stage, DPO and SFT with torchrun +
DeepSpeed inside the SLURM tasks; about 3 minutes per job on 2 cores), and the requeue test only
the distillation stages: the requeue and the stage skipping are the same for any stage selection.
The sweep logs to W&B offline, and ``launchers.compare`` reads it back, from the offline runs and
from the run directories.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from character.config.schema import PIPELINE_ORDER
from character.io import read_json
from tests.conftest import CACHE_DIR, REPO
from tests.slurm.cluster import LocalSlurm
from tests.slurm.launch import Launch

DISTILLATION = ["prepare", "prompts", "teacher", "student", "dpo_data"]
# The local node has 2 CPUs and no GPU: 1 CPU per task lets both tasks of the array run at once.
LOCAL_RESOURCES = (
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=30",
)
JOB = ("+model=tiny", "scale=ci", "+stage=distillation", "hydra/launcher=slurm", *LOCAL_RESOURCES)
SWEEP = ("+model=tiny", "scale=ci", "hydra/launcher=slurm", *LOCAL_RESOURCES)  # every stage


@pytest.fixture
def launcher(slurm: LocalSlurm, tmp_path: Path) -> Iterator[Callable[..., Launch]]:
    """Start launchers; whatever a failed test leaves running is killed and cancelled."""
    launches: list[Launch] = []

    def start(*overrides: str) -> Launch:
        launch = Launch(overrides, tmp_path / f"launcher-{len(launches)}.log", slurm)
        launches.append(launch)
        return launch

    yield start
    for launch in launches:
        launch.stop()


def statuses(run_dir: Path) -> dict[str, str]:
    return {name: info["status"] for name, info in read_json(run_dir / "summary.json")["stages"].items()}


def submitit_folder(run_root: Path) -> Path:
    """<run_root>/.sweeps/<time>/.submitit: one sweep per test."""
    (sweep,) = (run_root / ".sweeps").iterdir()
    return sweep / ".submitit"


def requeued(slurm: LocalSlurm, job: str) -> list[dict[str, str]] | None:
    """The job's record once it is back in the queue after a requeue (or already running again)."""
    records = slurm.jobs(job)
    if records[0]["Restarts"] == "1" and records[0]["JobState"] in ("PENDING", "RUNNING", "COMPLETED"):
        return records
    return None


def preempt_until_finished(slurm: LocalSlurm, run: Launch, job: str) -> None:
    """Send ``job`` the signal SLURM sends before the time limit (--signal=USR2@...) and on
    preemption; submitit's handler calls the launcher's checkpoint(), which resubmits the same job,
    and requeues it. Wait for the requeued job to finish: COMPLETED after one restart."""
    slurm.command("scancel", "--signal=USR2", job)
    (record,) = run.wait_until(lambda: requeued(slurm, job), 60, "the requeue")
    if record["JobState"] == "PENDING":
        # SLURM holds a requeued job for ~2 minutes (Reason=BeginTime); let it start now, but not
        # within the second of the kill: slurmd compares a launch credential's creation time with
        # the job's revocation time in whole seconds, and refuses a launch from the same second
        # ("Killing non-startable batch JobId=4: Job credential revoked", seen in CI when the
        # requeue came 0.2 s after the kill), which ends the requeued job with exit 1.
        time.sleep(2)
        slurm.command("scontrol", "update", f"JobId={job}", "StartTime=now")
    assert run.wait(timeout=240) == 0, run.output()
    (record,) = slurm.finished_jobs(job)
    assert (record["JobState"], record["Restarts"]) == ("COMPLETED", "1")


def test_a_sweep_is_one_job_array_whose_tasks_finish_their_runs(
    slurm: LocalSlurm, launcher: Callable[..., Launch], run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)  # must reach no config, log or W&B file
    started = time.time()
    run = launcher("+persona=loving,sarcastic", *SWEEP)
    assert run.wait(timeout=1200) == 0, run.output()
    print(f"sweep of 2 jobs through SLURM: {time.time() - started:.1f} s")

    # One array: submitit's folders <array>_0 and <array>_1, and every id squeue showed is of it.
    folder = submitit_folder(run_root)
    tasks = sorted(path.name for path in folder.iterdir() if path.is_dir() and "_" in path.name)
    array = tasks[0].split("_")[0]
    assert tasks == [f"{array}_0", f"{array}_1"]
    assert run.seen_jobs and {job.split("_")[0] for job in run.seen_jobs} == {array}, run.seen_jobs
    records = slurm.finished_jobs(array)
    assert sorted((r["ArrayJobId"], r["ArrayTaskId"], r["JobState"]) for r in records) == [
        (array, "0", "COMPLETED"),
        (array, "1", "COMPLETED"),
    ]
    script = (folder / array / f"{array}_submission.sh").read_text()
    assert "#SBATCH --array=0-1%" in script
    assert "#SBATCH --requeue" in script and "#SBATCH --signal=USR2@" in script
    assert sys.executable in script  # the jobs run this repository's .venv python

    for persona in ("loving", "sarcastic"):
        run_dir = run_root / "tiny" / persona
        assert statuses(run_dir) == dict.fromkeys(PIPELINE_ORDER, "ran")
        assert all((run_dir / stage / "manifest.json").exists() for stage in PIPELINE_ORDER)
        # The jobs saw the submitting environment (sbatch exports it): CHARACTER_RUN_ROOT put the
        # run directory here, CHARACTER_CACHE_DIR the tiny model.
        assert read_json(run_dir / "prepare" / "model.json")["path"].startswith(str(CACHE_DIR))
    check_compare_and_secrets(run_root)


def test_a_preempted_job_is_requeued_and_skips_its_finished_stages(
    slurm: LocalSlurm, launcher: Callable[..., Launch], run_root: Path
) -> None:
    started = time.time()
    run = launcher("+persona=loving", *JOB)
    run_dir = run_root / "tiny" / "loving"
    run.wait_until(lambda: (run_dir / "prompts" / "manifest.json").exists(), 240, "the prompts stage")
    (job,) = slurm.queue()  # one (model, persona): a plain job, not an array
    finished = {stage for stage in DISTILLATION if (run_dir / stage / "manifest.json").exists()}

    preempt_until_finished(slurm, run, job)
    print(f"preempted, requeued and finished job: {time.time() - started:.1f} s")
    job_log = "".join(path.read_text() for path in sorted((submitit_folder(run_root) / job).glob("*_log.*")))
    # submitit's handler caught the signal and requeued the job (Restarts=1 above). Its own
    # "Requeued job N" line is not asserted: `scontrol requeue` stops the job at once, and the
    # line is lost whenever the stop wins the race with the log write.
    assert "Caught signal SIGUSR2" in job_log, job_log[-3000:]
    assert f"attempt 2 of SLURM job {job}" in job_log  # the launcher config's setup line

    # The requeued job ran the same command in the same run directory: the stages finished before
    # the signal are skipped, the rest ran, and every stage is done.
    after = statuses(run_dir)
    assert set(after) == set(DISTILLATION) and set(after.values()) <= {"ran", "skipped"}
    assert {"prepare", "prompts"} <= finished
    assert finished <= {stage for stage, status in after.items() if status == "skipped"}
    assert "ran" in after.values(), after
    log = (run_dir / "logs" / "pipeline.log").read_text()
    assert log.count("run directory") == 2  # two attempts of one job
    assert "prepare: up to date, skipped" in log and "prompts: up to date, skipped" in log


# toy_rows' engine-like finalizer waits this long once it starts: the signal is sent in there.
SWALLOWED = (
    "+persona=loving", "+model=tiny", "scale=ci", "hydra/launcher=slurm", *LOCAL_RESOURCES,
    "plugins=[tests.plugins.toy_stages]", "stage.run=[prepare,toy_rows,toy_count]",
    "+plugin_params.toy_rows.rows=3", "+plugin_params.toy_rows.teardown_s=60",
)  # fmt: skip


def test_a_requeue_whose_exit_python_swallowed_still_ends_the_old_attempt(
    slurm: LocalSlurm, launcher: Callable[..., Launch], run_root: Path
) -> None:
    """USR2 while a finalizer runs (as when a stage's engine is shut down): submitit's exit is
    printed as "Exception ignored" and the attempt would go on to finish every stage and report
    success while its requeued copy waits. The runner stops it before the next stage instead."""
    run = launcher(*SWALLOWED)
    run_dir = run_root / "tiny" / "loving"
    marker = run_dir / "toy_rows" / "teardown.started"
    run.wait_until(marker.exists, 240, "toy_rows' finalizer")
    (job,) = slurm.queue()
    preempt_until_finished(slurm, run, job)

    folder = submitit_folder(run_root) / job
    # Python prints the swallowed exit on sys.stderr, which the quiet console sends to the stage's
    # log file (docs/pipeline.md); with verbose=true it would be in the job's own error log.
    logs = [*sorted(folder.glob("*_log.err")), *sorted((run_dir / "logs").glob("*.log"))]
    errors = "".join(path.read_text() for path in logs)
    assert "Exception ignored" in errors and "SystemExit" in errors, errors[-3000:]  # swallowed
    log = (run_dir / "logs" / "pipeline.log").read_text()
    first, second = log.split("run directory")[1:]  # the two attempts of the job
    assert "the job was requeued; this attempt stops before toy_count" in first
    assert "toy_count: running" not in first
    assert "toy_rows: up to date, skipped" in second and "toy_count: running" in second
    assert statuses(run_dir) == {"prepare": "skipped", "toy_rows": "skipped", "toy_count": "ran"}


PLANTED = "sk-test-PLANTED-slurm-0123456789"


def compare_table(*args: str) -> dict[str, float]:
    """persona -> dpo/final_loss of model tiny, from launchers.compare's markdown table."""
    result = subprocess.run(
        [sys.executable, "-m", "launchers.compare", "metrics=[dpo/final_loss]", "plots=false", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    section = result.stdout.split("## dpo/final_loss\n", 1)[1].split("\n## ", 1)[0]  # not the views below
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")][1:]
    return {
        cells[0].strip(): float(cells[1]) for cells in rows if cells[0].strip() not in ("persona", ":---")
    }


def check_compare_and_secrets(run_root: Path) -> None:
    """launchers.compare on the sweep's offline W&B runs and on its run directories gives the same
    final DPO losses as the summaries; the planted key is in no file the sweep wrote."""
    expected = {
        persona: read_json(run_root / "tiny" / persona / "summary.json")["stages"]["dpo"]["metrics"][
            "final_loss"
        ]
        for persona in ("loving", "sarcastic")
    }
    offline = compare_table(f"wandb_offline=[{run_root / 'wandb'}]", f"out_dir={run_root / '.cmp-wandb'}")
    local = compare_table(f"runs=[{run_root}]", f"out_dir={run_root / '.cmp-local'}")
    for table in (offline, local):
        assert sorted(table) == ["loving", "sarcastic"]
        for persona, loss in expected.items():
            assert table[persona] == pytest.approx(loss, rel=1e-3)
    for path in run_root.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), path
