"""`dos convert pointcept CHECKPOINT OUT.pt`: a Pointcept PT-v3m2 (Sonata) checkpoint -> a dos PTv3 state dict.

OUT.pt is a plain state dict: `ptv3_from_config(CONFIG, **printed overrides).load_state_dict(torch.load(OUT))`.
in_channels, enc_mode (decoder present or not) and LayerScale are read from the checkpoint; everything else
(depths, widths, heads) comes from --config and is checked against every tensor's shape.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="Pointcept checkpoint (.pth)")
    parser.add_argument("out", type=Path, help="where to write the dos PTv3 state dict (.pt)")
    parser.add_argument("--config", default="paper", help="dos PTv3 config name or YAML path (default: paper)")
    parser.add_argument("--prefix", default=None,
                        help="key prefix of the backbone after 'module.' (default: auto among '', 'backbone.', "
                             "'student.backbone.', 'teacher.backbone.')")
    parser.add_argument("--no-strict", dest="strict", action="store_false",
                        help="convert what matches instead of failing on missing/unexpected keys")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow arbitrary pickled objects in the checkpoint (trusted files only)")


def run(args: argparse.Namespace) -> int:
    from dos.errors import DosError
    from dos.models.convert import (ConversionError, convert_pointcept_state, extract_backbone_state,
                                    infer_ptv3_overrides, read_checkpoint)
    from dos.models.ptv3 import ptv3_from_config
    from dos.utils.io import save_torch

    if not args.checkpoint.is_file():
        raise DosError(f"checkpoint not found: {args.checkpoint}")
    try:
        state, prefix = extract_backbone_state(read_checkpoint(args.checkpoint, args.trust_pickle), args.prefix)
        overrides = infer_ptv3_overrides(state)
        model = ptv3_from_config(args.config, **overrides)
        report = convert_pointcept_state(state, model, strict=args.strict)
    except (ConversionError, FileNotFoundError) as error:
        raise DosError(str(error)) from None
    report.prefix = prefix
    save_torch(args.out, report.state_dict)
    print(report.summary())
    shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    print(f"wrote {args.out}: load with ptv3_from_config({args.config!r}, {shown})")
    return 0
