import argparse
import json

import torch

from dos.bench import backbone
from dos.models.ops.sparse_conv import voxel_keys
from dos.models.point import offset_to_batch


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backbone.configure(parser)
    return parser.parse_args(list(argv))


def test_surface_batch_has_one_point_per_voxel_and_surface_density():
    coord, grid, feat, offset, grid_size = backbone.surface_batch(2, 3000, 6, seed=0)
    assert offset.tolist() == [3000, 6000] and feat.shape == (6000, 6)
    batch = offset_to_batch(offset)
    assert len(torch.unique(voxel_keys(grid, batch))) == 6000
    assert torch.equal(torch.floor(coord / grid_size).long(), grid)


def test_run_without_pointcept_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = parse("--config", "smoke", "--clouds", "1", "--points", "500", "--repeats", "1", "--warmup", "0",
                 "--pointcept", str(tmp_path / "no-pointcept"), "--out", str(out))
    assert backbone.run(args) == 0
    assert "Pointcept not benchmarked" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [row["impl"] for row in result["rows"]] == ["dos"] and result["ratios"] == {}
    row = result["rows"][0]
    assert row["points"] == 500 and row["points_per_cloud"] == 500 and row["enc_mode"]
    assert row["seconds"] > 0 and row["points_per_s"] == 500 / row["seconds"]
    assert row["peak_extra_MiB"] >= 0 and row["parameters"] > 0
    assert "no Pointcept checkout" in result["pointcept_skipped"]
