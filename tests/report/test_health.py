"""A table cell says whether the encoders behind it collapsed (dos/report/health.py)."""

import csv

import pytest
import yaml

from dos.errors import DosError

from dos.report.health import collapse_note, pretraining_health


def _pretraining(folder, rows, diagnostics=None):
    folder.mkdir(parents=True)
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "config.yaml").write_text(yaml.safe_dump({"diagnostics": diagnostics or {
        "min_usage_fraction": 0.15, "min_effective_rank": 2.0, "on_collapse": "warn"}}))


def _probe(folder, pretrained):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text("{}")
    (folder / "config.yaml").write_text(yaml.safe_dump({"head": {"pretrained": pretrained}}))


def test_the_note_counts_flagged_encoders_and_gives_the_lowest_values(tmp_path):
    _pretraining(tmp_path / "runs/pretrain/dos/seed0",
                 [{"step": 0, "balanced_usage_fraction": 0.8, "balanced_usage_entropy": 5.0},
                  {"step": 1, "balanced_usage_fraction": 0.25, "balanced_usage_entropy": 1.5, "effective_rank": 15.2,
                   "prototype_entropy": 0.1}])  # the raw-logit usage is recorded, not guarded
    _pretraining(tmp_path / "runs/pretrain/dos/seed1",
                 [{"step": 0, "balanced_usage_fraction": 0.6, "balanced_usage_entropy": 4.0},
                  {"step": 1, "balanced_usage_fraction": 0.09, "balanced_usage_entropy": 0.59, "effective_rank": 12.0},
                  {"step": 2, "balanced_usage_fraction": 0.05, "balanced_usage_entropy": 0.3}])
    _probe(tmp_path / "runs/probe/dos/seed0", "runs/pretrain/dos/seed0")
    _probe(tmp_path / "runs/probe/dos/seed1", "runs/pretrain/dos/seed1/encoder.pt")
    runs = ["runs/probe/dos/seed0/metrics.json", "runs/probe/dos/seed1/metrics.json"]
    note = collapse_note(runs, tmp_path)
    assert note.startswith("collapse guard, dos: 1 of 2 encoders flagged (lowest balanced usage fraction 0.05, "
                           "lowest effective rank 12.00)")
    # the first step below the threshold
    assert "dos/seed1: step 1: balanced prototype usage 0.090 of ln K (0.590 nats)" in note
    assert collapse_note(runs[:1], tmp_path) == ("collapse guard, dos: 0 of 1 encoders flagged (lowest balanced usage "
                                                 "fraction 0.25, lowest effective rank 15.20)")


def test_the_run_own_thresholds_decide_and_regression_is_judged_by_rank(tmp_path):
    folder = tmp_path / "runs/pretrain/regression/seed0"
    _pretraining(folder, [{"step": 0, "effective_rank": 3.0}, {"step": 1, "effective_rank": 1.5}],
                 {"min_usage_fraction": 0.15, "min_effective_rank": 2.0, "on_collapse": "warn"})
    health = pretraining_health(folder)
    assert health.problems and "effective rank 1.500" in health.problems[0]
    assert health.min_usage_fraction != health.min_usage_fraction  # nan: regression records no usage
    off = tmp_path / "runs/pretrain/off/seed0"
    _pretraining(off, [{"step": 0, "effective_rank": 1.5}], {"on_collapse": "off"})
    assert pretraining_health(off).problems == []
    (tmp_path / "runs/probe/regression/seed0").mkdir(parents=True)
    (tmp_path / "runs/probe/regression/seed0/config.yaml").write_text(
        yaml.safe_dump({"head": {"pretrained": "runs/pretrain/regression/seed0"}}))
    assert collapse_note(["runs/probe/regression/seed0/metrics.json"], tmp_path).startswith(
        "collapse guard, regression: 1 of 1 encoders flagged (lowest balanced usage fraction none recorded, lowest "
        "effective rank 1.50); regression/seed0: step 1:")


def test_cells_without_a_pretrained_encoder_say_nothing(tmp_path):
    _probe(tmp_path / "runs/probe/random/seed0", None)
    assert collapse_note(["runs/probe/random/seed0/metrics.json"], tmp_path) == ""
    _probe(tmp_path / "runs/probe/gone/seed0", "runs/pretrain/missing/seed0")
    assert collapse_note(["runs/probe/gone/seed0/metrics.json"], tmp_path) == ""


def test_a_broken_record_is_named(tmp_path):
    folder = tmp_path / "runs/pretrain/dos/seed0"
    _pretraining(folder, [{"step": 0, "balanced_usage_fraction": "lots"}])
    with pytest.raises(DosError, match=r"seed0/history.csv: not a history of numbers"):
        pretraining_health(folder)
    other = tmp_path / "runs/pretrain/dos/seed1"
    _pretraining(other, [{"step": 0, "balanced_usage_fraction": 0.5}], {"min_prototype_entropy": 1.0})
    with pytest.raises(DosError, match=r"seed1/config.yaml: diagnostics.min_prototype_entropy is the guard of "
                                      r"pretrainings written before the balanced usage statistic"):
        pretraining_health(other)
    typo = tmp_path / "runs/pretrain/dos/seed2"
    _pretraining(typo, [{"step": 0, "balanced_usage_fraction": 0.5}], {"min_usage": 0.1})
    with pytest.raises(DosError, match=r"seed2/config.yaml: diagnostics: .*min_usage"):
        pretraining_health(typo)
