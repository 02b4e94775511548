"""`dos visualize`: what a model sees on one scene, drawn as headless, byte-reproducible PNGs (and PLY files).

- `pca`          the frozen encoder's full-resolution features, first three principal components as RGB;
- `prototypes`   the pretraining teacher's softmaps of its most-used prototypes, and the argmax prototype;
- `predictions`  a probe / finetune run against the ground truth, wrong points highlighted;
- `figure4`      the paper's Figure 4: class frequencies with fitted Zipf exponents, and the argmax-prototype
                 maps of a Zipf (alpha 1.3) and a uniform (alpha 0) pretraining;
- `figure5`      the paper's Figure 5: ground truth and several runs' predictions on an unseen-domain scene.

Modules: `ply` (writer), `colors` (numpy colourings), `render` (matplotlib panels), `scene` (one scene of a
data config), `features` (torch: encoder features, softmaps, predictions), one module per command.
"""
