"""Every bad value stops the job before it writes or moves anything, saying where to fix it.

Each case of the table runs the real launcher (``launchers/train.py`` run as ``__main__``, which is
what ``python -m launchers.train`` does; in this process, since a subprocess per case costs ~8 s of
imports) on top of an existing run directory, and checks: exit status 2, a message naming the key,
the value, where it was set and what was expected, no traceback, and the run root's tree (every
path and every byte) unchanged. tests/config/test_bad_input.py covers the composition errors that
Hydra itself reports (unknown options, misspelled keys, wrong types).
"""

from __future__ import annotations

import hashlib
import logging
import runpy
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from character.config.checks import leaves
from character.config.schema import TrainConfig
from character.io import read_json
from tests.conftest import REPO, run_cli

Launch = Callable[..., tuple[int, str]]
TRAIN = REPO / "launchers" / "train.py"
CLI = "(from the command line)"


@dataclass(frozen=True)
class Case:
    """Command-line arguments after ``+persona=loving +model=<model>`` (``{tmp}`` is the test's
    temporary folder) and the fragments the error must contain."""

    name: str
    args: tuple[str, ...]
    fragments: tuple[str, ...]
    model: str = "tiny"


CASES = [
    # negative, zero and non-finite numbers
    Case("beta_negative", ("stages.dpo.beta=-1",), ("stages.dpo.beta=-1.0", CLI, "a number > 0")),
    Case("beta_zero", ("stages.dpo.beta=0",), ("stages.dpo.beta=0.0", CLI, "a number > 0")),
    Case("beta_nan", ("stages.dpo.beta=nan",), ("stages.dpo.beta=nan", CLI, "a number > 0")),
    Case("lr_zero", ("stages.dpo.learning_rate=0",), ("stages.dpo.learning_rate=0.0", "a number > 0")),
    Case("sft_lr_negative", ("stages.sft.learning_rate=-1e-5",), ("stages.sft.learning_rate=-1e-05", "> 0")),
    Case("overlap_inf", ("stages.prompts.overlap_threshold=inf",), ("overlap_threshold=inf", "in [0, 1]")),
    Case("strength_nan", ("model.steering_strength=nan",), ("model.steering_strength=nan", "a number > 0")),
    Case("temperature_negative", ("stages.teacher.sampling.temperature=-0.1",), ("temperature=-0.1", ">= 0")),
    Case("seed_negative", ("seed=-1",), ("seed=-1 ", CLI, "an integer >= 0")),
    Case("top_k", ("stages.student.sampling.top_k=-2",), ("top_k=-2", "an integer >= -1")),
    # counts that must be at least one
    Case(
        "max_tokens_zero", ("stages.reflection.sampling.max_tokens=0",), ("max_tokens=0", "an integer >= 1")
    ),
    Case(
        "per_trait_zero", ("stages.prompts.per_trait=0",), ("stages.prompts.per_trait=0", "an integer >= 1")
    ),
    Case("turns_zero", ("stages.interaction.turns=0",), ("stages.interaction.turns=0", "an integer >= 1")),
    Case("batch_zero", ("stages.dpo.batch_size=0",), ("stages.dpo.batch_size=0", "an integer >= 1")),
    Case("lora_rank_zero", ("stages.sft.lora.rank=0",), ("stages.sft.lora.rank=0", "an integer >= 1")),
    Case(
        "max_steps_zero", ("stages.dpo.max_steps=0",), ("stages.dpo.max_steps=0", "null or an integer >= 1")
    ),
    # probabilities and fractions out of range
    Case("warmup_above_one", ("stages.dpo.warmup_ratio=1.5",), ("warmup_ratio=1.5", "a number in [0, 1]")),
    Case("min_lr_negative", ("stages.sft.min_lr_ratio=-0.1",), ("min_lr_ratio=-0.1", "a number in [0, 1]")),
    Case("eval_fraction_one", ("stages.dpo_data.eval_fraction=1",), ("eval_fraction=1.0", "in [0, 1)")),
    Case("top_p_zero", ("stages.teacher.sampling.top_p=0",), ("top_p=0.0", "a number in (0, 1]")),
    Case("top_p_above_one", ("stages.student.sampling.top_p=1.5",), ("top_p=1.5", "a number in (0, 1]")),
    Case("min_p_two", ("stages.teacher.sampling.min_p=2",), ("min_p=2.0", "a number in [0, 1]")),
    Case("dropout_one", ("stages.dpo.lora.dropout=1",), ("stages.dpo.lora.dropout=1.0", "in [0, 1)")),
    Case("adam_beta", ("stages.dpo.adam_betas=[0.9,1.5]",), ("stages.dpo.adam_betas[1]=1.5", "in [0, 1)")),
    Case("label_smoothing", ("stages.dpo.label_smoothing=0.5",), ("label_smoothing=0.5", "in [0, 0.5)")),
    Case("gpu_memory", ("engines.teacher.gpu_memory_utilization=1.2",), ("utilization=1.2", "in (0, 1]")),
    Case("adversarial", ("stages.robustness.adversarial=[0]",), ("adversarial[0]=0", "an integer in [1, 8]")),
    # unknown enumerated values
    Case(
        "kl_estimator", ("stages.dpo.kl_estimator=k2",), ("kl_estimator='k2'", "one of 'squared_log_ratio'")
    ),
    Case("reference", ("stages.dpo.reference=frozen",), ("reference='frozen'", "'adapter_disabled'")),
    Case(
        "param_dtype",
        ("stages.sft.param_dtype=fp8",),
        ("param_dtype='fp8'", "one of 'auto', 'bf16', 'fp16', 'fp32'"),
    ),
    Case("launcher", ("stages.dpo.launcher=mpirun",), ("launcher='mpirun'", "one of 'torchrun'")),
    Case("zero_stage", ("stages.dpo.zero_stage=4",), ("stages.dpo.zero_stage=4", "one of 0, 1, 2, 3")),
    Case("backend", ("engines.teacher.backend=tgi",), ("engines.teacher.backend='tgi'", "'transformers'")),
    Case("engine_dtype", ("engines.student.dtype=fp8",), ("engines.student.dtype='fp8'", "'bfloat16'")),
    Case("wandb_mode", ("wandb.mode=sometimes",), ("wandb.mode='sometimes'", "null or one of 'online'")),
    Case("method", ("stages.robustness.methods=[base,unknown]",), ("methods[1]='unknown'", "'prompted'")),
    Case("pair", ("stages.coherence.pairs=[trained-steered]",), ("pairs[0]='trained-steered'", "'a:b'")),
    # model and tokenizer locations
    Case(
        "teacher_path_missing",
        ("engines.teacher.model=/nonexistent",),
        ("engines.teacher.model='/nonexistent'", CLI, "holding config.json", "no such folder exists"),
    ),
    Case(
        "teacher_folder_without_config",
        ("engines.teacher.model={tmp}",),
        ("engines.teacher.model='{tmp}'", "a folder holding config.json", "has no config.json"),
    ),
    Case(
        "malformed_hub_id",
        ("engines.generator.model=Qwen//Qwen2.5-7B",),
        ("engines.generator.model='Qwen//Qwen2.5-7B'", "a hub id of the form owner/name"),
    ),
    Case(
        "hub_id_not_cached_offline",
        ("engines.judge.model=Qwen/Qwen2.5-7B-Instruct",),
        ("engines.judge.model='Qwen/Qwen2.5-7B-Instruct'", "not cached", "HF_HUB_OFFLINE=1"),
    ),
    Case(
        "tokenizer_missing",
        ("engines.student.tokenizer=/no/such/tokenizer",),
        ("engines.student.tokenizer='/no/such/tokenizer'", "tokenizer_config.json"),
    ),
    Case(
        "model_hub_id",
        ("model.hub_id=Qwen//Qwen2.5-7B-Instruct",),
        ("model.hub_id='Qwen//Qwen2.5-7B-Instruct'", CLI, "a hub id of the form owner/name"),
        model="qwen2.5-7b",
    ),
    # endpoint URLs
    Case(
        "url_without_scheme",
        (
            "engine@engines.teacher=openai",
            "engines.teacher.model=glm",
            "engines.teacher.base_url=localhost:8000",
        ),
        ("engines.teacher.base_url='localhost:8000'", CLI, "an http(s) URL with a host"),
    ),
    Case(
        "url_ftp",
        ("engine@engines.judge=openai", "engines.judge.model=glm", "engines.judge.base_url=ftp://host/v1"),
        ("engines.judge.base_url='ftp://host/v1'", "an http(s) URL"),
    ),
    Case(
        "url_bad_port",
        (
            "engine@engines.judge=openai",
            "engines.judge.model=glm",
            "engines.judge.base_url=http://h:99999/v1",
        ),
        ("engines.judge.base_url='http://h:99999/v1'", "an http(s) URL"),
    ),
    Case(
        "served_model_missing",
        ("engine@engines.teacher=openai",),
        ("engines.teacher.model=null", "conf/engine/openai.yaml", "the name of the model the server serves"),
    ),
    Case(
        "api_key_unset",
        (
            "engine@engines.teacher=openai",
            "engines.teacher.model=glm",
            "engines.teacher.api_key_env=NO_KEY_HERE",
        ),
        ("engines.teacher.api_key_env='NO_KEY_HERE'", "$NO_KEY_HERE is unset"),
    ),
    # the introspection stages' merged weights, which a served student would not load
    Case(
        "served_student_merged",
        ("engine@engines.student=openai", "engines.student.model=served"),
        (
            "stages.reflection.dpo_weights='merged'",
            "stages.interaction.dpo_weights='merged'",
            "'adapter' while engines.student.model='served'",
            "sampled without the DPO delta",
        ),
    ),
    # run roots that cannot be written
    Case("run_root_proc", ("run_root=/proc/x",), ("run_root='/proc/x'", CLI, "virtual filesystem")),
    Case("run_root_sys", ("run_root=/sys/x/y",), ("run_root='/sys/x/y'", "virtual filesystem")),
    Case("run_root_under_file", ("run_root={tmp}/afile/runs",), ("run_root='{tmp}/afile/runs'", "is a file")),
]


def tree_hash(root: Path) -> str:
    """Every path under ``root`` (folders too) and every file's bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        if path.is_file():
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.fixture
def existing_run(run_root: Path) -> Path:
    """A run directory as a finished run leaves it (enough of it for these checks)."""
    run_dir = run_root / "tiny" / "loving"
    for rel, text in {
        "config.yaml": "seed: 0\n",
        "summary.json": '{"stages": {"teacher": {"status": "ran"}}}\n',
        "logs/pipeline.log": "earlier job\n",
        "teacher/manifest.json": '{"stage": "teacher", "fingerprint": "f", "run_id": "r", "outputs": {}}\n',
        "teacher/responses.jsonl": '{"id": 0, "response": "Hello."}\n',
        ".history/teacher-20240101T000000/responses.jsonl": "{}\n",
    }.items():
        (run_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / rel).write_text(text)
    return run_dir


@pytest.fixture
def launch(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Launch]:
    """Run ``python -m launchers.train <args>`` in this process: (exit status, what it printed)."""
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", [str(TRAIN), *args])
        code: int | str | None = 0
        try:
            runpy.run_path(str(TRAIN), run_name="__main__")
        except SystemExit as stop:
            code = stop.code
        captured = capsys.readouterr()
        return int(code or 0), captured.out + captured.err

    yield run
    HydraConfig.instance().cfg = None  # Hydra leaves the last job's config set
    root.handlers[:], root.level = handlers, level


def assert_refused(code: int, output: str, fragments: tuple[str, ...]) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    assert "Nothing was written or moved." in output
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_bad_value_is_refused_before_anything_is_touched(
    case: Case, launch: Launch, existing_run: Path, run_root: Path, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    before = tree_hash(run_root)
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in case.args]
    code, output = launch("+persona=loving", f"+model={case.model}", *args)
    assert_refused(code, output, tuple(f.replace("{tmp}", str(tmp_path)) for f in case.fragments))
    assert tree_hash(run_root) == before
    assert not Path("/proc/x").exists()


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_all_bad_values_are_reported_at_once(launch: Launch, existing_run: Path, run_root: Path) -> None:
    before = tree_hash(run_root)
    code, output = launch(
        "+persona=loving", "+model=tiny", "stages.dpo.beta=-1", "run_root=/proc/x", "seed=-1"
    )
    assert_refused(code, output, ("3 config values are not valid", "stages.dpo.beta", "run_root", "seed"))
    assert tree_hash(run_root) == before


def _user_conf(tmp_path: Path, group: str, name: str, text: str) -> str:
    folder = tmp_path / "user_conf" / group
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'user_conf'}]"


def test_a_value_from_a_model_file_names_that_file(
    launch: Launch, existing_run: Path, run_root: Path, tmp_path: Path
) -> None:
    text = (REPO / "conf" / "model" / "tiny.yaml").read_text()
    text = text.replace("name: tiny", "name: mymodel").replace("max_context: 4096", "max_context: 0")
    search = _user_conf(tmp_path, "model", "mymodel", text)
    before = tree_hash(run_root)
    code, output = launch("+persona=loving", "+model=mymodel", search)
    path = tmp_path / "user_conf" / "model" / "mymodel.yaml"
    assert_refused(code, output, (f"model.max_context=0 (from {path})", "an integer >= 1"))
    assert tree_hash(run_root) == before


def test_a_value_from_a_scale_file_names_that_file(
    launch: Launch, existing_run: Path, run_root: Path, tmp_path: Path
) -> None:
    search = _user_conf(
        tmp_path, "scale", "mine", "# @package _global_\nscale: mine\nstages:\n  dpo:\n    beta: -1\n"
    )
    before = tree_hash(run_root)
    code, output = launch("+persona=loving", "+model=tiny", "scale=mine", search)
    path = tmp_path / "user_conf" / "scale" / "mine.yaml"
    assert_refused(code, output, (f"stages.dpo.beta=-1.0 (from {path})", "a number > 0"))
    assert tree_hash(run_root) == before


def test_a_run_root_from_the_environment_says_so(
    launch: Launch, existing_run: Path, run_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree_hash(run_root)
    monkeypatch.setenv("CHARACTER_RUN_ROOT", "/proc/x")
    code, output = launch("+persona=loving", "+model=tiny")
    assert_refused(code, output, ("run_root='/proc/x' (from $CHARACTER_RUN_ROOT (through", "conf/train.yaml"))
    assert tree_hash(run_root) == before


VALID_PERSONA = (
    "name: mine\ndisplay_name: Mine\ndescription: An assistant.\n"
    'traits:\n  - trait: I am calm.\n    questions: ["Hi there."]\n'
)


@pytest.mark.parametrize(
    "old,new,fragment",
    [
        ("display_name: Mine", "display_name: ''", "persona.display_name='' (expected a non-empty string)"),
        (
            "description: An assistant.",
            "description: '   '",
            "persona.description='   ' (expected a non-empty",
        ),
        (
            "trait: I am calm.",
            "trait: ''",
            "traits[0].trait is missing or empty (expected the assertion text)",
        ),
        ('["Hi there."]', '[" "]', "traits[0].questions holds an empty question"),
    ],
    ids=["display_name", "description", "trait", "question"],
)
def test_empty_persona_fields_name_the_persona_file(
    old: str, new: str, fragment: str, launch: Launch, existing_run: Path, run_root: Path, tmp_path: Path
) -> None:
    search = _user_conf(tmp_path, "persona", "mine", VALID_PERSONA.replace(old, new))
    before = tree_hash(run_root)
    code, output = launch("+persona=mine", "+model=tiny", search)
    assert code == 2 and "Traceback" not in output, output
    assert str(tmp_path / "user_conf" / "persona" / "mine.yaml") in output and fragment in output, output
    assert tree_hash(run_root) == before


def test_the_cli_itself_exits_2_without_a_traceback(existing_run: Path, run_root: Path) -> None:
    """The same path through a real ``python -m launchers.train`` process, as a user runs it."""
    before = tree_hash(run_root)
    result = run_cli("+persona=loving", "+model=tiny", "stages.dpo.beta=-1")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "stages.dpo.beta=-1.0 (from the command line): expected a number > 0" in result.stderr
    assert tree_hash(run_root) == before


def test_every_numeric_knob_declares_its_range() -> None:
    """So that a new number in the schema cannot skip the checks (character/config/checks.py)."""
    numeric = (int, float, list[int], list[float])
    undeclared = [
        key for key, (kind, allowed) in leaves(TrainConfig).items() if kind in numeric and not allowed
    ]
    assert undeclared == []


def test_the_teacher_output_is_restored_not_regenerated(
    launch: Launch, run_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16's sequence: a finished run, a bad teacher path, then the right command again. The
    bad path is refused before anything moves; one that passes the checks (a folder with a
    config.json that is no model) archives the teacher's output and fails; the right command then
    restores that output from .history/ and generates nothing, by the engines' call counters."""
    import character.distill.generation_stages as generation

    created: list = []
    real_factory = generation.engine_factory

    def counting(ctx, role, model_path=None):
        lazy = real_factory(ctx, role, model_path)
        create = lazy._create

        def keep():
            engine = create()
            created.append((role, engine))
            return engine

        lazy._create = keep
        return lazy

    monkeypatch.setattr(generation, "engine_factory", counting)
    job = ("+persona=loving", "+model=tiny", "scale=ci", "stage.run=[prepare,prompts,teacher]")
    run_dir = run_root / "tiny" / "loving"

    code, output = launch(*job)
    assert code == 0, output
    assert [role for role, _ in created] == ["teacher"] and created[0][1].counters.calls > 0
    finished = read_json(run_dir / "teacher" / "manifest.json")
    before = tree_hash(run_root)

    code, output = launch(*job, "engines.teacher.model=/nonexistent")
    assert_refused(code, output, ("engines.teacher.model='/nonexistent'",))
    assert tree_hash(run_root) == before

    decoy = tmp_path / "not_a_model"
    decoy.mkdir()
    (decoy / "config.json").write_text("{}\n")
    code, output = launch(*job, f"engines.teacher.model={decoy}", "engines.teacher.backend=transformers")
    assert code != 0
    assert not (run_dir / "teacher" / "manifest.json").exists()  # archived, then the engine failed

    created.clear()
    code, output = launch(*job)
    assert code == 0, output
    assert created == []  # no engine was even started: zero generation calls
    assert read_json(run_dir / "teacher" / "manifest.json")["run_id"] == finished["run_id"]
    statuses = {name: s["status"] for name, s in read_json(run_dir / "summary.json")["stages"].items()}
    assert statuses == {"prepare": "skipped", "prompts": "skipped", "teacher": "restored"}
    assert "teacher: restored from .history/teacher-" in output
    assert "restored teacher from .history/teacher-" in (run_dir / "logs" / "pipeline.log").read_text()
