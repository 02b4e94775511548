"""Every engine command end to end at smoke scale, through the real command line."""

import csv
import math
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.engine.conftest import (CONFIGS, ROOT, dos_command, run_dos, tiny_pretrain_overrides,
                                   tiny_segmentation_overrides)

PRETRAIN = str(CONFIGS / "pretrain" / "dos_outdoor.yaml")
PROBE = str(CONFIGS / "probe" / "lp_outdoor.yaml")
FINETUNE = str(CONFIGS / "finetune" / "ft_outdoor.yaml")


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def _same_state(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def pretrained(smoke_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    run_dos("pretrain", PRETRAIN, "--out", str(out), overrides=tiny_pretrain_overrides(smoke_data))
    return out


def test_pretrain_writes_weights_history_and_provenance(pretrained):
    for name in ("encoder.pt", "checkpoint.pt", "history.csv", "config.yaml", "provenance.json", "summary.json"):
        assert (pretrained / name).is_file(), name
    provenance = json.loads((pretrained / "provenance.json").read_text())
    assert provenance["seed"] == 0 and len(provenance["config_hash"]) == 64 and provenance["data_fingerprint"]
    assert "torch" in provenance["packages"]
    scenes, per_epoch = provenance["train_scenes"], provenance["steps_per_epoch"]   # the tables' budget notes
    assert provenance["batch_size"] == 2 and per_epoch == max(1, scenes // 2) and scenes >= 1
    assert provenance["epochs"] == round(3 / per_epoch, 2)
    history = (pretrained / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and "prototype_entropy" in history[0] and "teacher_temp" in history[0]
    weights = _weights(pretrained / "encoder.pt")
    assert not _same_state(weights["student"], weights["teacher"])  # the EMA teacher lags the student


def test_same_seed_and_config_give_bit_identical_weights(smoke_data, pretrained, tmp_path):
    again = tmp_path / "seed0"
    run_dos("pretrain", PRETRAIN, "--out", str(again), overrides=tiny_pretrain_overrides(smoke_data))
    assert _same_state(_weights(again / "encoder.pt")["student"], _weights(pretrained / "encoder.pt")["student"])
    other = tmp_path / "seed1"
    run_dos("pretrain", PRETRAIN, "--out", str(other), overrides=tiny_pretrain_overrides(smoke_data) + ["seed=1"])
    assert not _same_state(_weights(other / "encoder.pt")["student"], _weights(pretrained / "encoder.pt")["student"])


def _wait_for_step(run_dir, step, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ckpt = run_dir / "checkpoint.pt"
        if ckpt.exists():
            try:
                if torch.load(ckpt, map_location="cpu", weights_only=False)["step"] >= step:
                    return
            except Exception:  # being replaced right now: read again
                pass
        if process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        time.sleep(0.2)
    raise AssertionError("no checkpoint in time")


def _kill_at_step_3_resume_and_compare(reference, killed, overrides) -> None:
    """Run `killed` until its step-3 checkpoint, SIGKILL it, re-run the same command: it resumes and ends with
    the weights and history of the uninterrupted `reference` run."""
    cmd = dos_command("pretrain", PRETRAIN, "--out", str(killed), overrides=overrides)
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for_step(killed, 3, process)
    process.kill()  # SIGKILL: no chance to clean up
    process.wait()
    assert not (killed / "encoder.pt").exists()
    resumed = run_dos("pretrain", PRETRAIN, "--out", str(killed), overrides=overrides)
    assert "resuming from" in resumed.stdout
    a, b = _weights(reference / "encoder.pt"), _weights(killed / "encoder.pt")
    assert _same_state(a["student"], b["student"]) and _same_state(a["teacher"], b["teacher"])
    assert (reference / "history.csv").read_text() == (killed / "history.csv").read_text()


def test_a_killed_run_restarted_with_the_same_command_ends_bit_identical(smoke_data, tmp_path):
    overrides = tiny_pretrain_overrides(smoke_data, steps=8)
    reference = tmp_path / "uninterrupted"
    run_dos("pretrain", PRETRAIN, "--out", str(reference), overrides=overrides)
    _kill_at_step_3_resume_and_compare(reference, tmp_path / "killed", overrides)


def test_sigterm_checkpoints_and_exits_for_requeue(smoke_data, tmp_path):
    cmd = dos_command("pretrain", PRETRAIN, "--out", str(tmp_path),
                      overrides=tiny_pretrain_overrides(smoke_data, steps=200, **{"train.checkpoint_every": "1000"}))
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "history.csv").exists() and time.time() < deadline:  # written at the first checkpoint
        if (tmp_path / "provenance.json").exists():
            break
        time.sleep(0.2)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    assert "run the same command again to resume" in err
    state = _weights(tmp_path / "checkpoint.pt")
    assert 0 < state["step"] < 200


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(smoke_data, tmp_path):
    overrides = tiny_pretrain_overrides(smoke_data, steps=6, **{"optim.lr": "1e30", "optim.grad_clip": "0.0",
                                                                 "optim.warmup": "0.0"})
    out = run_dos("pretrain", PRETRAIN, "--out", str(tmp_path), overrides=overrides, check=False)
    assert out.returncode == 2, out.stderr
    assert "loss is nan at step" in out.stderr or "loss is inf at step" in out.stderr
    assert "last good checkpoint" in out.stderr
    state = _weights(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_collapsing_setting_is_flagged_and_stopped_on_request(smoke_data, tmp_path):
    """One-dimensional embeddings (distill.head_dim=1) collapse by construction: every embedding is +1 or -1,
    so the teacher embeddings span one direction and at most two prototypes are ever the argmax. The guard
    warns (the run finishes and history.csv has the diagnostics on its logged steps), or stops the run."""
    overrides = tiny_pretrain_overrides(smoke_data, steps=4, **{"distill.head_dim": "1", "train.log_every": "2"})
    warned = run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "warn"), overrides=overrides)
    assert "warning: [pretrain] collapse at step" in warned.stderr and "effective rank 1.000" in warned.stderr
    with open(tmp_path / "warn" / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["effective_rank"] != "" for row in rows] == [False, True, False, True]  # logged steps only
    assert all(float(row["prototype_entropy"]) <= math.log(2) + 1e-6 for row in rows)
    assert all(float(row[key]) <= math.log(2) + 1e-6 for row in rows
               for key in ("assignment_entropy", "balanced_usage_entropy"))
    assert (tmp_path / "warn" / "encoder.pt").exists()
    stopped = run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "stop"), check=False,
                      overrides=overrides + ["diagnostics.on_collapse=stop"])
    assert stopped.returncode == 2 and "collapse at step" in stopped.stderr and "on_collapse=stop" in stopped.stderr
    assert not (tmp_path / "stop" / "encoder.pt").exists()
    healthy = run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "healthy"),
                      overrides=tiny_pretrain_overrides(smoke_data, steps=2))
    assert "collapse" not in healthy.stderr


def test_a_broken_config_fails_before_any_work_naming_the_key(smoke_data, tmp_path):
    out = run_dos("pretrain", PRETRAIN, "--out", str(tmp_path / "run"),
                  overrides=tiny_pretrain_overrides(smoke_data) + ["objective.zipf_alhpa=1"], check=False)
    assert out.returncode == 2 and "objective.zipf_alhpa: unknown key (did you mean objective.zipf_alpha?)" in out.stderr
    assert not (tmp_path / "run").exists()


def test_ddp_on_two_gloo_processes_equals_one_process(smoke_data, tmp_path):
    # clustering: its Sinkhorn spans the whole batch, so the transport sums must be reduced across ranks.
    # DropPath is off: it draws one number per point from each rank's RNG, which no split batch can reproduce.
    overrides = tiny_pretrain_overrides(smoke_data, steps=2, **{"objective.target": "clustering",
                                                                 "model.overrides": "{drop_path: 0.0}"})
    single = tmp_path / "single"
    run_dos("pretrain", PRETRAIN, "--out", str(single), overrides=overrides)
    double = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29513",
           "-m", "dos", "pretrain", PRETRAIN, "--out", str(double)]
    for item in overrides:
        cmd += ["--set", item]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    a, b = _weights(single / "encoder.pt")["student"], _weights(double / "encoder.pt")["student"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), k


@pytest.fixture(scope="module")
def probed(smoke_data, pretrained, tmp_path_factory):
    out = tmp_path_factory.mktemp("probe")
    run_dos("probe", PROBE, "--out", str(out), overrides=tiny_segmentation_overrides(
        smoke_data, **{"head.pretrained": str(pretrained), "head.cache_features": "true"}))
    return out


def test_probe_writes_metrics_and_evaluate_reproduces_them(probed):
    metrics = json.loads((probed / "metrics.json").read_text())
    for key in ("miou", "macc", "allacc", "iou", "acc", "classes_evaluated"):
        assert key in metrics
    assert 0 <= metrics["miou"] <= 1 and metrics["mode"] == "probe"
    run_dos("evaluate", str(probed))
    again = json.loads((probed / "metrics_val.json").read_text())
    assert again["miou"] == metrics["miou"] and again["iou"] == metrics["iou"]
    run_dos("evaluate", str(probed), "--fragments", "--out", str(probed / "fragments.json"))
    assert json.loads((probed / "fragments.json").read_text())["fragments"] is True


def test_the_solved_probe_converges_and_does_not_depend_on_its_seed(smoke_data, pretrained, tmp_path):
    """head.solver lbfgs: one convex solve, recorded; the probe-only spread is exactly zero."""
    runs = {}
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        log = run_dos("probe", PROBE, "--out", str(out), overrides=tiny_segmentation_overrides(
            smoke_data, **{"head.pretrained": str(pretrained), "head.cache_features": "true",
                           "head.solver": "lbfgs", "seed": str(seed)}))
        assert "converged" in log.stdout
        runs[seed] = json.loads((out / "metrics.json").read_text())
    fit = runs[0]["probe_fit"]
    assert fit["converged"] and fit["grad_max"] <= 1e-4 and fit["iterations"] >= 1 and fit["points"] > 0
    assert runs[0]["iou"] == runs[1]["iou"] and runs[0]["miou"] == runs[1]["miou"]
    state = [_weights(tmp_path / f"seed{s}" / "model.pt")["state_dict"] for s in (0, 1)]
    assert torch.equal(state[0]["classifier.weight"], state[1]["classifier.weight"])
    again = run_dos("probe", PROBE, "--out", str(tmp_path / "seed0"), overrides=tiny_segmentation_overrides(
        smoke_data, **{"head.pretrained": str(pretrained), "head.cache_features": "true", "head.solver": "lbfgs"}))
    assert "nothing rewritten" in again.stdout
    run_dos("evaluate", str(tmp_path / "seed0"))
    assert json.loads((tmp_path / "seed0" / "metrics_val.json").read_text())["miou"] == runs[0]["miou"]


def test_the_solved_probe_is_refused_where_it_does_not_apply(smoke_data, tmp_path):
    out = run_dos("probe", PROBE, "--out", str(tmp_path / "a"), check=False, overrides=tiny_segmentation_overrides(
        smoke_data, **{"head.solver": "lbfgs"}))
    assert out.returncode != 0 and "cache_features" in out.stderr and "Traceback" not in out.stderr
    out = run_dos("finetune", FINETUNE, "--out", str(tmp_path / "b"), check=False,
                  overrides=tiny_segmentation_overrides(smoke_data, **{"head.solver": "lbfgs",
                                                                       "head.cache_features": "true"}))
    assert out.returncode != 0 and "probe option" in out.stderr and "Traceback" not in out.stderr


def test_probe_freezes_the_encoder(probed, pretrained):
    model = _weights(probed / "model.pt")["state_dict"]
    teacher = _weights(pretrained / "encoder.pt")["teacher"]
    assert all(torch.equal(model[f"backbone.{k}"], v) for k, v in teacher.items())


def test_finetune_from_pretrained_and_from_scratch(smoke_data, pretrained, tmp_path):
    run_dos("finetune", FINETUNE, "--out", str(tmp_path / "ft"), overrides=tiny_segmentation_overrides(
        smoke_data, **{"head.pretrained": str(pretrained)}))
    run_dos("finetune", FINETUNE, "--out", str(tmp_path / "scratch"), overrides=tiny_segmentation_overrides(smoke_data))
    ft = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert ft["mode"] == "finetune" and 0 <= ft["miou"] <= 1
    teacher = _weights(pretrained / "encoder.pt")["teacher"]
    model = _weights(tmp_path / "ft" / "model.pt")["state_dict"]
    changed = [k for k, v in teacher.items() if not torch.equal(model[f"backbone.{k}"], v)]
    assert changed  # the encoder trained


def _joint_overrides(smoke_data, steps):
    """Joint pretraining on three synthetic LiDAR datasets, one of them at its own voxel and feature scale."""
    sources = ("[{format: synthetic-lidar, root: %s, weight: 2.0},"
               " {format: synthetic-lidar, root: %s, weight: 1.0, grid_size: 0.25, features: {scale: 1.25, clip: [0, 1]}},"
               " {format: synthetic-lidar, root: %s, weight: 1.0, features: {scale: 0.8}}]"
               % tuple(smoke_data / f"synthetic-{name}" for name in ("nuscenes", "waymo", "semantickitti")))
    return tiny_pretrain_overrides(smoke_data, steps=steps, **{"data.sources": sources})


def test_a_killed_joint_run_restarted_ends_bit_identical(smoke_data, tmp_path):
    overrides = _joint_overrides(smoke_data, steps=8)
    reference = tmp_path / "uninterrupted"
    run_dos("pretrain", PRETRAIN, "--out", str(reference), overrides=overrides)
    recorded = (reference / "config.yaml").read_text()
    assert recorded.count("format: synthetic-lidar") == 4 and "grid_size: 0.25" in recorded
    _kill_at_step_3_resume_and_compare(reference, tmp_path / "killed", overrides)
    # the mixture is part of the run's identity: another weight is another run
    other = run_dos("pretrain", PRETRAIN, "--out", str(reference),
                    overrides=[o.replace("weight: 2.0", "weight: 3.0") for o in overrides], check=False)
    assert other.returncode != 0 and "other settings" in (other.stderr + other.stdout)
