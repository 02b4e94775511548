"""dos: reproduction harness for DOS (Distilling Observable Softmaps of Zipfian Prototypes).

Importing the package needs only torch and numpy; every optional accelerator
(spconv, torch-scatter, flash-attn) and every workflow tool is imported lazily.
"""

__version__ = "0.1.0"
