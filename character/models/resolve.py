"""Find the weights of the configured model, or say exactly how to provide them."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from character.errors import CharacterError
from character.models.gguf import GgufSource, ensure_gguf_model
from character.models.tiny import TinySpec, ensure_tiny_model


def tiny_spec(model_cfg: DictConfig) -> TinySpec:
    return TinySpec(**OmegaConf.to_container(model_cfg.tiny, resolve=True))


def _hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_model_path(model_cfg: DictConfig, cache_dir: str | Path) -> Path:
    """Local folder holding the model's config, tokenizer and weights.

    Order: the tiny model (built on first use), ``model.path``, a GGUF file shipped in an
    installed package (``model.gguf``, converted on first use), the Hugging Face cache, then a
    hub download when ``model.allow_download`` is true and the hub is reachable.
    """
    if model_cfg.tiny is not None:
        return ensure_tiny_model(tiny_spec(model_cfg), Path(cache_dir))
    if model_cfg.path:
        path = Path(model_cfg.path).expanduser()
        if not (path / "config.json").is_file():
            raise CharacterError(
                f"model.path={model_cfg.path} (model {model_cfg.name!r}) has no config.json; "
                "expected a folder with the model's config, tokenizer and weights in Hugging Face "
                "format (e.g. a local copy of " + str(model_cfg.hub_id) + ")."
            )
        return path
    if model_cfg.get("gguf") is not None:
        source = GgufSource(**OmegaConf.to_container(model_cfg.gguf, resolve=True))
        return ensure_gguf_model(source, str(model_cfg.dtype), Path(cache_dir))
    if not model_cfg.hub_id:
        raise CharacterError(
            f"model {model_cfg.name!r} has neither hub_id nor path; set model.path=/local/dir."
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_cfg.hub_id, local_files_only=True))
    except Exception:  # not in the cache: fall through to a download or the message below
        pass
    reason = "downloads are off (model.allow_download=false)"
    if model_cfg.allow_download and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true"):
        try:
            return Path(snapshot_download(model_cfg.hub_id))
        except Exception as error:  # network, auth (gated repos) or disk errors
            reason = f"the download failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    elif model_cfg.allow_download:
        reason = "downloads are off (HF_HUB_OFFLINE=1)"
    folder = model_cfg.hub_id.split("/")[-1]
    raise CharacterError(
        f"model {model_cfg.name!r} needs the weights of {model_cfg.hub_id}, which are not on this "
        f"machine: they are not in the Hugging Face cache at {_hub_cache_dir()} and {reason}. "
        f"Download them where there is network access (`hf download {model_cfg.hub_id}`, then "
        f"copy the folder here) and point at them with model.path=/path/to/{folder}, "
        "or set HF_HOME to a cache that holds them."
    )
