"""`+setup=paper`: the paper's models in every other role, reached through endpoints named by
environment variables; offline it composes and validates for every persona x paper model, and a
paper-scale job without it says loudly that it is self-distillation."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from character.config.validate import validate_train_config
from character.engines.factory import build_engine
from character.errors import CharacterError
from character.io import read_json
from character.pipeline.self_distillation import self_played_roles
from tests.config.test_compose import PERSONAS, compose_train
from tests.conftest import run_cli

PAPER_MODELS = ("qwen2.5-7b", "llama3.1-8b", "gemma3-4b")
# role -> (served model name as the paper's endpoints know it, URL variable, key variable)
ENDPOINTS = {
    "engines.teacher": ("zai-org/GLM-4.5-Air", "CHARACTER_TEACHER_URL", "CHARACTER_TEACHER_API_KEY"),
    "engines.generator": (
        "meta-llama/Llama-3.3-70B-Instruct",
        "CHARACTER_GENERATOR_URL",
        "CHARACTER_GENERATOR_API_KEY",
    ),
    "engines.judge": ("zai-org/GLM-4.5-Air", "CHARACTER_JUDGE_URL", "CHARACTER_JUDGE_API_KEY"),
    "stages.coherence.judges.gpt-5-mini": (
        "gpt-5-mini",
        "CHARACTER_GPT5_MINI_URL",
        "CHARACTER_GPT5_MINI_API_KEY",
    ),
    "stages.coherence.judges.claude-haiku-4.5": (
        "claude-haiku-4-5",
        "CHARACTER_CLAUDE_HAIKU_URL",
        "CHARACTER_CLAUDE_HAIKU_API_KEY",
    ),
    "stages.coherence.judges.gemini-2.0-flash-lite": (
        "gemini-2.0-flash-lite",
        "CHARACTER_GEMINI_FLASH_LITE_URL",
        "CHARACTER_GEMINI_FLASH_LITE_API_KEY",
    ),
}
PLANTED_KEY = "sk-planted-0123456789abcdef"
JUDGES = "stages.coherence.judges."


def engine_at(cfg, key: str):
    """The engine config at ``key``; a coherence judge's name may hold dots (claude-haiku-4.5)."""
    if key.startswith(JUDGES):
        return cfg.stages.coherence.judges[key[len(JUDGES) :]]
    return OmegaConf.select(cfg, key)


@pytest.fixture
def endpoints(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every variable of the preset set, each URL distinct (nothing is contacted)."""
    urls = {}
    for index, (_, url_var, key_var) in enumerate(ENDPOINTS.values()):
        urls[url_var] = f"http://127.0.0.1:{9000 + index}/v1"
        monkeypatch.setenv(url_var, urls[url_var])
        monkeypatch.setenv(key_var, PLANTED_KEY)
    return urls


def test_composes_and_validates_for_every_persona_and_paper_model(endpoints: dict[str, str]) -> None:
    for model in PAPER_MODELS:
        for persona in PERSONAS:
            cfg = compose_train(
                f"+persona={persona}", f"+model={model}", "+setup=paper", "acknowledge_gated=true"
            )
            validate_train_config(cfg)
            for key, (served, url_var, key_var) in ENDPOINTS.items():
                engine = engine_at(cfg, key)
                assert (engine.backend, engine.model, engine.base_url) == ("openai", served, None), key
                assert (engine.base_url_env, engine.api_key_env) == (url_var, key_var), key
            assert cfg.stages.teacher.assistant_name == "ChatGLM" and cfg.model.assistant_name != "ChatGLM"
            judge = cfg.stages.eval.preferences.judge_sampling
            assert (judge.temperature, judge.top_p) == (0.1, 0.95)
            assert cfg.stages.coherence.sampling.temperature == 0.0
            efforts = {name: j.reasoning_effort for name, j in cfg.stages.coherence.judges.items()}
            assert efforts == {
                "gpt-5-mini": "medium",
                "claude-haiku-4.5": None,
                "gemini-2.0-flash-lite": None,
            }
            assert [n for n, j in cfg.stages.coherence.judges.items() if j.fixed_sampling] == ["gpt-5-mini"]
            assert self_played_roles(cfg) == []
            assert cfg.stages.steer.method == "last_token"  # the paper's reading for its strengths
            assert cfg.stages.sft.max_len == cfg.model.max_context
            OmegaConf.to_container(cfg, resolve=True)
            assert PLANTED_KEY not in OmegaConf.to_yaml(cfg)  # keys stay in the environment


def test_the_grid_uses_the_setup(endpoints: dict[str, str]) -> None:
    cfg = compose_train("+experiment=paper_grid", "+persona=misaligned", "+model=gemma3-4b")
    validate_train_config(cfg)
    assert cfg.engines.teacher.model == "zai-org/GLM-4.5-Air"
    assert list(cfg.stages.coherence.judges) == ["gpt-5-mini", "claude-haiku-4.5", "gemini-2.0-flash-lite"]


def test_the_engine_reads_its_url_from_the_named_variable(endpoints: dict[str, str]) -> None:
    cfg = compose_train("+persona=loving", "+model=llama3.1-8b", "+setup=paper")
    engine = build_engine(cfg.stages.coherence.judges["gpt-5-mini"], "unused", True)
    assert engine.base_url == endpoints["CHARACTER_GPT5_MINI_URL"]
    assert engine.info.details["reasoning_effort"] == "medium"


def test_unset_variables_are_named_before_anything_runs(monkeypatch: pytest.MonkeyPatch, endpoints) -> None:
    monkeypatch.delenv("CHARACTER_TEACHER_URL")
    monkeypatch.delenv("CHARACTER_GPT5_MINI_API_KEY")
    monkeypatch.setenv("CHARACTER_JUDGE_URL", "not a url")
    cfg = compose_train("+persona=loving", "+model=qwen2.5-7b", "+setup=paper")
    with pytest.raises(CharacterError) as error:
        validate_train_config(cfg)
    message = str(error.value)
    assert "3 config values are not valid" in message
    assert "engines.teacher.base_url_env='CHARACTER_TEACHER_URL'" in message
    assert "$CHARACTER_TEACHER_URL is unset" in message
    assert "stages.coherence.judges.gpt-5-mini.api_key_env='CHARACTER_GPT5_MINI_API_KEY'" in message
    assert "engines.judge.base_url_env='CHARACTER_JUDGE_URL'" in message and "to hold a URL" in message
    both = compose_train(
        "+persona=loving", "+model=qwen2.5-7b", "+setup=paper", "engines.teacher.base_url=http://h/v1"
    )
    with pytest.raises(CharacterError, match=r"engines.teacher.base_url_env=.*null when base_url is set"):
        validate_train_config(both)


def test_which_roles_the_student_plays_itself() -> None:
    every = ["teacher", "generator", "judge", "coherence"]
    assert self_played_roles(compose_train("+persona=loving", "+model=qwen2.5-7b")) == every
    assert self_played_roles(compose_train("+persona=loving", "+model=tiny", "scale=paper")) == every
    assert self_played_roles(compose_train("+persona=loving", "+model=tiny")) == []  # scale=tiny
    assert self_played_roles(compose_train("+persona=loving", "+model=smollm2-135m")) == []  # demo
    teacher_only = compose_train(
        "+persona=loving",
        "+model=llama3.1-8b",
        "engine@engines.teacher=openai",
        "engines.teacher.model=zai-org/GLM-4.5-Air",
        "engines.judge.model=/some/judge",
    )
    assert self_played_roles(teacher_only) == ["generator"]  # the judge also judges coherence


def test_a_paper_scale_job_without_the_setup_says_so(run_root) -> None:
    """Through the real CLI: the warning is on the console at the start and in summary.json."""
    result = run_cli("+persona=loving", "+model=tiny", "scale=paper", "+stage=prepare")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout + result.stderr
    assert (
        "warning: SELF-DISTILLATION, not the paper's method: scale=paper, but tiny itself is the teacher"
        in printed
    )
    assert printed.index("SELF-DISTILLATION") < printed.index("[1/1] prepare")  # said at the start
    summary = read_json(run_root / "tiny" / "loving" / "summary.json")
    assert summary["self_distillation"]["roles"] == ["teacher", "generator", "judge", "coherence"]
    assert "+setup=paper" in summary["self_distillation"]["warning"]
