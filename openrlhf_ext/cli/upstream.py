"""Reuse OpenRLHF's own command-line parsers, so our CLIs accept every upstream flag.

OpenRLHF builds each CLI's parser inside its ``if __name__ == "__main__":`` block, where it cannot
be imported. ``upstream_parser`` runs that block with ``parse_args`` intercepted and returns the
parser it built; new upstream flags then reach our CLIs without any change here.
"""

from __future__ import annotations

import argparse
import runpy


class _ParserCaptured(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__("parser captured")
        self.parser = parser


def upstream_parser(module: str) -> argparse.ArgumentParser:
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *args, **kwargs):
        raise _ParserCaptured(self)

    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    try:
        runpy.run_module(module, run_name="__main__")
    except _ParserCaptured as captured:
        return captured.parser
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"{module} did not build an argument parser")
