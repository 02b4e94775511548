"""The install story: pyproject and environment.yml agree, and `import dos` needs only torch and numpy."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# pip names whose conda-forge package has another name
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r): r for r in project["dependencies"] + extras["workflow"] + extras["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.update({_name(r): r for r in dep["pip"] if not r.startswith("-e")})
        elif _name(dep) not in ("python", "pip"):
            conda[_name(dep)] = dep
    listed = {**pip, **{k: v for k, v in conda.items()}}
    expected = {CONDA_NAMES.get(n, n) for n in wanted}
    assert set(listed) == expected
    for name, requirement in wanted.items():  # same lower bounds
        bound = re.search(r">=\s*([\w.]+)", requirement)
        other = listed[CONDA_NAMES.get(name, name)]
        assert bound and bound.group(1) in other, f"{name}: {requirement} vs {other}"


def test_import_dos_needs_only_torch_and_numpy():
    blocker = (
        "import sys\n"
        "BLOCKED = {'yaml', 'pandas', 'matplotlib', 'spconv', 'torch_scatter', 'flash_attn', 'snakemake', "
        "'scipy', 'ot', 'tensorboard'}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'blocked optional import: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import dos, dos.objectives, dos.objectives.targets, dos.pretrain.model, dos.pretrain.batch\n"
        "import dos.data.transforms, dos.models.ptv3\n"
        "print('imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "imported" in out.stdout


def test_cli_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "dos", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "bench" in out.stdout and "reproduce" in out.stdout


def test_gpu_tests_are_deselected_by_default_and_collected_with_the_marker():
    """CI has no GPU: a plain `pytest` must not collect tests/gpu; `pytest -m gpu` must."""
    plain = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/gpu"],
                           capture_output=True, text=True, cwd=ROOT)
    assert "deselected" in plain.stdout and "test_cuda.py::" not in plain.stdout, plain.stdout
    marked = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "tests/gpu"],
                            capture_output=True, text=True, cwd=ROOT)
    assert "test_cuda.py::test_ptv3_on_cuda_fp32_equals_cpu" in marked.stdout, marked.stdout
