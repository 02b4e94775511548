import json
import math

import pytest
import torch

from dos.engine.metrics import ConfusionMatrix, segmentation_metrics

NAMES = ["wall", "chair", "lamp", "sofa"]


def _hand_example() -> ConfusionMatrix:
    # 4 classes: wall (0) and chair (1) are labelled; lamp (2) is predicted but never labelled; sofa (3) is
    # neither labelled nor predicted on a labelled point. Two points are ignored (-1): what is predicted for
    # them (sofa, wall) must not count.
    target = torch.tensor([0, 0, 0, 0, 1, 1, 1, -1, -1])
    pred = torch.tensor([0, 0, 0, 1, 1, 1, 2, 3, 0])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    return cm


def test_hand_computed_confusion_and_metrics():
    cm = _hand_example()
    # rows = ground truth, columns = prediction
    #   wall:  3 predicted wall, 1 predicted chair
    #   chair: 2 predicted chair, 1 predicted lamp
    expected = torch.tensor([[3, 1, 0, 0],
                             [0, 2, 1, 0],
                             [0, 0, 0, 0],
                             [0, 0, 0, 0]])
    assert cm.matrix.dtype == torch.int64
    assert torch.equal(cm.matrix, expected)

    groups = {"head": [0], "common": [1, 2], "tail": [3]}
    m = segmentation_metrics(cm.matrix, NAMES, groups)
    # TP = diag = [3, 2, 0, 0]
    # FP = column sums - TP = [3-3, 3-2, 1-0, 0-0] = [0, 1, 1, 0]
    # FN = row sums - TP    = [4-3, 3-2, 0-0, 0-0] = [1, 1, 0, 0]
    # IoU = TP / (TP + FP + FN): wall 3/(3+0+1) = 0.75, chair 2/(2+1+1) = 0.5,
    #       lamp 0/(0+1+0) = 0 (predicted but absent: counts), sofa 0/0 -> undefined (excluded)
    assert m["iou"] == {"wall": 0.75, "chair": 0.5, "lamp": 0.0, "sofa": None}
    assert m["classes_evaluated"] == 3
    assert m["miou"] == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    # Acc = TP / (TP + FN) over classes present in the ground truth: wall 3/4, chair 2/3
    assert m["acc"]["wall"] == pytest.approx(0.75)
    assert m["acc"]["chair"] == pytest.approx(2 / 3)
    assert m["acc"]["lamp"] is None and m["acc"]["sofa"] is None
    assert m["classes_present"] == 2
    assert m["macc"] == pytest.approx((0.75 + 2 / 3) / 2)
    # allAcc = sum TP / labelled points = (3 + 2) / 7 (the 2 ignored points are not counted)
    assert m["labelled_points"] == 7
    assert m["allacc"] == pytest.approx(5 / 7)
    # groups: head = {wall} -> 0.75; common = {chair, lamp} -> (0.5 + 0) / 2; tail = {sofa} -> undefined
    assert m["head_miou"] == pytest.approx(0.75)
    assert m["common_miou"] == pytest.approx(0.25)
    assert m["tail_miou"] is None
    assert m["num_classes"] == 4
    json.dumps(m, allow_nan=False)  # JSON-safe: no NaN anywhere


def test_groups_may_be_given_by_class_name_as_in_label_specs():
    cm = _hand_example()
    by_index = segmentation_metrics(cm.matrix, NAMES, {"head": [0], "common": [1, 2], "tail": [3]})
    by_name = segmentation_metrics(cm.matrix, NAMES, {"head": ("wall",), "common": ("chair", "lamp"),
                                                      "tail": ("sofa",)})
    assert by_index == by_name
    with pytest.raises(ValueError, match="table"):
        segmentation_metrics(cm.matrix, NAMES, {"head": ["table"]})
    with pytest.raises(ValueError, match="index 4"):
        segmentation_metrics(cm.matrix, NAMES, {"head": [4]})


def test_empty_matrix_is_all_undefined():
    m = segmentation_metrics(torch.zeros(3, 3, dtype=torch.int64), ["a", "b", "c"], {"g": [0, 1]})
    assert m["miou"] is None and m["macc"] is None and m["allacc"] is None and m["g_miou"] is None
    assert m["classes_evaluated"] == 0 and m["labelled_points"] == 0


def _brute_force(pred, target, c):
    cm = torch.zeros(c, c, dtype=torch.int64)
    for p, t in zip(pred.tolist(), target.tolist()):
        if t != -1:
            cm[t, p] += 1
    return cm


def test_accumulation_merge_and_state_dict_equal_one_big_update():
    g = torch.Generator().manual_seed(0)
    c = 5
    target = torch.randint(-1, c, (3000,), generator=g)
    pred = torch.randint(0, c, (3000,), generator=g)
    whole = ConfusionMatrix(c)
    whole.update(pred, target)
    assert torch.equal(whole.matrix, _brute_force(pred, target, c))

    pieces = ConfusionMatrix(c)
    for p, t in zip(pred.split(700), target.split(700)):
        pieces.update(p, t)
    assert torch.equal(pieces.matrix, whole.matrix)

    a, b = ConfusionMatrix(c), ConfusionMatrix(c)
    a.update(pred[:1000], target[:1000])
    b.update(pred[1000:].reshape(20, 100), target[1000:].reshape(20, 100))  # any shape, flattened
    assert torch.equal(a.merge(b).matrix, whole.matrix)

    restored = ConfusionMatrix(c)
    restored.load_state_dict(whole.state_dict())
    assert torch.equal(restored.matrix, whole.matrix)
    assert restored.compute([str(i) for i in range(c)]) == whole.compute([str(i) for i in range(c)])
    with pytest.raises(ValueError):
        ConfusionMatrix(c + 1).load_state_dict(whole.state_dict())
    with pytest.raises(ValueError):
        ConfusionMatrix(c + 1).merge(whole)


def test_out_of_range_and_wrong_inputs_raise():
    cm = ConfusionMatrix(4)
    with pytest.raises(ValueError, match="targets"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="targets"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0, -2]))
    with pytest.raises(ValueError, match="predictions"):
        cm.update(torch.tensor([0, -1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="predictions"):
        cm.update(torch.tensor([0, 4]), torch.tensor([0, -1]))  # even on an ignored point
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1, 2]), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="argmax"):
        cm.update(torch.zeros(2, 4), torch.tensor([0, 1]))
    assert cm.matrix.sum() == 0  # nothing was half-added
    with pytest.raises(ValueError):
        ConfusionMatrix(4, ignore_index=2)


def test_all_reduce_is_a_no_op_without_distributed_and_sums_with_it(tmp_path):
    import torch.distributed as dist

    cm = _hand_example()
    before = cm.matrix.clone()
    assert not dist.is_initialized()
    assert torch.equal(cm.all_reduce().matrix, before)

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        assert torch.equal(cm.all_reduce().matrix, before)  # one rank: the sum is itself
    finally:
        dist.destroy_process_group()


def test_nan_is_never_returned():
    m = segmentation_metrics(torch.tensor([[0, 0], [0, 5]]), ["a", "b"])
    assert m["iou"]["a"] is None and m["miou"] == 1.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())
