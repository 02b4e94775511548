"""Info pickles are read without trusting them: corrupted copies of the real ones either load or raise a
DosError naming the file -- never another exception, a crash, or a memory blow-up.

The corruption battery runs in a subprocess whose address space is capped (RLIMIT_AS), so that a
corruption asking for gigabytes shows as a failure of this test instead of as a machine out of memory.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dos.errors import DosError
from dos.data.readers.pickles import load_pickle
from tests.conftest import REPO_ROOT

NUSCENES = "nuscenes/mmdet3d_pr2859/tests/data/nuscenes"
SCANNET = "scannet/mmdet3d/tests/data/scannet"
ADDRESS_SPACE = 3 << 29  # 1.5 GiB

BATTERY = r'''
import functools, json, pickletools, resource, sys
from pathlib import Path

from dos.errors import DosError
from dos.data.readers import open_reader
from dos.data.readers import nuscenes, scannet

for module in (nuscenes, scannet):  # parse each label spec once, not once per case: 10x faster
    module.load_label_spec = functools.lru_cache(module.load_label_spec)

fmt, root, name, limit = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
info = root / name
original = info.read_bytes()
n = len(original)


def corruptions():
    """Deterministic damage: truncations, byte flips all along the file, and huge length / memo-index fields."""
    for cut in sorted({0, 1, 2, 3, 10, 100, n // 4, n // 3, n // 2, 2 * n // 3, n - 100, n - 2, n - 1}):
        yield f"truncated to {cut}", original[:cut]
    for step, value in ((17, None), (97, 0x00), (101, 0x7F), (103, 0x80), (107, 0x01)):
        for at in range(step % 5, n, step):
            data = bytearray(original)
            data[at] = data[at] ^ 0xFF if value is None else value
            yield f"byte {at} -> {data[at]:#x}", bytes(data)
    seen = {}
    for op, arg, at in pickletools.genops(original):
        if op.name in ("LONG_BINPUT", "LONG_BINGET", "BINUNICODE", "BININT", "BINBYTES") and seen.get(op.name, 0) < 40:
            seen[op.name] = seen.get(op.name, 0) + 1
            for high in (0x40, 0x7F, 0xFF):
                data = bytearray(original)
                data[at + 4] = high  # the most significant byte of the 4-byte argument
                yield f"{op.name} at {at}: high byte {high:#x}", bytes(data)


resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
outcomes, bad = {"loaded": 0, "refused": 0, "scan error": 0}, []
for label, data in corruptions():
    info.write_bytes(data)
    try:
        reader = open_reader(fmt, root)
    except DosError as error:
        if str(info) in str(error):
            outcomes["refused"] += 1
        else:
            bad.append(f"{label}: DosError without the file's name: {error}")
        continue
    except BaseException as error:
        bad.append(f"{label}: {type(error).__name__}: {str(error)[:200]}")
        continue
    try:  # what the entries point to may now be missing: a DosError about that file is fine
        for split in reader.splits():
            for scan_id in reader.scan_ids(split):
                reader.load(split, scan_id)
        outcomes["loaded"] += 1
    except DosError:
        outcomes["scan error"] += 1
    except BaseException as error:
        bad.append(f"{label} (loading scans): {type(error).__name__}: {str(error)[:200]}")
print(json.dumps({"outcomes": outcomes, "bad": bad}))
'''


def _imports_torch(module: str) -> bool:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT,
                          check=True).stdout.strip() == "True"


def test_reader_modules_do_not_import_torch():
    """The battery's address-space cap assumes it; torch alone maps more than the cap."""
    assert not _imports_torch("dos.data.readers.nuscenes")
    assert not _imports_torch("dos.data.readers.scannet")


@pytest.mark.parametrize("fmt, sample, name", [("nuscenes", NUSCENES, "nus_info.pkl"),
                                               ("scannet", SCANNET, "scannet_infos.pkl")])
def test_corrupted_info_pickles_load_or_raise_dos_error(real_fixtures, tmp_path, fmt, sample, name):
    root = tmp_path / "root"
    shutil.copytree(real_fixtures / sample, root)  # the copy is damaged, never the fixture
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", BATTERY, fmt, str(root), name, str(ADDRESS_SPACE)],
                            capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert result.returncode == 0, f"battery died (status {result.returncode}):\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["bad"] == [], "\n".join(report["bad"][:20])
    outcomes = report["outcomes"]
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10, outcomes  # the damage both breaks and spares


def _dump(path: Path, obj, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4])
def test_what_info_pickles_hold_still_loads(tmp_path, protocol):
    """Old mmdet3d infos hold numpy arrays (boxes, rotations, name arrays) and scalars."""
    obj = {"data_list": [{"gt_boxes": np.arange(14, dtype=np.float32).reshape(2, 7),
                          "gt_names": np.array(["car", "pedestrian"]), "rot": np.eye(3)[:, ::2],
                          "num": np.int64(3), "score": np.float64(0.5), "flag": np.bool_(True), "raw": b"\x00\xff",
                          "tags": {"a", "b"}, "order": collections.OrderedDict(a=1),
                          "groups": collections.defaultdict(list, {"x": [1]})}]}
    loaded = load_pickle(_dump(tmp_path / "infos.pkl", obj, protocol), "info pickle")["data_list"][0]
    for key, value in obj["data_list"][0].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[key], value)
            assert loaded[key].dtype == value.dtype
        else:
            assert loaded[key] == value and type(loaded[key]) is type(value)


@pytest.mark.parametrize("obj, message", [
    (os.system, "global posix.system is not allowed"),
    (np.array([{}, []], dtype=object), "arrays of Python objects are not allowed"),
    (collections.Counter(a=1), "global collections.Counter is not allowed"),
])
def test_other_globals_and_object_arrays_are_refused(tmp_path, obj, message):
    path = _dump(tmp_path / "infos.pkl", obj)
    with pytest.raises(DosError, match=re.escape(f"{path}: not a readable info pickle") + f".*{message}"):
        load_pickle(path, "info pickle")


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path):
    path = _dump(tmp_path / "infos.pkl", {"data_list": []})
    size = path.stat().st_size
    with pytest.raises(DosError, match=re.escape(f"{path}: {size} bytes is more than the {size - 1} bytes")):
        load_pickle(path, "info pickle", max_bytes=size - 1)


def test_entries_of_the_wrong_type_name_the_file(tmp_path):
    from dos.data.readers.nuscenes import NuScenesReader

    for data, message in ((["not a dict"], "entry 0 is a str, not a dict"),
                          ({"metainfo": [1], "data_list": []}, "info pickle's `metainfo` is a list, not a dict"),
                          ([{"token": "t", "lidar_points": {"lidar_path": 7}}], "entry 0: lidar_points.lidar_path "
                                                                                 "is a int, not a path"),
                          ({"metainfo": {"version": 1.0}, "data_list": [{}]}, "metainfo version is a float")):
        path = _dump(tmp_path / "nuscenes_infos_train.pkl", data)
        with pytest.raises(DosError, match=re.escape(f"{path}: {message}")):
            NuScenesReader(tmp_path)
