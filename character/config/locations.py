"""Checks of the config values that name places: model folders and hub ids, URLs, the run root.

Each returns None when the value is usable, else what was expected, so that a bad value stops
the job before it writes or moves anything. Without them, a mistyped engine model passed
validation, moved the finished teacher output to ``.history/`` and only then failed inside
huggingface_hub with a message about repo ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

# owner/name, as the hub allows them: letters, digits, '-', '_', '.'; no '--' or '..'; at most 96
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+", flags=re.ASCII)
HUB_ID_HINT = "a hub id of the form owner/name (letters, digits, '-', '_', '.')"


def hub_offline() -> bool:
    """HF_HUB_OFFLINE set: nothing may come from the hub, so a hub id must already be cached."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def model_location_problem(value: str, markers: tuple[str, ...] = ("config.json",)) -> str | None:
    """``value`` must be a local folder holding one of ``markers``, or a well-formed hub id that
    is in the Hugging Face cache or (online) on the hub. A path that exists is never a hub id."""
    path = Path(value).expanduser()
    wanted = " or ".join(markers)
    if path.exists():
        if path.is_dir() and any((path / marker).is_file() for marker in markers):
            return None
        if path.is_file() and path.suffix == ".gguf":
            return None  # vLLM loads a single GGUF file
        return f"a folder holding {wanted} (Hugging Face format); {path} has no {wanted}"
    if not is_hub_id(value):
        return f"an existing local folder holding {wanted}, or {HUB_ID_HINT}; no such folder exists"
    return _hub_problem(value)


def is_hub_id(value: str) -> bool:
    """``owner/name`` as the hub allows it (the legacy one-word ids are read as paths)."""
    return (
        HUB_ID.fullmatch(value) is not None
        and len(value) <= 96
        and ".." not in value
        and "--" not in value
        and not value.split("/")[0].startswith((".", "-"))
        and not value.endswith((".", "-"))
    )


def _hub_problem(repo_id: str) -> str | None:
    """None when ``repo_id`` is cached, or online and the hub knows it."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
        return None
    except Exception:  # not cached (LocalEntryNotFoundError), or an unreadable cache
        pass
    from huggingface_hub import constants

    cache = constants.HF_HUB_CACHE
    if hub_offline():
        return (
            f"a local folder, or a hub id already in the Hugging Face cache ({cache}); "
            f"{repo_id} is not cached and HF_HUB_OFFLINE=1 forbids downloading it"
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=10)
    except GatedRepoError:
        return None  # exists; the engine loads it with the user's token
    except RepositoryNotFoundError:
        return f"a local folder, or a model that exists on the hub; the hub has no model {repo_id}"
    except HfHubHTTPError:
        return None  # the hub answered (rate limit, server error): let the engine try
    except Exception as error:  # no network, DNS, timeout
        return (
            f"a local folder, or a hub id in the Hugging Face cache ({cache}); {repo_id} is not "
            f"cached and the hub cannot be reached ({type(error).__name__})"
        )
    return None


def url_problem(url: str) -> str | None:
    """``url`` must be an http(s) URL with a host (an OpenAI-compatible endpoint)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as error:
        return f"an http(s) URL such as http://127.0.0.1:8000/v1 ({error})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http(s) URL with a host, such as http://127.0.0.1:8000/v1"
    return None


def writable_folder_problem(path: Path) -> str | None:
    """``path`` must be a folder this process can create (or already has) and write into.

    Nothing is created: the nearest existing ancestor must be a writable folder on a filesystem
    that holds files. ``os.access`` alone is not enough: for root it allows writing into /proc,
    where creating a folder then fails, so virtual (zero-block) and read-only filesystems are
    refused as well.
    """
    existing = Path(os.path.abspath(path.expanduser()))
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        return f"a folder that can be created; {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"a folder this user can write to; {existing} is not writable"
    stats = os.statvfs(existing)
    if stats.f_flag & os.ST_RDONLY:
        return f"a writable folder; {existing} is on a read-only filesystem"
    if stats.f_blocks == 0:
        return f"a folder on a disk; {existing} is on a virtual filesystem (like /proc) that holds no files"
    return None
