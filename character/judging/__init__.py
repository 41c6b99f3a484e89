"""What every LLM judge shares: reading its verdicts robustly (``parsing``) and the known-answer
check of its accuracy (``check``)."""
