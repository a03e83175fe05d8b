"""Code two or more kernels share: networks and critic helpers (``nets``), batched
layers for packs (``batched``), the fused Adam (``optim``), the seed studies' data
(``data``) and symbolic function libraries (``funlib``, ``libs/*.lib``)."""
