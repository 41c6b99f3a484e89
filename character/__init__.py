"""Character training of chat LLMs with Constitutional AI (distillation + introspection)."""

__version__ = "0.1.0"
