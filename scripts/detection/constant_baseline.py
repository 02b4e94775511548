"""The floor a detector must clear on a dataset: nuScenes metrics of predictors that do not look at the scan.

For every validation scan, each predictor outputs the same boxes:
- `copy-train-k`: the boxes of the k-th training scan (scored 0.5), for k over every training scan (the mean and
  the best over k are printed);
- `all-train`: every box of every training scan at once, scored by how often its class occurs (at most 500,
  the most frequent classes first).
Usage: python scripts/detection/constant_baseline.py DATA_ROOT [--format synthetic-lidar]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from dos.data.boxes import Boxes
from dos.data.dataset import SceneDataset
from dos.detection.metrics import evaluate
from dos.detection.results_format import boxes_to_results


def _concat(boxes: list[Boxes]) -> Boxes:
    return Boxes(np.concatenate([b.center for b in boxes]), np.concatenate([b.size for b in boxes]),
                 np.concatenate([b.yaw for b in boxes]), np.concatenate([b.label for b in boxes]),
                 np.concatenate([b.velocity for b in boxes]), np.concatenate([b.num_points for b in boxes]),
                 [a for b in boxes for a in b.attribute])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--format", default="synthetic-lidar")
    args = parser.parse_args()
    train = [s["boxes"] for s in SceneDataset(args.format, args.root, "train")]
    val = SceneDataset(args.format, args.root, "val")
    tokens = [str(s["name"]) for s in val]
    truth = {t: boxes_to_results(s["boxes"], t) for t, s in zip(tokens, val)}

    def score(predicted: Boxes, scores: np.ndarray) -> dict:
        return evaluate(truth, {t: boxes_to_results(predicted, t, scores) for t in tokens})

    copies = [score(b, np.full(len(b), 0.5)) for b in train if len(b)]
    maps, ndss = [m["mean_ap"] for m in copies], [m["nd_score"] for m in copies]
    print(f"copy-train-k ({len(copies)} scans): mAP mean {100 * statistics.mean(maps):.2f} best "
          f"{100 * max(maps):.2f}; NDS mean {100 * statistics.mean(ndss):.2f} best {100 * max(ndss):.2f}")
    pooled = _concat(train)
    frequency = np.bincount(pooled.label, minlength=10) / len(pooled)
    order = np.argsort(-frequency[pooled.label], kind="stable")[:500]
    every = score(pooled.select(order), frequency[pooled.label[order]])
    print(f"all-train (500 most frequent-class boxes): mAP {100 * every['mean_ap']:.2f} NDS {100 * every['nd_score']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
