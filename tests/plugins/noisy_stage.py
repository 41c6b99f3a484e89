"""A stage that makes the noise libraries make, and fails on request (tests/pipeline/test_console.py).

It stands in for a generation or training stage in the console tests, which then run in seconds:
a library's INFO and WARNING records, a ``print``, a Python warning and a progress bar on stderr,
each marked so a test can find it in the console output or in ``logs/noisy.log``.
"""

from __future__ import annotations

import logging
import sys
import warnings

from tqdm import tqdm

from character.errors import CharacterError
from character.pipeline.stage import Stage, StageContext, StageResult, register_stage

MARKS = {
    "info": "NOISE-info from a library",
    "warning": "NOISE-warning from a library",
    "print": "NOISE-print of a library",
    "warn": "NOISE-python warning",
    "bar": "NOISE-bar",
}


@register_stage
class Noisy(Stage):
    name = "noisy"
    config_keys = ("plugin_params.noisy.fail",)

    def run(self, ctx: StageContext) -> StageResult:
        library = logging.getLogger("vllm.noisy_test")
        library.info(MARKS["info"])
        library.warning(MARKS["warning"])
        print(MARKS["print"])
        warnings.warn(MARKS["warn"], FutureWarning, stacklevel=1)
        with tqdm(total=3, desc=MARKS["bar"], file=sys.stderr) as bar:
            bar.update(3)
        fail = ctx.cfg.plugin_params.get("noisy", {}).get("fail")
        if fail == "user":
            raise CharacterError("NOISE-user-error: the noisy stage was told to fail")
        if fail:
            raise RuntimeError("NOISE-crash: the noisy stage was told to crash")
        return StageResult(outputs=[], counts={"rows": 3})
