"""Secret redaction: by key name, by the environment's secret values, and by token shape."""

from __future__ import annotations

import pytest

from character.tracking.redact import REDACTED, Redactor, is_secret_key, redact, secret_env_values

ENV = {
    "OPENAI_API_KEY": "sk-test-PLANTED-0123456789abcdef",
    "HF_TOKEN": "hf-planted-token-value-42",
    "DB_PASSWORD": "short",  # under MIN_SECRET_LENGTH: not treated as a secret
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "HOME": "/root",
}


@pytest.mark.parametrize(
    "name", ["api_key", "apiKey", "hf_token", "client-secret", "password", "credentials", "OPENAI_API_KEY"]
)
def test_secret_looking_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name", ["max_tokens", "tokenizer", "max_prompt_tokens", "keyboard", "monkey", "seed"]
)
def test_ordinary_key_names_are_not_secret(name: str) -> None:
    assert not is_secret_key(name)


def test_secret_env_values_skip_short_and_non_secret_variables() -> None:
    assert secret_env_values(ENV) == {"OPENAI_API_KEY": ENV["OPENAI_API_KEY"], "HF_TOKEN": ENV["HF_TOKEN"]}


def test_config_redaction_by_key_value_and_shape() -> None:
    config = {
        "engines": {"teacher": {"api_key_env": "OPENAI_API_KEY", "base_url": "http://h/v1", "max_tokens": 7}},
        "plugin_params": {
            "x": {"api_token": "anything at all", "note": f"uses {ENV['HF_TOKEN']} inside"},
            "credentials": {"user": "me", "pass": ["a1", "b2"]},
            "url": "https://api.example.com/?key=sk-abcdefghijklmnopqrstuvwx",
        },
        "stages": {"sampling": {"max_tokens": 4096, "tokenizer": "tok"}},
    }
    out = redact(config, ENV)
    # a variable's name in *_env is kept, ordinary values untouched
    assert out["engines"]["teacher"] == config["engines"]["teacher"]
    assert out["stages"] == config["stages"]
    assert out["plugin_params"]["x"]["api_token"] == REDACTED
    assert out["plugin_params"]["x"]["note"] == f"uses {REDACTED} inside"
    assert out["plugin_params"]["credentials"] == {"user": REDACTED, "pass": [REDACTED, REDACTED]}
    assert out["plugin_params"]["url"] == f"https://api.example.com/?key={REDACTED}"
    assert config["plugin_params"]["x"]["api_token"] == "anything at all"  # the input is not modified


def test_a_secret_in_an_env_name_field_is_still_redacted() -> None:
    out = redact({"api_key_env": ENV["OPENAI_API_KEY"], "token_env": "not a NAME"}, ENV)
    assert out == {"api_key_env": REDACTED, "token_env": REDACTED}


def test_contains_secret_finds_env_values_in_command_lines() -> None:
    redactor = Redactor(ENV)
    assert redactor.contains_secret(f"--header=Authorization: {ENV['HF_TOKEN']}")
    assert not redactor.contains_secret("--data.max_len")
