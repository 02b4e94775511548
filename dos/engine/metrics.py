"""Semantic segmentation metrics over a whole split: a confusion matrix and mIoU / mAcc / allAcc.

Protocol (the standard one of ScanNet / Pointcept-style evaluation, counted over every labelled point of the
split, never averaged per scene):

    TP_c = confusion[c, c]          (rows: ground truth, columns: prediction)
    FP_c = sum of column c - TP_c   (predicted c, labelled otherwise)
    FN_c = sum of row c - TP_c      (labelled c, predicted otherwise)
    IoU_c = TP_c / (TP_c + FP_c + FN_c)
    Acc_c = TP_c / (TP_c + FN_c)

* mIoU is the mean of IoU_c over the classes with TP_c + FP_c + FN_c > 0. A class absent from the ground
  truth but predicted somewhere therefore counts with IoU 0 (the false positives are real errors); a class
  neither present nor predicted has an undefined IoU: it is reported as NaN (None in the JSON-safe output)
  and left out of the mean. `classes_evaluated` says how many classes the mean is over. On a full benchmark
  split every class is present, so this only matters for small or partial splits.
* mAcc is the mean of Acc_c over the classes present in the ground truth (TP_c + FN_c > 0).
* allAcc is sum_c TP_c / (number of labelled points).
* `<group>_miou` (e.g. ScanNet200 head / common / tail) is the mean IoU over the group's classes that are
  evaluated, by the same rule as mIoU.

All values are fractions in [0, 1]; the report layer converts them to percent. Points whose target is
`ignore_index` are not counted at all, whatever was predicted for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch


class ConfusionMatrix:
    """int64 confusion counts [C, C] (rows: ground truth, columns: prediction), accumulated over a split."""

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a valid class id (0..{num_classes - 1})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of integer predictions and targets (any matching shapes, flattened).

        Targets must be `ignore_index` or in 0..C-1. Predictions must be in 0..C-1 everywhere, the ignored
        points included: an out-of-range prediction is a bug upstream (e.g. logits of the wrong width), so it
        raises instead of being dropped silently. Pass labels, not logits (argmax first).
        """
        pred = torch.as_tensor(pred)
        target = torch.as_tensor(target)
        for name, t in (("pred", pred), ("target", target)):
            if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must hold integer class ids, got dtype {t.dtype} (argmax logits first)")
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        pred = pred.reshape(-1).long()
        target = target.reshape(-1).long()
        c = self.num_classes
        bad_pred = (pred < 0) | (pred >= c)
        if bad_pred.any():
            values = torch.unique(pred[bad_pred])[:10].tolist()
            raise ValueError(f"predictions {values} are outside 0..{c - 1}")
        labelled = target != self.ignore_index
        bad_target = labelled & ((target < 0) | (target >= c))
        if bad_target.any():
            values = torch.unique(target[bad_target])[:10].tolist()
            raise ValueError(f"targets {values} are outside 0..{c - 1} and are not ignore_index "
                             f"({self.ignore_index})")
        flat = target[labelled] * c + pred[labelled]
        counts = torch.bincount(flat, minlength=c * c).reshape(c, c)
        self.matrix += counts.to(self.matrix.device)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (e.g. from another worker); returns self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(f"cannot merge a confusion matrix of {other.num_classes} classes (ignore "
                             f"{other.ignore_index}) into one of {self.num_classes} (ignore {self.ignore_index})")
        self.matrix += other.matrix.to(self.matrix.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over all torch.distributed ranks (in place); a no-op when not initialised."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")
        buffer = self.matrix.to(device)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        self.matrix = buffer.to(self.matrix.device)
        return self

    def state_dict(self) -> dict:
        return {"num_classes": self.num_classes, "ignore_index": self.ignore_index, "matrix": self.matrix.clone()}

    def load_state_dict(self, state: Mapping) -> None:
        matrix = torch.as_tensor(state["matrix"])
        if int(state["num_classes"]) != self.num_classes or tuple(matrix.shape) != (self.num_classes,) * 2:
            raise ValueError(f"state of {state['num_classes']} classes (matrix {tuple(matrix.shape)}) does not fit "
                             f"a confusion matrix of {self.num_classes} classes")
        if int(state["ignore_index"]) != self.ignore_index:
            raise ValueError(f"state ignore_index {state['ignore_index']} != {self.ignore_index}")
        self.matrix = matrix.to(torch.int64).clone()

    def compute(self, class_names: Sequence[str], groups: Mapping[str, Sequence[int | str]] | None = None) -> dict:
        """`segmentation_metrics` of the counts so far."""
        return segmentation_metrics(self.matrix, class_names, groups)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _mean_defined(values: torch.Tensor) -> float:
    """Mean of the non-NaN entries, NaN when there are none."""
    defined = values[~torch.isnan(values)]
    return float(defined.mean()) if defined.numel() else math.nan


def _group_indices(members: Sequence[int | str], class_names: Sequence[str], group: str) -> list[int]:
    """Group members as class indices; members may be given as indices or as class names (as in LabelSpec)."""
    position = {name: i for i, name in enumerate(class_names)}
    out = []
    for m in members:
        if isinstance(m, str):
            if m not in position:
                raise ValueError(f"group {group!r}: class {m!r} is not one of the class names")
            out.append(position[m])
        else:
            i = int(m)
            if not 0 <= i < len(class_names):
                raise ValueError(f"group {group!r}: class index {i} is outside 0..{len(class_names) - 1}")
            out.append(i)
    return out


def segmentation_metrics(confusion: torch.Tensor, class_names: Sequence[str],
                         groups: Mapping[str, Sequence[int | str]] | None = None) -> dict:
    """mIoU, mAcc, allAcc, per-class IoU / accuracy and per-group mIoU of a confusion matrix [C, C].

    See the module docstring for the protocol. The result is JSON-safe: plain floats and ints, and None where
    a value is undefined (a class neither labelled nor predicted, a group without evaluated classes, an empty
    matrix). Keys: miou, macc, allacc, iou {name: value}, acc {name: value}, `<group>_miou` for each group,
    num_classes, classes_evaluated (classes in the mIoU), classes_present (classes in the ground truth, i.e.
    in the mAcc), labelled_points.
    """
    confusion = torch.as_tensor(confusion)
    c = len(class_names)
    if confusion.shape != (c, c):
        raise ValueError(f"confusion matrix of shape {tuple(confusion.shape)} for {c} class names")
    m = confusion.detach().cpu().to(torch.float64)
    tp = m.diagonal()
    fp = m.sum(0) - tp
    fn = m.sum(1) - tp
    union = tp + fp + fn
    gt = tp + fn
    nan = torch.full_like(tp, math.nan)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    labelled = float(m.sum())
    result: dict = {
        "miou": _json_float(_mean_defined(iou)),
        "macc": _json_float(_mean_defined(acc)),
        "allacc": _json_float(float(tp.sum()) / labelled) if labelled > 0 else None,
        "iou": {name: _json_float(float(v)) for name, v in zip(class_names, iou)},
        "acc": {name: _json_float(float(v)) for name, v in zip(class_names, acc)},
    }
    for group, members in (groups or {}).items():
        index = torch.tensor(_group_indices(members, class_names, group), dtype=torch.long)
        result[f"{group}_miou"] = _json_float(_mean_defined(iou[index]))
    result.update({
        "num_classes": c,
        "classes_evaluated": int((union > 0).sum()),
        "classes_present": int((gt > 0).sum()),
        "labelled_points": int(confusion.sum()),
    })
    return result
