"""The activation-steering baseline (paper App. C): the ``steer`` stage's persona vector and the
steered engine the robustness stage generates with."""
