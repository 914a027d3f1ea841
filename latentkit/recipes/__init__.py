"""One-command training recipes for every model organism: ``python -m latentkit.recipes all``.

Each recipe is seeded, shows a progress bar, resumes from its checkpoint in the cache, uses the GPU when
torch sees one, and exports fp16 weights to ``data/``.
"""
