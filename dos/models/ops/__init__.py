"""Pure-PyTorch point ops (sparse conv maps and gather-conv, serialized patch attention, segment reductions).

Optional CUDA extensions (spconv, flash-attn, torch-scatter) are used only as accelerators and are imported
lazily inside the functions that use them.
"""
