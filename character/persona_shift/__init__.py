"""Judge-free measures of a persona shift: does the trained model answer in persona, without a
system prompt, on prompts it never trained on, and without degenerating?"""
