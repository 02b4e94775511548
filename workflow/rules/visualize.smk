# The paper's qualitative figures, drawn by `dos visualize` from runs the tables already train (the scale's first
# seed), into reports/<scale>/figures/:
#   figure4.png  class frequencies with fitted Zipf exponents (the synthetic benchmark at smoke / mini, the real
#                ScanNet200 labels at paper), and the argmax-prototype maps of the nuScenes DOS pretraining
#                (Zipf alpha 1.3) beside its uniform-prior variant (softmap: alpha 0) on one validation scene
#   figure5.png  ground truth, supervised and DOS predictions of SemanticKITTI fine-tunings on a ParisLuco3D scene
#                (zero-shot: the runs of Table 4's transfer jobs)
#   pca.png      PCA colours of the DOS encoder's full-resolution features on one nuScenes validation scene
#   detection_bev.png  Table 2's CenterPoint from the DOS encoder: predicted vs ground-truth boxes, bird's-eye view
# Each job is one forward pass over one scene: they run where snakemake runs.

# name -> the tables whose runs it draws; the report shows it when those tables are in the report
VISUALS = {"figure4": [5], "pca": [5], "figure5": [4], "detection_bev": [2]}


localrules:
    figure4,
    figure5,
    pca_figure,
    detection_bev,


def visuals_for(tables):
    return [name for name, needs in VISUALS.items() if set(needs) <= set(tables)]


def _first_seed(scale):
    return config["scales"][scale]["seeds"][0]


def _nuscenes_encoder(variant):
    return lambda w: RUNS["pretrain"].format(scale=w.scale, arch="ptv3", pdata="nuscenes", variant=variant,
                                             seed=_first_seed(w.scale))


def _semantickitti_finetune(pretraining):
    """The SemanticKITTI fine-tuning Table 4 transfers: from scratch (None) or from that pretraining variant."""
    def path(w):
        common = dict(scale=w.scale, arch="ptv3", data="semantickitti", subset="full", seed=_first_seed(w.scale))
        if pretraining is None:
            return RUNS["finetune_scratch"].format(**common)
        return RUNS["finetune"].format(**common, pdata="semantickitti", variant=pretraining)
    return path


def _transfers(w):
    """Table 4's zero-shot evaluations of those runs on ParisLuco3D (the figure shows what they score)."""
    runs = ["finetune/ptv3/semantickitti/full/scratch", "finetune/ptv3/semantickitti/full/semantickitti/dos"]
    return [RUNS["transfer"].format(scale=w.scale, target="parisluco", run=run, seed=_first_seed(w.scale))
            for run in runs]


def _frequency_args(scale):
    """The class counts of Figure 4 (top): the synthetic benchmark, and ScanNet200 where a real root is mapped."""
    args = [f"--benchmark data/{scale}/synthetic"] if scale != "paper" else []
    entry = config["scales"][scale]["datasets"].get("scannet200")
    if entry and entry["format"] == "scannet200":
        args.append(f"--scannet200 {shlex.quote(dataset('scannet200', scale)['root'])}")
    return " ".join(args)


rule figure4:
    input:
        lambda w: data_inputs(w.scale),
        zipf=_nuscenes_encoder("dos"),
        uniform=_nuscenes_encoder("softmap"),
    output:
        "reports/{scale}/figures/figure4.png",
    log:
        "logs/{scale}/figures/figure4.log",
    params:
        frequencies=lambda w: _frequency_args(w.scale),
    shell:
        "dos visualize figure4 {params.frequencies} --models \"alpha 1.3={input.zipf}\" \"alpha 0={input.uniform}\" "
        "--out {output} > {log} 2>&1"


rule figure5:
    input:
        _transfers,
        supervised=_semantickitti_finetune(None),
        dos=_semantickitti_finetune("dos"),
    output:
        "reports/{scale}/figures/figure5.png",
    log:
        "logs/{scale}/figures/figure5.log",
    params:
        target=lambda w: sets(data_overrides("parisluco", w.scale)),
    shell:
        "dos visualize figure5 --runs \"supervised=$(dirname {input.supervised})\" \"DOS (ours)=$(dirname {input.dos})\" "
        "{params.target} --title 'Figure 5: zero-shot transfer SemanticKITTI -> ParisLuco3D' --out {output} > {log} 2>&1"


rule pca_figure:
    input:
        lambda w: data_inputs(w.scale),
        encoder=_nuscenes_encoder("dos"),
    output:
        "reports/{scale}/figures/pca.png",
    log:
        "logs/{scale}/figures/pca.log",
    shell:
        "dos visualize pca {input.encoder} --out {output} > {log} 2>&1"


rule detection_bev:
    input:
        lambda w: RUNS["detect"].format(scale=w.scale, arch="ptv3", data="nuscenes", subset="full", pdata="nuscenes",
                                        variant="dos_det", seed=_first_seed(w.scale)),
    output:
        "reports/{scale}/figures/detection_bev.png",
    log:
        "logs/{scale}/figures/detection_bev.log",
    shell:
        "dos visualize boxes $(dirname {input}) --out {output} > {log} 2>&1"
