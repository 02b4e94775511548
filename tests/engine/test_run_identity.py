"""A run folder's outputs always match its configuration (issue: run identity, safe output folders).

Each test is a defect found by a hostile-user probe of 7392490: stale or hybrid results under new labels, --out
writing into any folder, nonsense configs accepted, `| head` ending training, tracebacks without a file name, and
records lost or misleading.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
import torch

from tests.engine.conftest import CONFIGS, ROOT, dos_command, run_dos, tiny_pretrain_overrides, tiny_segmentation_overrides

PRETRAIN = str(CONFIGS / "pretrain" / "dos_outdoor.yaml")
PROBE = str(CONFIGS / "probe" / "lp_outdoor.yaml")


def _digest(folder) -> dict[str, str]:
    """sha256 of every file under a folder (what must not change when a command is refused)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(result, *needles: str) -> str:
    """The one-line error of a refused command (exit 2, no traceback), checked to mention each needle."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("dos: error:"), result.stderr
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def _student(path):
    return torch.load(path, map_location="cpu", weights_only=False)["student"]


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def finished(smoke_data, tmp_path_factory):
    """A finished 3-step smoke pretraining."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data))
    return out


# 1. Stale or hybrid results under new labels ----------------------------------------------------------------

def test_a_finished_pretraining_rerun_with_another_variant_is_refused_and_nothing_changes(smoke_data, finished):
    before = _digest(finished)
    result = run_dos("pretrain", PRETRAIN, "--out", str(finished), check=False,
                     overrides=tiny_pretrain_overrides(smoke_data) + ["distill.mode=naive"])
    _refused(result, str(finished), "distill.mode", "'observable' -> 'naive'")
    assert _digest(finished) == before


def test_a_half_done_run_resumed_with_another_seed_or_lr_is_refused(smoke_data, tmp_path):
    out = tmp_path / "run"
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    (out / "encoder.pt").unlink()  # what Snakemake does to a job it re-runs; the checkpoint stays
    (out / "summary.json").unlink()
    before = _digest(out)
    for change in ("seed=1", "optim.lr=0.01", "objective.zipf_alpha=0.5", "train.max_steps=1"):
        overrides = tiny_pretrain_overrides(smoke_data, steps=2) + [change]
        _refused(run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=overrides, check=False),
                 change.split("=")[0])
        assert _digest(out) == before, change


def test_restart_if_changed_discards_the_old_run_and_equals_a_fresh_run(smoke_data, tmp_path):
    out = tmp_path / "run"
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    (out / "encoder.pt").unlink()
    changed = tiny_pretrain_overrides(smoke_data, steps=2) + ["seed=1"]
    result = run_dos("pretrain", PRETRAIN, "--out", str(out), "--restart-if-changed", overrides=changed)
    assert "starting afresh" in result.stdout and "resuming" not in result.stdout
    fresh = tmp_path / "fresh"
    run_dos("pretrain", PRETRAIN, "--out", str(fresh), overrides=changed)
    assert _same(_student(out / "encoder.pt"), _student(fresh / "encoder.pt"))
    assert json.loads((out / "run.json").read_text())["config"]["seed"] == 1


def test_a_probe_rerun_after_its_encoder_changed_never_reports_the_old_metrics(smoke_data, tmp_path):
    encoder = tmp_path / "pretrain"
    run_dos("pretrain", PRETRAIN, "--out", str(encoder), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    probe = tmp_path / "probe"
    probe_overrides = tiny_segmentation_overrides(smoke_data, steps=2) + [f"head.pretrained={encoder}"]
    run_dos("probe", PROBE, "--out", str(probe), overrides=probe_overrides)
    old_metrics = (probe / "metrics.json").read_text()
    # the workflow re-runs the pretraining with other settings, and deletes the probe's metrics.json
    run_dos("pretrain", PRETRAIN, "--out", str(encoder), "--restart-if-changed",
            overrides=tiny_pretrain_overrides(smoke_data, steps=2) + ["seed=3"])
    (probe / "metrics.json").unlink()
    _refused(run_dos("probe", PROBE, "--out", str(probe), overrides=probe_overrides, check=False),
             "input pretrained changed")
    assert not (probe / "metrics.json").exists()
    run_dos("probe", PROBE, "--out", str(probe), "--restart-if-changed", overrides=probe_overrides)
    fresh = tmp_path / "fresh_probe"
    run_dos("probe", PROBE, "--out", str(fresh), overrides=probe_overrides)
    new, reference = (json.loads((p / "metrics.json").read_text()) for p in (probe, fresh))
    assert new["miou"] == reference["miou"] and new["macc"] == reference["macc"] and new["allacc"] == reference["allacc"]
    assert (probe / "metrics.json").read_text() != old_metrics


def test_downstream_commands_refuse_an_encoder_that_differs_from_the_one_its_run_recorded(smoke_data, finished,
                                                                                          tmp_path):
    copy = tmp_path / "copied_run"
    copy.mkdir()
    for path in finished.iterdir():
        if path.is_file():
            (copy / path.name).write_bytes(path.read_bytes())
    state = torch.load(copy / "encoder.pt", weights_only=False)
    state["student"] = {k: v + 1 if v.is_floating_point() else v for k, v in state["student"].items()}
    torch.save(state, copy / "encoder.pt")
    overrides = tiny_segmentation_overrides(smoke_data, steps=1) + [f"head.pretrained={copy}"]
    _refused(run_dos("probe", PROBE, "--out", str(tmp_path / "probe"), overrides=overrides, check=False),
             "encoder.pt", "differs from the file its run recorded")
    (copy / "summary.json").unlink()  # an unfinished run
    _refused(run_dos("probe", PROBE, "--out", str(tmp_path / "probe"), overrides=overrides, check=False),
             "not complete")
    assert not (tmp_path / "probe").exists()


# 2. --out writes into any folder ----------------------------------------------------------------------------

def test_probe_out_pointing_at_a_pretraining_run_is_refused_untouched(smoke_data, finished, tmp_path):
    before = _digest(finished)
    overrides = tiny_segmentation_overrides(smoke_data, steps=1) + [f"head.pretrained={finished}"]
    _refused(run_dos("probe", PROBE, "--out", str(finished), overrides=overrides, check=False),
             "holds a dos pretrain run, not a dos probe run")
    assert _digest(finished) == before


def test_out_pointing_at_a_folder_of_other_files_or_at_a_file_is_refused_untouched(smoke_data, tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "config.yaml").write_text("scales: {}\n")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    for out, needle in ((config_dir, "not a dos pretrain run"), (a_file, "is a file")):
        _refused(run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data),
                         check=False), str(out), needle)
    assert (config_dir / "config.yaml").read_text() == "scales: {}\n" and sorted(os.listdir(config_dir)) == ["config.yaml"]
    assert a_file.read_text() == "mine\n"


def test_out_inside_another_run_folder_is_refused(smoke_data, finished):
    before = _digest(finished)
    nested = finished / "nested"
    _refused(run_dos("pretrain", PRETRAIN, "--out", str(nested), overrides=tiny_pretrain_overrides(smoke_data),
                     check=False), "lies inside the run folder")
    assert not nested.exists() and _digest(finished) == before


# 3, 9. Values checked before any file is written ------------------------------------------------------------

@pytest.mark.parametrize("override, needle", [
    ("train.max_steps=-1", "max_steps must be >= 0"),
    ("distill.num_prototypes=0", "num_prototypes must be > 0"),
    ("views.grid_size=0", "grid_size must be > 0"),
    ("views.grid_size=-0.1", "grid_size must be > 0"),
    ("distill.head_dim=-4", "head_dim must be > 0"),
    ("model.supervision_stage=9", "supervision_stage"),
    ("model.config=no_such_model", "model.config 'no_such_model'"),
    ("model.overrides.no_such_key=1", "no_such_key"),
    ("optim.lr=.nan", "finite"),
    ("train.max_steps=abc", "--set train.max_steps=abc"),
])
def test_nonsense_settings_fail_with_one_line_before_the_run_folder_exists(smoke_data, tmp_path, override, needle):
    out = tmp_path / "run"
    result = run_dos("pretrain", PRETRAIN, "--out", str(out), check=False,
                     overrides=tiny_pretrain_overrides(smoke_data) + [override])
    _refused(result, needle)
    assert not out.exists()


def test_a_checkpoint_beyond_max_steps_is_an_error(tmp_path):
    from dos.engine.loop import TrainConfig, train_loop
    from dos.errors import DosError

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def step_fn(step, progress):
        loss = model(torch.ones(1, 2)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach(), {}

    config = TrainConfig(batch_size=1, max_steps=4, checkpoint_every=1, log_every=1)
    train_loop(out_dir=tmp_path, model=model, optimizer=optimizer, total_steps=4, config=config, step_fn=step_fn)
    with pytest.raises(DosError, match="beyond this run's 2 steps"):
        train_loop(out_dir=tmp_path, model=model, optimizer=optimizer, total_steps=2, config=config, step_fn=step_fn)


# 7. `dos pretrain ... | head` -------------------------------------------------------------------------------

def test_a_reader_leaving_the_pipe_does_not_end_training(smoke_data, tmp_path):
    out = tmp_path / "run"
    cmd = dos_command("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=4))
    read, write = os.pipe()
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    os.close(read)  # like `| head` that has already exited
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert (out / "encoder.pt").is_file() and (out / "summary.json").is_file()


# 10. One-line errors naming the file ------------------------------------------------------------------------

def test_a_truncated_checkpoint_is_an_error_naming_it(smoke_data, tmp_path):
    out = tmp_path / "run"
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    (out / "encoder.pt").unlink()
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    _refused(run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2),
                     check=False), str(out / "checkpoint.pt"), "truncated or corrupt")


def test_a_corrupt_encoder_file_is_an_error_naming_it(smoke_data, tmp_path):
    encoder = tmp_path / "weights.pt"
    encoder.write_bytes(b"PK\x03\x04 not really a zip")
    overrides = tiny_segmentation_overrides(smoke_data, steps=1) + [f"head.pretrained={encoder}"]
    _refused(run_dos("probe", PROBE, "--out", str(tmp_path / "probe"), overrides=overrides, check=False),
             str(encoder))


@pytest.mark.parametrize("kind", ["folder", "binary", "empty", "duplicate"])
def test_a_bad_config_path_is_a_one_line_error_naming_it(tmp_path, kind):
    path = tmp_path / "config.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "empty":
        path.write_text("")
    else:
        path.write_text("seed: 0\ntrain:\n  max_steps: 3\nseed: 1\n")
    needle = {"folder": "is a folder", "binary": "not a text file", "empty": "empty", "duplicate": "duplicate key"}
    _refused(run_dos("pretrain", str(path), "--out", str(tmp_path / "run"), check=False), str(path), needle[kind])
    assert not (tmp_path / "run").exists()


def test_a_full_disk_is_a_one_line_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    from dos.errors import DosError
    from dos.utils import io

    target = tmp_path / "summary.json"
    io.write_json(target, {"old": 1})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(io.os, "replace", full)
    with pytest.raises(DosError, match=f"{target}: cannot write \\(No space left on device\\)"):
        io.write_json(target, {"new": 2})
    assert json.loads(target.read_text()) == {"old": 1}
    assert sorted(os.listdir(tmp_path)) == ["summary.json"]  # no temporary file left


# 11. Records ------------------------------------------------------------------------------------------------

def test_re_invoking_a_finished_run_changes_no_file(smoke_data, finished):
    before = _digest(finished)
    result = run_dos("pretrain", PRETRAIN, "--out", str(finished), overrides=tiny_pretrain_overrides(smoke_data))
    assert "nothing rewritten" in result.stdout
    assert _digest(finished) == before


def test_summary_accumulates_wall_time_over_a_resume(smoke_data, tmp_path):
    out = tmp_path / "run"
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    first = json.loads((out / "summary.json").read_text())
    ledger = torch.load(out / "checkpoint.pt", weights_only=False)["extra"]["ledger"]
    # a longer run of the same settings is another run; so resume the same run from its step-1 checkpoint
    # instead: drop the outputs and rewind the checkpoint's step, as a run killed after step 1 would leave it
    (out / "encoder.pt").unlink()
    (out / "summary.json").unlink()
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    state["step"] = 1
    torch.save(state, out / "checkpoint.pt")
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_at_step"] == 1
    assert summary["wall_seconds"] == pytest.approx(ledger["seconds"] + summary["invocation_wall_seconds"], rel=1e-6)
    assert summary["wall_seconds"] > summary["invocation_wall_seconds"] and ledger["seconds"] > 0
    assert summary["peak_memory_bytes"] >= ledger["peak_memory_bytes"] > 0
    assert first["resumed_at_step"] == 0


def test_written_files_follow_the_umask(tmp_path):
    from dos.utils.io import write_text

    previous = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


# 12. Errors that blame the right place ----------------------------------------------------------------------

def test_a_bad_set_value_is_blamed_on_the_set_not_the_yaml(smoke_data, tmp_path):
    line = _refused(run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "run"), check=False,
                            overrides=tiny_pretrain_overrides(smoke_data) + ["objective.zipf_alpha=-1"]),
                    "--set objective.zipf_alpha=-1")
    assert "zipf_alpha must be >= 0" in line
