"""General capabilities (paper App. F): the ``capabilities`` stage's benchmarks before and after
training, through lm-evaluation-harness."""
