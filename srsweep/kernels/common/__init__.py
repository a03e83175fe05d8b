"""Code two or more kernels share: networks and critic helpers (``nets``), batched
layers for packs (``batched``), the fused Adam (``optim``), the seed studies' data
(``data``), symbolic function libraries (``funlib``, ``libs/*.lib``) and saved state as
NumPy arrays (``saved``)."""
