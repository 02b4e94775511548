"""Every table cell says the training budget its runs recorded (dos/report/budget.py)."""

import json

import yaml

from dos.report.budget import budget_note, run_budget


def _run(folder, provenance, config=None):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"miou": 0.5}))
    (folder / "provenance.json").write_text(json.dumps(provenance))
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "metrics.json"


def test_a_probe_cell_names_the_pretraining_and_the_probe(tmp_path):
    _run(tmp_path / "runs/pretrain/dos/seed0", {"total_steps": 450, "epochs": 50.0, "train_scenes": 36,
                                                "batch_size": 4, "steps_per_epoch": 9})
    (tmp_path / "runs/pretrain/dos/seed0/metrics.json").unlink()
    probe = _run(tmp_path / "runs/probe/dos/seed0", {"total_steps": 0, "mode": "probe", "solver": "lbfgs",
                                                      "train_scenes": 36},
                 {"head": {"pretrained": "runs/pretrain/dos/seed0"}})
    text = run_budget(probe, tmp_path)
    assert text == ("pretraining 450 steps = 50 epochs of 36 scenes, batch 4; "
                    "probe solved to convergence (lbfgs, 36 scenes)")
    stepped = _run(tmp_path / "runs/ft/scratch/seed0", {"total_steps": 300, "mode": "finetune", "solver": "sgd",
                                                         "epochs": 8.33, "train_scenes": 36, "batch_size": 4},
                   {"head": {"pretrained": None}})
    assert run_budget(stepped, tmp_path) == "finetune 300 steps = 8.33 epochs of 36 scenes, batch 4"
    runs = ["runs/probe/dos/seed0/metrics.json", "runs/ft/scratch/seed0/metrics.json"]
    assert budget_note(runs, tmp_path) == f"budget: {text} / finetune 300 steps = 8.33 epochs of 36 scenes, batch 4"


def test_runs_without_records_say_nothing(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r/metrics.json").write_text("{}")
    assert run_budget(tmp_path / "r/metrics.json", tmp_path) == "" and budget_note(["r/metrics.json"], tmp_path) == ""
