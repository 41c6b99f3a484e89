"""Text generation behind one small interface, with vLLM, transformers and OpenAI-compatible backends."""
