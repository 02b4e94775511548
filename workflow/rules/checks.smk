# Checks of the whole configuration, when the Snakefile is read (so `snakemake -n` fails too, before any job).
# check_run_configs(): every training job any table can ask for, at every scale, plus every pretraining variant
# (used by a table or not), is validated in ONE `dos config check` call: the job's config file with its --set
# overrides against its command's schema (unknown keys, types, values), as `dos pretrain|probe|...` would at
# start. A typo in a variant or a scale's run_overrides thus stops the DAG, naming the job and the key. The check
# imports torch in its own process (the workflow does not); a passing result is remembered in
# .snakemake/dos-config-check/, keyed by a hash of the jobs, their config files and the `dos` sources.

import hashlib
import json
import subprocess
import types
from pathlib import Path

import dos


def _run_regex(name):
    constraints = {**WILDCARDS, **RUN_WILDCARDS.get(name, {})}
    pattern = re.escape(RUNS[name])
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{constraints.get(m[1], '[^/]+')})", pattern))


_RUN_REGEX = {name: _run_regex(name) for name in RUNS}


def read_run(path):
    """(rule name, wildcards) of the job that writes `path` (one of RUNS), else None."""
    matches = [(name, regex.fullmatch(path)) for name, regex in _RUN_REGEX.items()]
    matches = [(name, types.SimpleNamespace(**m.groupdict())) for name, m in matches if m]
    if len(matches) > 1:
        raise WorkflowError(f"{path}: written by several rules ({', '.join(name for name, _ in matches)})")
    return matches[0] if matches else None


def _upstream(name, w):
    return {"probe": [_encoder], "finetune": [_encoder], "detect": [_encoder], "distill": [_teacher],
            "transfer": [_transferred]}.get(name, [])


def _label(name, w, path):
    variant = f", variant {w.variant}" if name == "pretrain" else ""
    return f"rule {name}{variant}: {path}"


def run_jobs():
    """Every training job the DAG can run from a table of any scale, or a pretraining variant of any scale, at the
    scale's first seed (other seeds change only the seed and the seed<s> folders): [{label, command, config,
    overrides}], one per distinct (command, config, overrides)."""
    paths = []
    for scale, block in config["scales"].items():
        paths += [path for n in TABLES
                  for path in template_runs(template(n), f"runs/{scale}", block["seeds"][:1], list(block["datasets"]))]
        paths += claim_inputs(CLAIMS, f"runs/{scale}", block["seeds"][:1], TABLES)[1]
        firsts = {}  # one dataset per domain
        for name, entry in block["datasets"].items():
            firsts.setdefault(entry["domain"], name)
        paths += [RUNS["pretrain"].format(scale=scale, arch="ptv3", pdata=name, variant=variant, seed=block["seeds"][0])
                  for variant in config["variants"] for name in firsts.values()]
    jobs, seen, queue = {}, set(), list(dict.fromkeys(paths))
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        found = read_run(path)
        if found is None:
            raise WorkflowError(f"{path}: a table template names a run that no rule writes")
        name, w = found
        command, config_file, overrides = JOBS[name](w)
        if name == "transfer":  # dos evaluate applies its overrides to the finetune run's resolved config
            source, trained_w = read_run(_transferred(w))
            _, config_file, trained = JOBS[source](trained_w)
            overrides = [*trained, *overrides]
        jobs.setdefault((command, config_file, tuple(overrides)), _label(name, w, path))
        queue += [upstream(w) for upstream in _upstream(name, w)]
    return [{"label": label, "command": command, "config": config_file, "overrides": list(overrides)}
            for (command, config_file, overrides), label in sorted(jobs.items(), key=lambda item: item[1])]


def _digest(payload, config_files):
    digest = hashlib.sha256(payload.encode())
    digest.update(DOS.encode())
    root = Path(dos.__file__).parent
    for path in [*map(Path, sorted(config_files)), *sorted(root.rglob("*.py"))]:
        digest.update(str(path).encode() + b"\0" + (path.read_bytes() if path.is_file() else b"(missing)"))
    return digest.hexdigest()


def check_run_configs(jobs, shown=20):
    payload = json.dumps(jobs, sort_keys=True)
    stamp = Path(".snakemake", "dos-config-check", _digest(payload, {job["config"] for job in jobs}))
    if stamp.is_file():
        return
    result = subprocess.run([DOS, "config", "check", "-"], input=payload, capture_output=True, text=True)
    if result.returncode == 0:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(result.stdout)
        return
    lines = result.stdout.splitlines()
    if result.returncode != 2 or not lines:
        raise WorkflowError(f"`dos config check` failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    more = f"\n  ... and {len(lines) - shown} more" if len(lines) > shown else ""
    raise WorkflowError(f"config/config.yaml: {len(lines)} of the {len(jobs)} training jobs have an invalid config "
                        "(a variant, run_overrides, dataset or backbone override; fix it before any job runs):\n  "
                        + "\n  ".join(lines[:shown]) + more)


check_run_configs(run_jobs())
