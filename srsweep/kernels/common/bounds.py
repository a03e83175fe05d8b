"""Upper bounds the kernels' configs share (torch-free, like every ``config.py``).

They refuse what no study means (a width of 1e12 is an out-of-memory crash, 1e60
epochs never end) and stay far above every study in ``sweeps/``: 100x its longest
schedule, 30x its widest layer.
"""

from __future__ import annotations

__all__ = ["MAX_EPOCHS", "MAX_LAYERS", "MAX_LR", "MAX_SECONDS", "MAX_WIDTH"]

MAX_LAYERS = 64  # hidden layers of one network (the studies use at most 16)
MAX_WIDTH = 16_384  # units of one hidden layer (the studies use at most 1000)
MAX_EPOCHS = 10_000_000  # epochs, steps or cycles, and every stride counted in them
MAX_SECONDS = 1e7  # a runtime cap: about 115 days
# Adam moves a weight by about lr a step, so only an lr near float32's largest
# (3.4e38) overflows at once; the kernels' nonfinite examples use 1e30-1e38 to make a
# run diverge on purpose, so this bound only refuses what is not a number to train with.
MAX_LR = 1e38
