import pytest
import torch

import argparse

from dos.errors import DosError
from dos.models import convert_cli
from dos.models import ptv3_from_config
from dos.models.convert import (ConversionError, convert_pointcept_state, dos_state_to_pointcept,
                                extract_backbone_state, infer_ptv3_overrides, load_pointcept_checkpoint,
                                pointcept_name_to_dos)
from tests.models.helpers import random_batch

# Names and shapes a Pointcept PT-v3m2 with the smoke config (in 6, enc channels 8/16/24, enc depths 1/1/2,
# dec channels 8/16, layer_scale on) has, written out by hand from point_transformer_v3m2_sonata.py: Embedding
# is PointSequential(linear=Linear, norm=LayerNorm); a stage is enc{s} holding "down" (GridPooling: proj
# Linear, norm = PointSequential(LayerNorm) -> "norm.0") and block{i}; a Block has cpe = PointSequential(
# SubMConv3d, Linear, LayerNorm) -> cpe.0/1/2, norm1/norm2/ls1/ls2/mlp wrapped in PointSequential -> ".0";
# GridUnpooling has proj / proj_skip = PointSequential(Linear, LayerNorm, GELU); spconv 2.x SubMConv3d
# weights are [C_out, K, K, K, C_in].
EXPECTED_POINTCEPT = {
    "embedding.stem.linear.weight": (8, 6),
    "embedding.stem.linear.bias": (8,),
    "embedding.stem.norm.weight": (8,),
    "enc.enc0.block0.cpe.0.weight": (8, 3, 3, 3, 8),
    "enc.enc0.block0.cpe.0.bias": (8,),
    "enc.enc0.block0.cpe.1.weight": (8, 8),
    "enc.enc0.block0.cpe.2.bias": (8,),
    "enc.enc0.block0.norm1.0.weight": (8,),
    "enc.enc0.block0.ls1.0.gamma": (8,),
    "enc.enc0.block0.ls2.0.gamma": (8,),
    "enc.enc1.down.proj.weight": (16, 8),
    "enc.enc1.down.norm.0.weight": (16,),
    "enc.enc2.down.proj.bias": (24,),
    "enc.enc2.block1.attn.qkv.weight": (72, 24),
    "enc.enc2.block1.attn.proj.weight": (24, 24),
    "enc.enc2.block1.mlp.0.fc1.weight": (96, 24),
    "enc.enc2.block1.mlp.0.fc2.bias": (24,),
    "enc.enc2.block1.norm2.0.bias": (24,),
    "dec.dec0.up.proj.0.weight": (8, 16),
    "dec.dec0.up.proj.1.weight": (8,),
    "dec.dec0.up.proj_skip.0.weight": (8, 8),
    "dec.dec1.up.proj.0.weight": (16, 24),
    "dec.dec1.up.proj_skip.0.weight": (16, 16),
    "dec.dec1.up.proj_skip.1.bias": (16,),
    "dec.dec1.block0.cpe.0.weight": (16, 3, 3, 3, 16),
    "dec.dec1.block0.attn.qkv.bias": (48,),
}


def smoke_model(**overrides):
    torch.manual_seed(0)
    config = dict(enc_mode=False, layer_scale=0.5, shuffle_orders=False) | overrides
    return ptv3_from_config("smoke", in_channels=6, **config)


def randomised(model):
    with torch.no_grad():
        for param in model.parameters():
            param.normal_()
    return model


def test_synthetic_pointcept_checkpoint_has_pointcept_names_and_shapes():
    ours = randomised(smoke_model()).state_dict()
    pointcept = dos_state_to_pointcept(ours)
    assert len(pointcept) == len(ours)
    for name, shape in EXPECTED_POINTCEPT.items():
        assert name in pointcept, name
        assert tuple(pointcept[name].shape) == shape, name
    # the kernel layout: Pointcept [C_out, kx, ky, kz, C_in] vs ours [(kx*3 + ky)*3 + kz, C_in, C_out]
    pc_kernel = pointcept["enc.enc1.block0.cpe.0.weight"]
    our_kernel = ours["enc_stages.1.0.cpe_conv.weight"]
    for kx, ky, kz, c_in, c_out in [(0, 1, 2, 3, 4), (2, 0, 1, 15, 0), (1, 1, 1, 7, 9)]:
        assert pc_kernel[c_out, kx, ky, kz, c_in] == our_kernel[(kx * 3 + ky) * 3 + kz, c_in, c_out]
    assert pointcept_name_to_dos("enc.enc3.down.proj.weight") == ("pools.2.proj.weight", None)
    assert pointcept_name_to_dos("enc.enc0.block0.attn.rpe.rpe_table") is None


def test_round_trip_names_shapes_values_and_outputs():
    source = randomised(smoke_model())
    checkpoint = {"epoch": 3, "state_dict": {"module." + k: v for k, v in
                                             dos_state_to_pointcept(source.state_dict()).items()}}
    target = smoke_model()
    report = load_pointcept_checkpoint(target, checkpoint)
    assert not report.missing and not report.unexpected and report.prefix == ""
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    point = random_batch([120, 90], [(10, 10, 6), (9, 9, 5)])
    source.eval(), target.eval()
    torch.testing.assert_close(target(point).decoded.feat, source(point).decoded.feat)


def test_backbone_prefixes_extras_and_inferred_overrides():
    pointcept = dos_state_to_pointcept(randomised(smoke_model(enc_mode=True, layer_scale=None)).state_dict())
    wrapped = {f"module.{part}.backbone.{k}": v for part in ("student", "teacher") for k, v in pointcept.items()}
    wrapped["module.student.backbone.embedding.mask_token"] = torch.zeros(1, 8)
    wrapped["module.student.head.weight"] = torch.zeros(3, 3)
    state, prefix = extract_backbone_state({"state_dict": wrapped})
    assert prefix == "student.backbone."
    assert infer_ptv3_overrides(state) == {"in_channels": 6, "enc_mode": True}
    report = convert_pointcept_state(state, smoke_model(enc_mode=True, layer_scale=None))
    assert list(report.extras) == ["embedding.mask_token"] and not report.unexpected
    state, prefix = extract_backbone_state({"state_dict": wrapped}, prefix="teacher.backbone.")
    assert prefix == "teacher.backbone." and len(state) == len(pointcept)


def test_strict_reports_missing_and_unexpected_keys():
    pointcept = dos_state_to_pointcept(smoke_model().state_dict())
    del pointcept["enc.enc1.down.proj.weight"]
    pointcept["enc.enc0.block0.attn.rpe.rpe_table"] = torch.zeros(3, 1)
    with pytest.raises(ConversionError, match=r"(?s)missing in checkpoint \(1\): pools.0.proj.weight.*"
                                              r"unexpected in checkpoint \(1\): enc.enc0.block0.attn.rpe.rpe_table"):
        convert_pointcept_state(pointcept, smoke_model())
    report = convert_pointcept_state(pointcept, smoke_model(), strict=False)
    assert report.missing == ["pools.0.proj.weight"]
    with pytest.raises(ConversionError, match="shape mismatch"):
        convert_pointcept_state(dos_state_to_pointcept(smoke_model().state_dict()),
                                smoke_model(enc_channels=(8, 16, 32), enc_num_heads=(1, 2, 4)))
    with pytest.raises(ConversionError, match="PT-v3m1"):
        extract_backbone_state({"embedding.stem.conv.weight": torch.zeros(1)})


def test_cli_writes_a_loadable_state_dict(tmp_path, capsys):
    source = randomised(smoke_model(enc_mode=True, layer_scale=None))
    checkpoint = tmp_path / "model_best.pth"
    torch.save({"state_dict": {"module.backbone." + k: v
                               for k, v in dos_state_to_pointcept(source.state_dict()).items()}}, checkpoint)
    out = tmp_path / "dos_ptv3.pt"
    parser = argparse.ArgumentParser()
    convert_cli.configure(parser)
    assert convert_cli.run(parser.parse_args([str(checkpoint), str(out), "--config", "smoke"])) == 0
    assert "enc_mode=True" in capsys.readouterr().out
    target = ptv3_from_config("smoke", in_channels=6, enc_mode=True)
    target.load_state_dict(torch.load(out))
    for name, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], value), name
    with pytest.raises(DosError, match="shape mismatch"):
        convert_cli.run(parser.parse_args([str(checkpoint), str(out), "--config", "mini"]))


def test_conformance_script_skips_cleanly_without_pointcept(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "conformance_pointcept.py"
    spec = importlib.util.spec_from_file_location("conformance_pointcept", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--pointcept", str(tmp_path / "absent")]) == 0
    assert capsys.readouterr().out.startswith("SKIPPED: no Pointcept checkout with PT-v3m2 at ")
