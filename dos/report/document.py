"""`dos report document`: the Markdown report that shows every results table and every figure.

It embeds results/claims.md first (when present: the paper's claims decided with confidence intervals), then
results/tableN.md (in table order), and links every PNG found under the figure folders,
with the scale note and the provenance of what it shows: the git commit, the package versions and
the sha256 of every embedded file. It holds no date, so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Sequence

from dos.errors import DosError
from dos.report.tables import SCALES, read_table_csv, scale_note
from dos.utils.io import write_text
from dos.utils.provenance import file_hash, git_commit, package_versions


def _table_number(path: Path) -> int:
    match = re.fullmatch(r"table(\d+)", path.stem)
    return int(match.group(1)) if match else 1 << 30


def find_tables(results_dir: str | Path) -> list[Path]:
    """results/tableN.md, in table order."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        return []
    return sorted((p for p in results_dir.glob("table*.md") if _table_number(p) < 1 << 30), key=_table_number)


def find_figures(figure_dirs: Sequence[str | Path]) -> list[Path]:
    """Every PNG under the figure folders (recursively), sorted by path."""
    found: list[Path] = []
    for folder in figure_dirs:
        if Path(folder).is_dir():
            found += sorted(Path(folder).rglob("*.png"))
    return list(dict.fromkeys(found))


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def build_report(scale: str, results_dir: str | Path, figure_dirs: Sequence[str | Path], out: str | Path) -> str:
    """The report's Markdown text (figure links relative to `out`'s folder)."""
    if scale not in SCALES:
        raise DosError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    out = Path(out)
    tables = find_tables(results_dir)
    for md in tables:
        csv = md.with_suffix(".csv")
        table_scale = set(read_table_csv(csv)["scale"])
        if table_scale != {scale}:
            raise DosError(f"{csv}: built at scale {', '.join(sorted(table_scale))}, not {scale}; "
                           "one report shows one scale")
    figures = find_figures(figure_dirs)
    claims = Path(results_dir) / "claims.md"
    claim_files = [claims, claims.with_suffix(".csv")] if claims.is_file() else []

    lines = [f"# DOS reproduction report: scale `{scale}`", ""]
    if scale_note(scale):
        lines += [f"> **Note.** {scale_note(scale)}", ""]

    lines += ["## Provenance", ""]
    commit = git_commit()
    lines.append(f"- git commit: `{commit or 'unknown (not a git checkout)'}`")
    versions = package_versions()
    lines.append("- packages: " + ", ".join(f"{name} {versions[name]}" for name in sorted(versions)))
    lines += ["- inputs (sha256):", ""]
    for path in claim_files + tables + [md.with_suffix(".csv") for md in tables] + figures:
        lines.append(f"  - `{_relative(path, out.parent)}` `{file_hash(path)}`")
    lines.append("")

    if claim_files:  # the claims first: what the tables below decide
        lines += ["## Claims", "", claims.read_text().rstrip("\n"), "",
                  f"(from `{_relative(claims, out.parent)}`; per-seed differences in "
                  f"`{_relative(claims.with_suffix('.csv'), out.parent)}`)", ""]

    lines += ["## Tables", ""]
    if not tables:
        lines += [f"No results table (table*.md) in `{results_dir}`.", ""]
    for md in tables:
        lines += [md.read_text().rstrip("\n"), "",
                  f"(from `{_relative(md, out.parent)}`; CSV with the run paths: "
                  f"`{_relative(md.with_suffix('.csv'), out.parent)}`)", ""]

    lines += ["## Figures", ""]
    if not figures:
        lines += ["No figure (*.png) in " + ", ".join(f"`{d}`" for d in figure_dirs) + ".", ""]
    for png in figures:
        link = _relative(png, out.parent)
        lines += [f"### {png.stem}", "", f"![{png.stem}]({link})", ""]
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=SCALES, default="mini")
    parser.add_argument("--results", default="results", help="folder with tableN.{csv,md} (default: results)")
    parser.add_argument("--figures", nargs="+", default=None,
                        help="folders searched for PNG figures (default: reports/<scale>/figures)")
    parser.add_argument("--out", default=None, help="the report (default: reports/<scale>/report.md)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out or f"reports/{args.scale}/report.md")
    figure_dirs = args.figures or [f"reports/{args.scale}/figures"]
    write_text(out, build_report(args.scale, args.results, figure_dirs, out))
    print(out)
    return 0
