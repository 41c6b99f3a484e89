"""What every LLM judge shares: reading its verdicts robustly (``parsing``)."""
