"""The synthetic benchmark: determinism, on-disk formats, geometry, sensors, occlusion, long tails."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from dos.cli import main as dos_main
from dos.data.synthetic import furniture, rooms, street
from dos.data.synthetic.benchmark import generate_benchmark, generate_lidar, generate_rooms
from dos.data.synthetic.figures import plot_benchmark, zipf_slope
from dos.data.synthetic.lidar import OUTLIER_LABEL, PROFILES, beam_elevations, scan
from dos.data.synthetic.primitives import SceneBuilder
from dos.data.synthetic.writers import read_kitti_scan, write_kitti_scan


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smoke")
    generate_benchmark(out, "smoke", seed=0, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def lidar_sample(tmp_path_factory) -> dict[str, Path]:
    """Two scans of every style, dense enough for statistics."""
    base = tmp_path_factory.mktemp("lidar")
    return {name: (generate_lidar(base / name, name, name, 4, seed=3, frames_per_sequence=2, val_sequences=1,
                                  azimuth_steps=200), base / name)[1] for name in street.STYLES}


# -- determinism ----------------------------------------------------------------------------------------------------
def test_benchmark_is_byte_identical_for_a_seed_and_idempotent(smoke, tmp_path, capsys):
    again = tmp_path / "again"
    assert dos_main(["data", "generate", "--scale", "smoke", "--out", str(again)]) == 0
    assert _digest(again) == _digest(smoke)
    manifest = yaml.safe_load((smoke / "manifest.json").read_text())
    assert set(manifest["datasets"]) == {"synthetic-nuscenes", "synthetic-waymo", "synthetic-semantickitti",
                                         "synthetic-parisluco", "synthetic-scannet"}
    # A second run finds every dataset up to date and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*.bin")}
    capsys.readouterr()
    assert dos_main(["data", "generate", "--scale", "smoke", "--out", str(again)]) == 0
    assert capsys.readouterr().out.count("up to date") == 5
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*.bin")} == before


def test_different_seed_gives_different_scenes(tmp_path):
    a = generate_lidar(tmp_path / "a", "nuscenes", "nuscenes", 2, seed=1, frames_per_sequence=1, azimuth_steps=60)
    b = generate_lidar(tmp_path / "b", "nuscenes", "nuscenes", 2, seed=2, frames_per_sequence=1, azimuth_steps=60)
    assert a["points"] != b["points"] or _digest(tmp_path / "a") != _digest(tmp_path / "b")
    bin_a = (tmp_path / "a/sequences/00/velodyne/000000.bin").read_bytes()
    assert bin_a != (tmp_path / "b/sequences/00/velodyne/000000.bin").read_bytes()
    generate_rooms(tmp_path / "r1", 2, seed=1, rays_per_view=300)
    generate_rooms(tmp_path / "r2", 2, seed=2, rays_per_view=300)
    assert (tmp_path / "r1/train/scene0000_00/coord.npy").read_bytes() != \
        (tmp_path / "r2/train/scene0000_00/coord.npy").read_bytes()


def test_scenes_do_not_depend_on_how_many_are_generated(tmp_path):
    generate_rooms(tmp_path / "few", 3, seed=5, val_rooms=1, rays_per_view=300)
    generate_rooms(tmp_path / "many", 5, seed=5, val_rooms=1, rays_per_view=300)
    for scene in ("scene0000_00", "scene0001_00"):
        assert _digest(tmp_path / "few/train" / scene) == _digest(tmp_path / "many/train" / scene)


# -- formats --------------------------------------------------------------------------------------------------------
def test_kitti_files_follow_the_format(smoke):
    root = smoke / "synthetic-semantickitti"
    labels = yaml.safe_load((root / "labels.yaml").read_text())
    assert labels["names"] == street.NAMES
    assert labels["learning_map"][0] == -1 and labels["learning_map"][OUTLIER_LABEL] == -1
    assert labels["sensor"]["beams"] == 64
    seqs = sorted(p.name for p in (root / "sequences").iterdir())
    assert sorted(labels["splits"]["train"] + labels["splits"]["val"]) == seqs and labels["splits"]["val"]
    things = {street.RAW[name] for name, _, _, thing in street.CLASSES if thing}
    for bin_path in sorted((root / "sequences").glob("*/velodyne/*.bin")):
        label_path = bin_path.parent.parent / "labels" / bin_path.name.replace(".bin", ".label")
        size = bin_path.stat().st_size
        assert size % 16 == 0 and size > 0  # float32 x 4 per point
        n = size // 16
        assert label_path.stat().st_size == 4 * n  # one uint32 per point
        points = np.fromfile(bin_path, dtype="<f4").reshape(n, 4)
        raw = np.fromfile(label_path, dtype="<u4")
        semantic, instance = raw & 0xFFFF, raw >> 16
        assert set(np.unique(semantic).tolist()) <= set(labels["learning_map"])
        assert np.all((points[:, 3] >= 0) & (points[:, 3] <= 1))
        is_thing = np.isin(semantic, list(things))
        assert np.all(instance[~is_thing] == 0) and np.all(instance[is_thing] > 0)


def test_kitti_label_bits_round_trip(tmp_path):
    pts = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_kitti_scan(tmp_path, "07", 3, pts, np.array([40, 10, 10]), np.array([0, 5, 70000 % 65536]))
    raw = np.fromfile(tmp_path / "sequences/07/labels/000003.label", dtype=np.uint32)
    assert raw.tolist() == [40, (5 << 16) | 10, ((70000 % 65536) << 16) | 10]
    p, sem, ins = read_kitti_scan(tmp_path, "07", 3)
    assert np.array_equal(p, pts) and sem.tolist() == [40, 10, 10]
    with pytest.raises(ValueError):
        write_kitti_scan(tmp_path, "07", 4, pts, np.array([40, 10, 70000]), np.zeros(3, int))


def test_scannet_files_follow_the_format(smoke):
    root = smoke / "synthetic-scannet"
    labels = yaml.safe_load((root / "labels.yaml").read_text())
    assert labels["names"] == furniture.NAMES20 and len(labels["names200"]) == 200
    assert (len(labels["head"]), len(labels["common"]), len(labels["tail"])) == (66, 68, 66)
    assert sorted(labels["head"] + labels["common"] + labels["tail"]) == list(range(200))
    coarse_of = np.array(labels["coarse_of_fine"])
    scenes = sorted((root / "train").iterdir()) + sorted((root / "val").iterdir())
    assert [s.name for s in scenes] == labels["splits"]["train"] + labels["splits"]["val"]
    for scene in scenes:
        arrays = {k: np.load(scene / f"{k}.npy") for k in
                  ("coord", "color", "normal", "segment20", "segment200", "instance")}
        n = len(arrays["coord"])
        assert n > 1000
        assert arrays["coord"].dtype == np.float32 and arrays["coord"].shape == (n, 3)
        assert arrays["color"].dtype == np.uint8 and arrays["color"].shape == (n, 3)
        assert arrays["normal"].dtype == np.float32 and np.allclose(np.linalg.norm(arrays["normal"], axis=1), 1, atol=1e-4)
        for k in ("segment20", "segment200", "instance"):
            assert arrays[k].dtype == np.int64 and arrays[k].shape == (n,)
        s200, s20 = arrays["segment200"], arrays["segment20"]
        assert s200.min() >= -1 and s200.max() < 200
        assert np.array_equal(s20, np.where(s200 >= 0, coarse_of[np.maximum(s200, 0)], -1))
        structure = np.isin(s20, [0, 1])  # wall, floor: no instance
        assert np.all(arrays["instance"][structure] == -1) and np.all(arrays["instance"][s20 >= 2] >= 0)


# -- geometry and sensors -------------------------------------------------------------------------------------------
def test_ground_points_lie_on_their_surfaces(lidar_sample):
    for name, root in lidar_sample.items():
        profile, style = PROFILES[name], street.STYLES[name]
        points, semantic, _ = read_kitti_scan(root, "00", 0)
        road = points[semantic == street.RAW["road"], 2]
        sidewalk = points[semantic == street.RAW["sidewalk"], 2]
        assert len(road) > 200 and len(sidewalk) > 20
        assert np.abs(road + profile.height).max() < 0.12, name  # road top at z = 0, sensor at its height
        assert np.median(np.abs(sidewalk + profile.height - style.curb)) < 0.02, name


def _enclosure() -> SceneBuilder:
    b = SceneBuilder()
    b.box((0, 0, 10.0), (30.0, 30.0, 10.5), label=40)  # the sensor inside a big box: every beam returns
    return b


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_beam_count_shows_as_elevation_rings(name):
    profile = PROFILES[name]
    out = scan(_enclosure().build(), profile, np.random.default_rng(0), 90)
    xyz = out["points"][:, :3].astype(np.float64)
    elevation = np.rad2deg(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    levels = np.sort(elevation)
    rings = 1 + int((np.diff(levels) > 0.02).sum())
    assert rings == profile.beams
    assert abs(levels[-1] - profile.fov_up) < 0.2 and abs(levels[0] - profile.fov_down) < 0.2
    assert len(beam_elevations(profile)) == profile.beams


def test_intensity_depends_on_material():
    b = SceneBuilder()
    b.box((0, 0, -0.5), (40, 40, 0.5), label=40, reflectivity=street.REFLECTIVITY["road"])
    b.box((6, 0, 1.5), (0.02, 3.0, 1.5), label=81, reflectivity=street.REFLECTIVITY["traffic-sign"])
    out = scan(b.build(), PROFILES["semantickitti"], np.random.default_rng(0), 360)
    remission = out["points"][:, 3]
    assert remission[out["label"] == 81].mean() > 3 * remission[out["label"] == 40].mean()


def test_rooms_are_occluded_by_walls():
    cam = np.array([[0.0, 0.0, 1.5]])
    b = SceneBuilder()
    b.box((0, 0, -0.05), (10, 10, 0.05), label=1, instance=-1)
    b.box((4.0, 0, 1.0), (0.3, 0.3, 1.0), label=7, instance=0)  # hidden behind the partition
    with_wall = SceneBuilder()
    with_wall.extend(b)
    with_wall.box((2.0, 0, 1.5), (0.1, 5.0, 1.5), label=0, instance=-1)  # partition wall, x = 1.9 .. 2.1
    seen = rooms.scan_room(with_wall.build(), cam, 4000, np.random.default_rng(0))
    assert not np.any(seen["fine"] == 7)
    behind = (seen["coord"][:, 0] > 2.2) & (np.abs(seen["coord"][:, 1]) < 4.0)
    assert not behind.any()
    control = rooms.scan_room(b.build(), cam, 4000, np.random.default_rng(0))
    assert np.sum(control["fine"] == 7) > 10
    # Normals face the camera.
    to_cam = cam[0] - seen["coord"]
    assert np.mean((seen["normal"] * to_cam).sum(1) > 0) > 0.99


def test_room_points_lie_inside_the_room_and_floor_is_flat(tmp_path):
    generate_rooms(tmp_path, 3, seed=9, val_rooms=1, rays_per_view=1500)
    for scene in sorted((tmp_path / "train").iterdir()):
        coord, s20 = np.load(scene / "coord.npy"), np.load(scene / "segment20.npy")
        assert np.all(np.abs(coord[s20 == 1, 2]) < 0.02)  # floor at z = 0
        inner = coord[s20 >= 2]
        lo, hi = coord[s20 == 0].min(0), coord[s20 == 0].max(0)  # walls bound everything else
        assert np.all(inner[:, :2] >= lo[:2] - 0.02) and np.all(inner[:, :2] <= hi[:2] + 0.02)


# -- long tails and domains -----------------------------------------------------------------------------------------
def test_outdoor_class_frequencies_are_long_tailed(lidar_sample):
    lmap = street.learning_map()
    lut = np.full(max(lmap) + 1, -1)
    lut[list(lmap)] = list(lmap.values())
    total = np.zeros(len(street.NAMES))
    for root in lidar_sample.values():
        for path in sorted(root.glob("sequences/*/labels/*.label")):
            ids = lut[np.fromfile(path, np.uint32) & 0xFFFF]
            total += np.bincount(ids[ids >= 0], minlength=len(total))
    share = np.sort(total)[::-1] / total.sum()
    assert share[:3].sum() > 0.55  # road, building and one more carry most points
    assert (total > 0).sum() >= 14  # while most rare classes are present
    assert share[share > 0][-1] < 1e-3
    assert zipf_slope(total) < -1.5
    for rare in ("pedestrian", "traffic-sign", "bicycle"):
        assert 0 < total[street.NAMES.index(rare)] / total.sum() < 0.01


def test_fine_classes_follow_a_zipf_prior():
    freq = rooms.expected_frequency()
    split = rooms.frequency_split()
    assert freq[split["head"]].min() >= freq[split["common"]].max() >= freq[split["tail"]].max()
    assert freq.max() / freq.min() > 50
    assert zipf_slope(freq) < -0.8


def test_styles_and_sensors_are_distinct_domains(lidar_sample):
    def stats(root):
        pts = np.concatenate([read_kitti_scan(root, "00", f)[0] for f in (0, 1)])
        sem = np.concatenate([read_kitti_scan(root, "00", f)[1] for f in (0, 1)])
        z_building = pts[sem == street.RAW["building"], 2]
        return len(pts), np.percentile(z_building, 90) if len(z_building) else 0.0

    by_name = {name: stats(root) for name, root in lidar_sample.items()}
    # Waymo-like suburbs: low buildings; Paris-like facades are tall and close.
    assert by_name["parisluco"][1] > by_name["waymo"][1] + 2.0
    profiles = {tuple(sorted(p.as_dict().items())) for p in PROFILES.values()}
    assert len(profiles) == 4


def test_figures_are_reproducible(smoke, tmp_path):
    first = plot_benchmark(smoke, tmp_path / "a")
    second = plot_benchmark(smoke, tmp_path / "b")
    assert len(first) == 4
    for a, b in zip(first, second):
        data = a.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data == b.read_bytes()


def test_paper_density_scans_have_real_nuscenes_size(tmp_path):
    """--density paper: LiDAR datasets at their sensor's full resolution (nuScenes-like: 32 x 1088 rays, real
    scans have ~34k points), rooms unchanged; the reduced resolution otherwise."""
    from dos.data.synthetic.benchmark import scale_datasets

    reduced, paper = scale_datasets("mini"), scale_datasets("mini", "paper")
    assert reduced["synthetic-nuscenes"]["azimuth_steps"] == 480
    assert "azimuth_steps" not in paper["synthetic-nuscenes"]
    assert paper["synthetic-scannet"] == reduced["synthetic-scannet"]
    with pytest.raises(ValueError, match="density"):
        scale_datasets("mini", "dense")
    counts = generate_lidar(tmp_path / "nu", "nuscenes", "nuscenes", 2, seed=0, frames_per_sequence=1)
    assert 25_000 <= counts["points"] / counts["scans"] <= 35_000, counts


# -- a rerun checks every file, not only the manifest --------------------------------------------------------------
def _damage_truncate(root: Path) -> str:
    path = root / "synthetic-waymo/sequences/00/velodyne/000001.bin"
    path.write_bytes(path.read_bytes()[:-16])
    return "synthetic-waymo: not up to date (sequences/00/velodyne/000001.bin has"


def _damage_delete(root: Path) -> str:
    (root / "synthetic-nuscenes/sequences/01/labels/000000.label").unlink()
    return "synthetic-nuscenes: not up to date (sequences/01/labels/000000.label is missing"


def _damage_same_size(root: Path) -> str:
    path = root / "synthetic-scannet/train/scene0001_00/segment20.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    return "synthetic-scannet: not up to date (train/scene0001_00/segment20.npy's content differs (sha256)"


def _damage_stray(root: Path) -> str:
    (root / "synthetic-parisluco/sequences/00/velodyne/000099.bin").write_bytes(b"\0" * 16)
    return "synthetic-parisluco: not up to date (sequences/00/velodyne/000099.bin is not in the manifest"


def _old_manifest(root: Path) -> str:
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["datasets"].values():
        del entry["files"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    return "synthetic-semantickitti: not up to date (the manifest records no file sizes and hashes"


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_delete, _damage_same_size, _damage_stray, _old_manifest])
def test_a_damaged_dataset_is_not_up_to_date(smoke, tmp_path, capsys, damage):
    out = tmp_path / "bench"
    shutil.copytree(smoke, out)
    expected = damage(out)
    capsys.readouterr()
    assert dos_main(["data", "generate", "--scale", "smoke", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert expected in printed and "; regenerating" in printed
    assert printed.count("up to date") - printed.count("not up to date") == (0 if damage is _old_manifest else 4)
    assert _digest(out) == _digest(smoke)  # repaired, byte for byte
    capsys.readouterr()
    assert dos_main(["data", "generate", "--scale", "smoke", "--out", str(out)]) == 0
    assert capsys.readouterr().out.count(": up to date") == 5


def test_manifest_records_every_file(smoke):
    manifest = json.loads((smoke / "manifest.json").read_text())
    for name, entry in manifest["datasets"].items():
        files = {str(p.relative_to(smoke / name)): p for p in (smoke / name).rglob("*") if p.is_file()}
        assert set(entry["files"]) == set(files)
        for relative, path in files.items():
            assert entry["files"][relative] == {"size": path.stat().st_size,
                                                "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_generate_never_replaces_a_folder_it_did_not_write(tmp_path):
    from dos.data.synthetic.benchmark import scale_datasets
    from dos.errors import DosError

    first = next(iter(scale_datasets("smoke", "scale")))
    mine = tmp_path / first
    mine.mkdir()
    (mine / "my_scans.txt").write_text("not the benchmark's\n")
    with pytest.raises(DosError, match=f"{mine}: exists but is not a dataset recorded"):
        generate_benchmark(tmp_path, "smoke", 0, log=lambda *a: None)
    assert sorted(p.name for p in mine.iterdir()) == ["my_scans.txt"]
