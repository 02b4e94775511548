"""Load Pointcept PT-v3m2 (Sonata) checkpoints into `dos.models.ptv3.PointTransformerV3`.

Pointcept's parameter names (pointcept/models/point_transformer_v3/point_transformer_v3m2_sonata.py, built from
`PointSequential` containers, whose unnamed children are "0", "1", ...) map one to one onto ours; `NAME_MAP`
below is the whole correspondence, as data. Every tensor keeps its layout except the sparse conv kernels:
spconv 2.x stores a SubMConv3d weight as [C_out, K, K, K, C_in] ("KRSC", its default for every algorithm;
kernel axes x, y, z for indices (batch, x, y, z)), ours is [K^3, C_in, C_out] with offsets x-major
(`dos.models.ops.sparse_conv`). Checked numerically against spconv-cu120 2.3.6 and Pointcept's own model
(scripts/conformance_pointcept.py).
qkv keeps its [3 * C, C] layout: both split the output as (q|k|v, head, head_dim).

Checkpoints come in several wrappings: a bare state dict, {"state_dict": ...} or {"model": ...}, keys with the
"module." prefix of DDP, and the backbone inside a larger model ("backbone." of a segmentor,
"student.backbone." / "teacher.backbone." of Sonata pretraining). `extract_backbone_state` unwraps them.

Pointcept tensors with no place in our model are listed in `KNOWN_EXTRAS` (the embedding's mask token: our
pretrainer passes its mask token to forward()); they are returned apart, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

# (Pointcept name, dos name, tensor transform). Placeholders: {s} stage, {i} block, {p} a parameter name;
# "{s-1}" is stage s - 1 (Pointcept's pooling lives in stage s, ours is pools[s - 1]).
NAME_MAP: tuple[tuple[str, str, str | None], ...] = (
    ("embedding.stem.linear.{p}", "embedding.0.{p}", None),
    ("embedding.stem.norm.{p}", "embedding.1.{p}", None),
    ("enc.enc{s}.down.proj.{p}", "pools.{s-1}.proj.{p}", None),
    ("enc.enc{s}.down.norm.0.{p}", "pools.{s-1}.norm.{p}", None),
    ("enc.enc{s}.block{i}.cpe.0.weight", "enc_stages.{s}.{i}.cpe_conv.weight", "spconv_kernel"),
    ("enc.enc{s}.block{i}.cpe.0.bias", "enc_stages.{s}.{i}.cpe_conv.bias", None),
    ("enc.enc{s}.block{i}.cpe.1.{p}", "enc_stages.{s}.{i}.cpe_linear.{p}", None),
    ("enc.enc{s}.block{i}.cpe.2.{p}", "enc_stages.{s}.{i}.cpe_norm.{p}", None),
    ("enc.enc{s}.block{i}.norm1.0.{p}", "enc_stages.{s}.{i}.norm1.{p}", None),
    ("enc.enc{s}.block{i}.attn.qkv.{p}", "enc_stages.{s}.{i}.attn.qkv.{p}", None),
    ("enc.enc{s}.block{i}.attn.proj.{p}", "enc_stages.{s}.{i}.attn.proj.{p}", None),
    ("enc.enc{s}.block{i}.norm2.0.{p}", "enc_stages.{s}.{i}.norm2.{p}", None),
    ("enc.enc{s}.block{i}.mlp.0.fc1.{p}", "enc_stages.{s}.{i}.mlp.fc1.{p}", None),
    ("enc.enc{s}.block{i}.mlp.0.fc2.{p}", "enc_stages.{s}.{i}.mlp.fc2.{p}", None),
    ("enc.enc{s}.block{i}.ls1.0.gamma", "enc_stages.{s}.{i}.ls1.gamma", None),
    ("enc.enc{s}.block{i}.ls2.0.gamma", "enc_stages.{s}.{i}.ls2.gamma", None),
    ("dec.dec{s}.up.proj.0.{p}", "unpools.{s}.proj.0.{p}", None),
    ("dec.dec{s}.up.proj.1.{p}", "unpools.{s}.proj.1.{p}", None),
    ("dec.dec{s}.up.proj_skip.0.{p}", "unpools.{s}.proj_skip.0.{p}", None),
    ("dec.dec{s}.up.proj_skip.1.{p}", "unpools.{s}.proj_skip.1.{p}", None),
    ("dec.dec{s}.block{i}.cpe.0.weight", "dec_stages.{s}.{i}.cpe_conv.weight", "spconv_kernel"),
    ("dec.dec{s}.block{i}.cpe.0.bias", "dec_stages.{s}.{i}.cpe_conv.bias", None),
    ("dec.dec{s}.block{i}.cpe.1.{p}", "dec_stages.{s}.{i}.cpe_linear.{p}", None),
    ("dec.dec{s}.block{i}.cpe.2.{p}", "dec_stages.{s}.{i}.cpe_norm.{p}", None),
    ("dec.dec{s}.block{i}.norm1.0.{p}", "dec_stages.{s}.{i}.norm1.{p}", None),
    ("dec.dec{s}.block{i}.attn.qkv.{p}", "dec_stages.{s}.{i}.attn.qkv.{p}", None),
    ("dec.dec{s}.block{i}.attn.proj.{p}", "dec_stages.{s}.{i}.attn.proj.{p}", None),
    ("dec.dec{s}.block{i}.norm2.0.{p}", "dec_stages.{s}.{i}.norm2.{p}", None),
    ("dec.dec{s}.block{i}.mlp.0.fc1.{p}", "dec_stages.{s}.{i}.mlp.fc1.{p}", None),
    ("dec.dec{s}.block{i}.mlp.0.fc2.{p}", "dec_stages.{s}.{i}.mlp.fc2.{p}", None),
    ("dec.dec{s}.block{i}.ls1.0.gamma", "dec_stages.{s}.{i}.ls1.gamma", None),
    ("dec.dec{s}.block{i}.ls2.0.gamma", "dec_stages.{s}.{i}.ls2.gamma", None),
)

# Pointcept tensors that exist in some checkpoints and have no parameter in our PointTransformerV3.
KNOWN_EXTRAS: tuple[str, ...] = ("embedding.mask_token",)

# Where the backbone may sit inside a checkpoint (after "module." is stripped), tried in this order.
BACKBONE_PREFIXES: tuple[str, ...] = ("", "backbone.", "student.backbone.", "teacher.backbone.")
ANCHOR = "embedding.stem.linear.weight"  # present in every PT-v3m2 backbone

_PLACEHOLDER = re.compile(r"\{(\w+)([+-]\d+)?\}")
_PARAM_NAMES = r"(?:weight|bias|gamma)"


def _spconv_to_dos(weight: Tensor) -> Tensor:
    """spconv 2.x [C_out, K, K, K, C_in] -> ours [K^3, C_in, C_out]."""
    if weight.dim() != 5:
        raise ConversionError(f"expected a 5-d spconv 2.x kernel [C_out, K, K, K, C_in], got {list(weight.shape)}")
    c_out, k, _, _, c_in = weight.shape
    return weight.permute(1, 2, 3, 4, 0).reshape(k ** 3, c_in, c_out).contiguous()


def _dos_to_spconv(weight: Tensor) -> Tensor:
    kvol, c_in, c_out = weight.shape
    k = round(kvol ** (1 / 3))
    return weight.reshape(k, k, k, c_in, c_out).permute(4, 0, 1, 2, 3).contiguous()


# name -> (Pointcept to dos, dos to Pointcept)
TRANSFORMS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "spconv_kernel": (_spconv_to_dos, _dos_to_spconv),
}


class ConversionError(ValueError):
    """A checkpoint that does not fit the model: the message names the keys."""


@dataclass
class _Pattern:
    regex: re.Pattern
    template: str
    offsets: dict[str, int]


def _compile(template: str) -> _Pattern:
    """'enc.enc{s}.block{i}.x.{p}' -> a full-match regex with named groups; '{s-1}' records offset -1 for s."""
    parts, offsets, last = [], {}, 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last:match.start()]))
        name, offset = match.group(1), int(match.group(2) or 0)
        offsets[name] = offset
        parts.append(f"(?P<{name}>{_PARAM_NAMES if name == 'p' else r'[0-9]+'})")
        last = match.end()
    parts.append(re.escape(template[last:]))
    return _Pattern(re.compile("".join(parts)), template, offsets)


def _fill(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        name, offset = match.group(1), int(match.group(2) or 0)
        return str(int(values[name]) + offset) if offset else values[name]
    return _PLACEHOLDER.sub(substitute, template)


def _translate(name: str, source: _Pattern, target: _Pattern) -> str | None:
    match = source.regex.fullmatch(name)
    if match is None:
        return None
    # undo the source's offsets ("{s-1}" matched v means s = v + 1), then apply the target's in _fill
    values = {key: (str(int(v) - source.offsets[key]) if source.offsets[key] else v)
              for key, v in match.groupdict().items()}
    return _fill(target.template, values)


_FORWARD = [(_compile(pc), _compile(ours), transform) for pc, ours, transform in NAME_MAP]


def pointcept_name_to_dos(name: str) -> tuple[str, str | None] | None:
    """(dos name, transform name) of a Pointcept PT-v3m2 parameter name, or None when it has no counterpart."""
    for pc, ours, transform in _FORWARD:
        translated = _translate(name, pc, ours)
        if translated is not None:
            return translated, transform
    return None


def dos_name_to_pointcept(name: str) -> tuple[str, str | None] | None:
    """The inverse of `pointcept_name_to_dos`."""
    for pc, ours, transform in _FORWARD:
        translated = _translate(name, ours, pc)
        if translated is not None:
            return translated, transform
    return None


def extract_backbone_state(checkpoint: Mapping[str, Any], prefix: str | None = None
                           ) -> tuple[dict[str, Tensor], str]:
    """The PT-v3m2 backbone tensors of a checkpoint, keys relative to the backbone, and the prefix used.

    Unwraps {"state_dict": ...} / {"model": ...}, strips DDP's "module." and selects the backbone under
    `prefix` (auto: the first of BACKBONE_PREFIXES that holds the embedding stem)."""
    state: Mapping[str, Any] = checkpoint
    for key in ("state_dict", "model"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()
             if isinstance(v, Tensor)}
    if prefix is None:
        found = [p for p in BACKBONE_PREFIXES if p + ANCHOR in state]
        if not found:
            if any(k.endswith("embedding.stem.conv.weight") for k in state):
                raise ConversionError("this is a PT-v3m1 checkpoint (sparse-conv stem, BatchNorm pooling); "
                                      "dos's PointTransformerV3 is the PT-v3m2 (Sonata, LayerNorm) variant")
            sample = ", ".join(sorted(state)[:5])
            raise ConversionError(f"no PT-v3m2 backbone found: no key ends with {ANCHOR!r} under any of "
                                  f"{[p or '<root>' for p in BACKBONE_PREFIXES]} (first keys: {sample})")
        prefix = found[0]
    selected = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not selected:
        raise ConversionError(f"no key starts with prefix {prefix!r}")
    return selected, prefix


def infer_ptv3_overrides(pointcept_state: Mapping[str, Tensor]) -> dict[str, Any]:
    """Constructor arguments readable from the tensors: in_channels, enc_mode (no decoder keys) and whether
    LayerScale is on (its value is then loaded from the checkpoint)."""
    overrides: dict[str, Any] = {"in_channels": int(pointcept_state[ANCHOR].shape[1]),
                                 "enc_mode": not any(k.startswith("dec.") for k in pointcept_state)}
    if any(k.endswith(".ls1.0.gamma") for k in pointcept_state):
        overrides["layer_scale"] = 1.0
    return overrides


@dataclass
class ConversionReport:
    """state_dict: converted tensors (dos names); missing: dos parameters the checkpoint did not provide;
    unexpected: checkpoint keys with no dos counterpart; extras: KNOWN_EXTRAS found (kept apart)."""

    state_dict: dict[str, Tensor]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    extras: dict[str, Tensor] = field(default_factory=dict)
    prefix: str = ""

    def summary(self, limit: int = 10) -> str:
        def listing(names: list[str]) -> str:
            shown = ", ".join(names[:limit])
            return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
        lines = [f"converted {len(self.state_dict)} tensors (backbone prefix {self.prefix or '<root>'!r})"]
        if self.missing:
            lines.append(f"missing in checkpoint ({len(self.missing)}): {listing(self.missing)}")
        if self.unexpected:
            lines.append(f"unexpected in checkpoint ({len(self.unexpected)}): {listing(self.unexpected)}")
        if self.extras:
            lines.append("kept apart (no parameter in dos PTv3): "
                         + ", ".join(f"{k} {list(v.shape)}" for k, v in self.extras.items()))
        return "\n".join(lines)


def convert_pointcept_state(pointcept_state: Mapping[str, Tensor], model: torch.nn.Module | None = None,
                            strict: bool = True) -> ConversionReport:
    """Rename and re-lay Pointcept PT-v3m2 backbone tensors for our PointTransformerV3.

    With `model`, shapes are checked (a mismatch always raises) and missing/unexpected keys are computed
    against its state dict; strict raises ConversionError when either list is non-empty."""
    converted: dict[str, Tensor] = {}
    unexpected: list[str] = []
    extras: dict[str, Tensor] = {}
    for name, tensor in pointcept_state.items():
        if name in KNOWN_EXTRAS:
            extras[name] = tensor
            continue
        mapped = pointcept_name_to_dos(name)
        if mapped is None:
            unexpected.append(name)
            continue
        dos_name, transform = mapped
        converted[dos_name] = TRANSFORMS[transform][0](tensor) if transform else tensor
    report = ConversionReport(converted, unexpected=sorted(unexpected), extras=extras)
    if model is not None:
        expected = model.state_dict()
        mismatched = [f"{n}: checkpoint {list(t.shape)} vs model {list(expected[n].shape)}"
                      for n, t in converted.items() if n in expected and t.shape != expected[n].shape]
        if mismatched:
            raise ConversionError(f"shape mismatch for {len(mismatched)} tensors (wrong --config?): "
                                  + "; ".join(mismatched[:10]))
        extra_names = sorted(n for n in converted if n not in expected)
        report.unexpected += [dos_name_to_pointcept(n)[0] for n in extra_names]
        for n in extra_names:
            del converted[n]
        report.missing = sorted(n for n in expected if n not in converted)
        if strict and (report.missing or report.unexpected):
            raise ConversionError("checkpoint does not match the model (strict):\n" + report.summary())
    return report


def dos_state_to_pointcept(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our PointTransformerV3 state dict under Pointcept PT-v3m2 names and layouts (the inverse mapping)."""
    out: dict[str, Tensor] = {}
    for name, tensor in state.items():
        mapped = dos_name_to_pointcept(name)
        if mapped is None:
            raise ConversionError(f"dos parameter {name!r} has no Pointcept counterpart in NAME_MAP")
        pc_name, transform = mapped
        out[pc_name] = TRANSFORMS[transform][1](tensor) if transform else tensor
    return out


def read_checkpoint(path: str | Path, trust_pickle: bool = False) -> Mapping[str, Any]:
    """torch.load on CPU; only tensors and plain containers unless `trust_pickle` (arbitrary code: trusted
    files only; Pointcept training checkpoints also pickle optimizer/scheduler state, which may need it)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as error:  # noqa: BLE001 (torch raises several types for a refused pickle)
        if trust_pickle or "weights_only" not in str(error):
            raise
        raise ConversionError(f"{path}: the checkpoint pickles more than tensors; if you trust the file, "
                              f"allow it with --trust-pickle ({str(error).splitlines()[0]})") from None


def load_pointcept_checkpoint(model: torch.nn.Module, checkpoint: Mapping[str, Any] | str | Path,
                              strict: bool = True, prefix: str | None = None) -> ConversionReport:
    """Load a Pointcept PT-v3m2 checkpoint (path or loaded object) into `model`; returns the report."""
    if not isinstance(checkpoint, Mapping):
        checkpoint = read_checkpoint(checkpoint)
    state, used_prefix = extract_backbone_state(checkpoint, prefix)
    report = convert_pointcept_state(state, model, strict=strict)
    report.prefix = used_prefix
    model.load_state_dict(report.state_dict, strict=strict)
    return report


# ---------------------------------------------------------------------------------------------------------------
# Pointcept's own model, built from a checkout outside this repository (conformance script, `dos bench backbone`).

POINTCEPT_REQUIRED = ("spconv.pytorch", "torch_scatter", "timm.layers", "addict")
POINTCEPT_PTV3_MODULE = "pointcept.models.point_transformer_v3.point_transformer_v3m2_sonata"
# our PointTransformerV3 argument -> Pointcept's PT-v3m2 argument, where the names differ
POINTCEPT_ARGUMENT_NAMES = {"orders": "order", "enc_num_heads": "enc_num_head", "dec_num_heads": "dec_num_head"}
DOS_ONLY_ARGUMENTS = ("conv_backend", "attn_backend", "serialization_depth")  # Pointcept: depth per batch


def pointcept_unavailable(checkout: str | Path) -> str | None:
    """Why Pointcept's PT-v3m2 cannot be built from `checkout` here, or None when it can."""
    import importlib

    model_file = Path(checkout) / (POINTCEPT_PTV3_MODULE.replace(".", "/") + ".py")
    if not model_file.is_file():
        return f"no Pointcept checkout with PT-v3m2 at {checkout} ({model_file} not found)"
    problems = []
    for name in POINTCEPT_REQUIRED:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 (an extension may fail to load with any error type)
            message = str(error).splitlines()[0] if str(error) else ""
            problems.append(f"{name} ({type(error).__name__}: {message})")
    if problems:
        return "Pointcept's PT-v3m2 needs modules that do not import here: " + "; ".join(problems)
    return None


def import_pointcept_ptv3(checkout: str | Path):
    """Pointcept's PT-v3m2 module, imported without running the package __init__ files (pointcept.models
    imports every model and pointcept.engines.hooks the training engine): bare packages pointing at the
    checkout's folders are registered first, and HookBase is taken from its own file."""
    import importlib
    import sys
    import types

    checkout = Path(checkout).resolve()
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    for package in ("pointcept", "pointcept.models", "pointcept.models.point_transformer_v3",
                    "pointcept.engines", "pointcept.engines.hooks"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(checkout / package.replace(".", "/"))]
            sys.modules[package] = module
    hooks = sys.modules["pointcept.engines.hooks"]
    if not hasattr(hooks, "HookBase"):
        hooks.HookBase = importlib.import_module("pointcept.engines.hooks.default").HookBase
    return importlib.import_module(POINTCEPT_PTV3_MODULE)


def build_pointcept_ptv3(checkout: str | Path, config: Mapping[str, Any], enable_flash: bool = False,
                         device: str = "cpu") -> torch.nn.Module:
    """Pointcept's PT-v3m2 with the architecture of one of our PTv3 configs (dict of our argument names).

    Two adjustments, both outside the computation: its GridPooling modules get the model's shuffle_orders
    (Pointcept leaves them at their default True, so pooled levels shuffle even when the model does not), and
    on CPU its sparse convs use spconv's Native algorithm (the default implicit GEMM needs CUDA). Note that on
    CPU spconv refuses a conv bias in eval mode (it fuses it into the kernel only then): run it in train mode
    with dropout and drop path at 0 to evaluate it there."""
    module = import_pointcept_ptv3(checkout)
    kwargs = {POINTCEPT_ARGUMENT_NAMES.get(k, k): v for k, v in config.items() if k not in DOS_ONLY_ARGUMENTS}
    kwargs.update(enable_rpe=False, enable_flash=enable_flash, upcast_attention=False, upcast_softmax=False)
    model = module.PointTransformerV3(**kwargs)
    for sub in model.modules():
        if type(sub).__name__ == "GridPooling":
            sub.shuffle_orders = bool(config.get("shuffle_orders", True))
    if not str(device).startswith("cuda"):
        from spconv.core import ConvAlgo
        from spconv.pytorch.conv import SparseConvolution

        for sub in model.modules():
            if isinstance(sub, SparseConvolution):
                sub.algo = ConvAlgo.Native
    return model.to(device)
