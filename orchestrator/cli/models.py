"""`ghostsweep models`: every registered model and variant, its params/MACs beside the papers' (torch-free: the
registry's closed-form counts, which tests check against the built models)."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ghostsweep import model
from ghostsweep.orchestrator.report.references import published_variants, references_for

TABLE_OPTIONS = ("first_layer", "block_norm")  # the option columns: a row for each combination a model takes


@dataclass
class ModelRow:
    model: str
    first_layer: str | None
    block_norm: str | None
    params: int
    macs: int
    paper_params: float | None
    paper_macs: float | None
    paper_source: str | None


def model_rows(names: Sequence[str] = ()) -> list[ModelRow]:
    """One row per registered model (or per name given) and stem/BN variant, with its closed-form counts, and
    one per option values a paper published numbers for (an ablation's points)."""
    known = model.available()
    for name in names:
        if name not in known:
            raise ValueError(f"models: unknown model {name!r}; valid: {', '.join(known)}")
    rows = []
    for name in names or known:
        paper = next((r for r in references_for(name) if r.params is not None), None)
        for options in table_variants(name):
            counted = model.complexity(name, **options)
            rows.append(ModelRow(
                name, options.get("first_layer"), options.get("block_norm"), counted.params, counted.macs,
                paper.params if paper else None, paper.macs if paper else None,
                paper.source.key if paper else None,
            ))
        for ref in published_variants(name):  # named by variant: ghost_vgg16-s4d3 (GhostNet Tables 2 and 3)
            options = dict(ref.options)
            counted = model.complexity(name, **options)
            rows.append(ModelRow(model.variant_name(name, options), None, None, counted.params, counted.macs,
                                 ref.params, ref.macs, ref.source.key))
    return rows


def table_variants(name: str) -> list[dict[str, object]]:
    """Every combination of the option columns' values that the model takes; [{}] when it takes none of them."""
    choices = model.option_choices(name)
    columns = [option for option in TABLE_OPTIONS if option in choices]
    return [dict(zip(columns, values, strict=True)) for values in itertools.product(*(choices[c] for c in columns))]


def _millions(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value / 1e6:.{digits}f}M"


def _difference(ours: int, paper: float | None) -> str:
    return "" if paper is None else f"{(ours - paper) / paper:+.1%}"


def print_table(rows: list[ModelRow]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="CIFAR-10 models: our params and forward MACs vs the papers' (MACs = the papers' FLOPs)")
    for column in ("model", "first layer", "block BN", "params", "MACs", "paper params", "Δ params",
                   "paper MACs", "Δ MACs", "source"):
        table.add_column(column, justify="left" if column in ("model", "first layer", "block BN", "source")
                         else "right")
    for row in rows:
        table.add_row(
            row.model, row.first_layer or "", row.block_norm or "", f"{row.params:,}", _millions(row.macs, 2),
            _millions(row.paper_params, 2), _difference(row.params, row.paper_params),
            _millions(row.paper_macs, 0), _difference(row.macs, row.paper_macs), row.paper_source or "",
        )
    console = Console()
    console.width = max(console.width, 140)  # a piped table must not wrap
    console.print(table)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list models with params and MACs beside the papers' values")
    parser.add_argument("names", nargs="*", metavar="MODEL", help="only these models (default: all)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default) for people, json for scripts")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.names)
    if args.format == "json":
        print(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        print_table(rows)
    return 0
