import pytest
import torch

from dos.engine.optim import clip_gradients


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_gradients_matches_torch_clip_grad_norm(max_norm):
    """The CPU path (norm of the concatenated gradients) scales the gradients and returns the norm as
    torch.nn.utils.clip_grad_norm_ does: clipped when above max_norm, unchanged below; parameters without a
    gradient are skipped."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (7,), (2, 2, 2), (1,)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=generator)) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    for a, b in zip(ours, theirs):
        a.grad = torch.randn(a.shape, generator=generator)
        b.grad = a.grad.clone()
    ours[3].grad = theirs[3].grad = None
    got = clip_gradients(ours, max_norm)
    want = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(got, want)
    for a, b in zip(ours[:3], theirs[:3]):
        torch.testing.assert_close(a.grad, b.grad)
    assert (max_norm < float(want)) == (float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in ours[:3]])))
                                        < float(want) - 1e-4)


def test_ptv3_layer_ids_give_the_stem_block_and_pooling_depths():
    """The backbone reports its own encoder depths: stem 0, block b of the whole encoder b + 1, a pooling layer
    the id of the first block after it; decoder parameters are not listed (they train at the top layer)."""
    from dos.models.ptv3 import ptv3_from_config

    backbone = ptv3_from_config("smoke", in_channels=4, enc_mode=False)
    layers = backbone.layer_ids()
    depths = [len(stage) for stage in backbone.enc_stages]
    first = [1 + sum(depths[:s]) for s in range(len(depths))]
    assert layers.num_layers == sum(depths) + 1
    assert all(layers.of[id(p)] == 0 for p in backbone.embedding.parameters())
    for s, stage in enumerate(backbone.enc_stages):
        for i, block in enumerate(stage):
            assert {layers.of[id(p)] for p in block.parameters()} == {first[s] + i}
    for k, pool in enumerate(backbone.pools):
        assert {layers.of[id(p)] for p in pool.parameters()} == {first[k + 1]}
    assert not any(id(p) in layers.of for p in backbone.dec_stages.parameters())


def test_layer_decay_follows_the_backbone_not_attribute_names():
    """The optimizer takes the depths from `layer_ids()`, so a backbone held under any attribute name (and
    renamed submodules) keeps its layer-wise decay: the stem gets decay^L, a head outside the backbone 1."""
    from torch import nn

    from dos.engine.optim import OptimConfig, build_optimizer
    from dos.models.ptv3 import ptv3_from_config

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.anything = ptv3_from_config("smoke", in_channels=4, enc_mode=True)
            self.classifier = nn.Linear(8, 3)

    model = Wrapped()
    layers = model.anything.layer_ids()
    optimizer = build_optimizer(model, OptimConfig(lr=1.0, layer_decay=0.5), layers)
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    assert scale_of[id(model.anything.embedding[0].weight)] == 0.5 ** layers.num_layers
    last_block = model.anything.enc_stages[-1][-1]
    assert {scale_of[id(p)] for p in last_block.parameters()} == {0.5}
    assert scale_of[id(model.classifier.weight)] == 1.0
    # SPUNet has no block structure for it: every parameter at the same lr
    from dos.models.spunet import spunet_from_config

    assert spunet_from_config("smoke", in_channels=4, enc_mode=True).layer_ids() is None
