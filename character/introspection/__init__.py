"""Introspection (paper §2.4, App. B): self-reflection, self-interaction, and the SFT data."""
