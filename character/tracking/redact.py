"""Keep secrets out of everything a job writes or sends: saved configs, manifests, W&B runs.

A secret reaches a config in two ways: a field meant for one (``api_key: ${oc.env:OPENAI_API_KEY}``)
or a value that happens to equal a secret in the environment (``base_url`` with a token in it).
Both are handled: values under secret-looking keys are replaced, and any occurrence of a
secret-looking environment variable's value is cut out of every string, whatever its key. Stages
still receive the real values; only what is recorded is redacted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"

# Whole words of a key name (snake, kebab, dotted or camel case) that mark its value as a secret.
# Whole words, so that ``max_tokens`` or ``tokenizer`` are not redacted.
SECRET_WORDS = frozenset(
    {"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials", "auth"}
)
# Environment variables whose names contain a secret word but whose values are not secrets.
NOT_SECRET_ENV = frozenset({"SSH_AUTH_SOCK", "PWD", "OLDPWD"})
# Shorter values are not treated as secrets: cutting "1" or "true" out of every string would
# mangle the record without protecting anything.
MIN_SECRET_LENGTH = 8
# Well-known credential shapes (OpenAI, Hugging Face, GitHub), redacted wherever they appear.
TOKEN_PATTERN = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|gh[pousr]_[A-Za-z0-9]{30,})")
# A field named ``*_env`` holds the *name* of a variable (``api_key_env: OPENAI_API_KEY``), which
# is worth keeping in the record; it is kept only when it looks like a variable name.
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def key_words(name: str) -> list[str]:
    """Lower-case words of a key: ``OPENAI_API_KEY``, ``apiKey``, ``stages.x.api-token``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word]


def is_secret_key(name: str) -> bool:
    """True for a key whose value should never be recorded (``api_key``, ``hf_token``, ...)."""
    return bool(SECRET_WORDS.intersection(key_words(name)))


def secret_env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of secret-looking environment variables (``*_API_KEY``, ``*_TOKEN``, ...), by name."""
    environ = os.environ if environ is None else environ
    return {
        name: value
        for name, value in environ.items()
        if name not in NOT_SECRET_ENV and is_secret_key(name) and len(value) >= MIN_SECRET_LENGTH
    }


class Redactor:
    """Redacts configs and strings against the secrets known when it was made.

    Made once per job (reading the environment once), then applied to everything recorded.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        # Longest first, so a secret that contains another is cut out whole.
        self.secrets = sorted(set(secret_env_values(environ).values()), key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every known secret and well-known token shape replaced."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return TOKEN_PATTERN.sub(REDACTED, value)

    def value(self, value: Any, key: str = "", under_secret: bool = False) -> Any:
        """A copy of a (nested) value with secrets replaced; ``key`` is the name it is stored under.

        Everything below a secret-looking key is redacted too (``credentials: {user, pass}``).
        """
        secret = under_secret or (bool(key) and is_secret_key(key))
        if isinstance(value, Mapping):
            return {k: self.value(v, str(k), secret) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item, key, secret) for item in value]
        if isinstance(value, str):
            if secret and value and not _names_a_variable(key, value):
                return REDACTED
            return self.text(value)
        return value

    def contains_secret(self, value: str) -> bool:
        return self.text(value) != value


def _names_a_variable(key: str, value: str) -> bool:
    return key_words(key)[-1:] == ["env"] and bool(ENV_NAME.match(value))


def redact(value: Any, environ: Mapping[str, str] | None = None) -> Any:
    """One-off redaction of a nested value (see ``Redactor``)."""
    return Redactor(environ).value(value)
