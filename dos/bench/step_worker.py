"""One measurement of the DOS pretraining step, run as a script against whichever `dos` is on sys.path.

`dos bench step` starts this file in a fresh process for each round, with PYTHONPATH pointing at the tree to
measure (this checkout, or a `git worktree` of another commit), so it only uses what every version of the
harness since 7392490 has: `setup_torch`, `load_config`, `PretrainRunConfig`, `build_pretrainer`, `open_dataset`,
`apply_schedules`, `backward_and_step` and the step-indexed batches (`dos.engine.steps` where the tree has it,
else `dos.engine.pretrain._StepBatches`).

It builds the same model and batches as `dos pretrain CONFIG --set ...`, prepares `warmup + steps` batches up
front (data loading is not part of the step), runs `warmup` steps, then times `steps` steps, and profiles one
more step with torch.profiler to count aten operator calls (every `aten::` event, nested ones included), and on
CUDA kernel launches and host synchronisations; and the aten calls of building one batch (data
preparation, outside the step). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from torch.profiler import ProfilerActivity, profile

    import dos.engine.pretrain as pretrain
    from dos.config.schema import load_config
    from dos.engine.common import input_channels, open_dataset, to_device
    from dos.engine.optim import apply_schedules, backward_and_step, build_optimizer

    from dos.engine.common import setup_torch

    setup_torch(0, args.threads)  # the torch settings of `dos pretrain` (deterministic algorithms on CPU)
    device = torch.device(args.device)
    config = load_config(pretrain.PretrainRunConfig, args.config, args.overrides)
    dataset = open_dataset(config.data, config.data.train_split)
    model = pretrain.build_pretrainer(config, input_channels(dataset, config.data)).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = max(1, len(dataset) // config.train.batch_size)
    try:  # the shared command skeleton (dos/engine/steps.py) and the backbones' layer ids
        from functools import partial

        from dos.engine.steps import StepBatches

        batches = StepBatches(dataset, config.seed, config.train.batch_size, steps_per_epoch,
                              partial(pretrain.make_pair, config), partial(pretrain.collate, config))
        optimizer = build_optimizer(model, config.optim, model.backbone("student").layer_ids())
    except ImportError:  # trees before it (e.g. 7392490)
        from dos.engine.models import blocks_per_stage

        batches = pretrain._StepBatches(dataset, config, steps_per_epoch, 0, 1)
        optimizer = build_optimizer(model, config.optim, blocks_per_stage(model.student["encoder"].backbone))
    total = args.warmup + args.steps + 1
    prepared = [to_device(batches[s][1], device) for s in range(total)]
    scans = sum(len(b.offset) // 2 for b in prepared) / len(prepared)  # samples per step (2 views each)
    autocast = device.type == "cuda" and config.train.bf16

    def step(s: int) -> None:
        progress = s / max(1, total)
        apply_schedules(optimizer, config.optim, progress)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, _ = model(prepared[s], config.teacher.student_temp, config.teacher.teacher_temp(progress))
        backward_and_step(loss, optimizer, trainable, config.optim.grad_clip)
        model.update_teacher(config.teacher.momentum(progress))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for s in range(args.warmup):
        step(s)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    for s in range(args.warmup, args.warmup + args.steps):
        step(s)
    sync()
    seconds = (time.perf_counter() - tic) / args.steps

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step(total - 1)
        sync()
    events = prof.events()
    aten = sum(1 for e in events if e.name.startswith("aten::"))
    # building a batch (two views per sample, masking, student input, collation) is not part of the step, but
    # `dos pretrain` with num_workers 0 does it in the training process: counted separately
    with profile(activities=[ProfilerActivity.CPU]) as batch_prof:
        batches[total]
    batch_aten = sum(1 for e in batch_prof.events() if e.name.startswith("aten::"))
    record = {"seconds_per_step": seconds, "steps_per_s": 1.0 / seconds, "scans_per_s": scans / seconds,
              "scans_per_step": scans, "aten_calls_per_step": aten, "aten_calls_per_batch_built": batch_aten}
    if device.type == "cuda":
        record["kernel_launches_per_step"] = sum(1 for e in events if e.name in ("cudaLaunchKernel",
                                                 "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"))
        record["host_syncs_per_step"] = sum(1 for e in events if e.name in (
            "cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")) - 1  # less our own
        record["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    else:
        with open("/proc/self/status") as status:
            hwm = next(line for line in status if line.startswith("VmHWM"))
        record["peak_memory_bytes"] = int(hwm.split()[1]) * 1024
    top: dict[str, int] = {}
    for e in events:
        if e.name.startswith("aten::"):
            top[e.name] = top.get(e.name, 0) + 1
    record["top_aten"] = dict(sorted(top.items(), key=lambda kv: -kv[1])[:12])
    print("STEP_RESULT " + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
