"""One table: every catalog entry's test NLL on its dataset, in the same units.

A row is *measured* when the entry's artifact is in the local store (the metrics its build
recorded on the test split), *expected* when only the catalog states a number, and empty
otherwise. Bits per dimension are ``nats / (D ln 2)`` with ``D`` the dataset's dimension, so
every row of one dataset is comparable. A row whose NLL is an upper bound (a continuous model
of discrete data, dequantized: ``Family.likelihood_bound``) is marked ``bound`` and shown
with "≤". Reads the store, never writes; imports no torch, so ``zoo list`` stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from zoo import config as _config
from zoo.artifact import store
from zoo.artifact.card import is_bound
from zoo.artifact.manifest import read_config
from zoo.catalog import Entry, catalog
from zoo.catalog.build_time import duration
from zoo.errors import ZooError
from zoo.plugin.context import ContextSpec
from zoo.plugin.registry import get_dataset

MEASURED, EXPECTED = "measured", "expected"


@dataclass(frozen=True)
class Row:
    """One entry's score: ``source`` is ``measured``, ``expected`` or ``None`` (no number)."""

    name: str
    family: str
    dataset: str
    test_nll: float | None
    test_nll_stderr: float | None
    bits_per_dim: float | None
    source: str | None
    bound: bool
    pulled: bool
    rank: int | None = None
    # The paper's figure the entry is set beside (``zoo.catalog.literature``), and zoo's figure
    # minus it, in nats and bits/dim (positive: zoo's is worse).
    literature: dict[str, Any] | None = None
    gap_nll: float | None = None
    gap_bits_per_dim: float | None = None
    #: What the NLL is given: ``"label"`` for a label-conditional entry (``-log p(x | y)``,
    #: ranked only against entries given the same), None for ``-log p(x)``.
    given: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dimensions(dataset: str) -> int | None:
    """``D`` of a registered dataset (its shape's product), or None if unknown."""
    try:
        return math.prod(get_dataset(dataset).shape)
    except ZooError:
        return None


def row(entry: Entry) -> Row:
    """The score of ``entry``: measured if pulled (and its artifact says), else expected."""
    path = store.artifact_dir(entry.name)
    pulled = store.is_complete(path)
    metrics: dict[str, float] = {}
    source = None
    if pulled:
        try:
            metrics = dict(read_config(path).metrics)
        except ZooError:
            metrics = {}
        source = MEASURED if "test_nll" in metrics else None
    if source is None and "test_nll" in entry.metrics:
        metrics, source = dict(entry.metrics), EXPECTED
    nll = metrics.get("test_nll") if source else None
    dims = dimensions(entry.dataset)
    bpd = metrics.get("bits_per_dim")
    if nll is not None and bpd is None and dims:
        bpd = nll / (dims * math.log(2))
    paper, gaps = literature_of(entry, nll, dims)
    return Row(entry.name, entry.family, entry.dataset, nll,
               metrics.get("test_nll_stderr") if source else None, bpd if nll is not None else None,
               source, is_bound(entry.family, entry.config), pulled, None, paper, *gaps,
               given=ContextSpec.from_dict(entry.config).kind)


def literature_of(entry: Entry, nll: float | None,
                  dims: int | None) -> tuple[dict[str, Any] | None, tuple[float | None, float | None]]:
    """``entry``'s published figure as a dict (both units) and zoo's gap to it."""
    paper = entry.literature
    if paper is None:
        return None, (None, None)
    nats, bits = paper.nats(dims), paper.bits(dims)
    shown = {"reference": paper.reference, "nll": nats, "bits_per_dim": bits,
             "as_published": paper.shown(), "protocol": paper.protocol}
    if nll is None or nats is None or not dims:
        return shown, (None, None)
    return shown, (nll - nats, (nll - nats) / (dims * math.log(2)))


def gap_text(r: Row) -> str:
    """zoo's figure minus the paper's: ``+3.21 nats (+0.0059 bits/dim)``, or "—"."""
    if r.gap_nll is None or r.gap_bits_per_dim is None:
        return "—"
    return f"{r.gap_nll:+.2f} nats ({r.gap_bits_per_dim:+.4f} bits/dim)"


def rows(dataset: str | None = None) -> list[Row]:
    """Every entry (of ``dataset``, if given), ranked by test NLL within each dataset;
    entries without a number come last, unranked. Conditional entries (``-log p(x | y)``)
    are ranked among themselves, after the others: their NLL is another quantity."""
    entries = [e for e in catalog() if dataset is None or e.dataset == dataset]
    if dataset is not None and not entries:
        known = sorted({e.dataset for e in catalog()})
        raise ZooError(f"no catalog entry is trained on {dataset!r} "
                       f"(datasets in the catalog: {', '.join(known) or 'none'})")
    ranked: list[Row] = []
    for name in sorted({e.dataset for e in entries}):
        everything = [row(e) for e in entries if e.dataset == name]
        for given in sorted({r.given or "" for r in everything}):
            group = [r for r in everything if (r.given or "") == given]
            scored = sorted((r for r in group if r.test_nll is not None),
                            key=lambda r: (r.test_nll, r.name))
            ranked += [Row(**{**asdict(r), "rank": i + 1}) for i, r in enumerate(scored)]
            ranked += sorted((r for r in group if r.test_nll is None), key=lambda r: r.name)
    return ranked


def nll_text(r: Row, *, stderr: bool = True) -> str:
    """The NLL as shown: "≤ " before a bound, "± stderr" after when measured."""
    if r.test_nll is None:
        return "—"
    text = ("≤ " if r.bound else "") + f"{r.test_nll:.2f}"
    if stderr and r.test_nll_stderr is not None:
        text += f" ± {r.test_nll_stderr:.2f}"
    return text


def bpd_text(r: Row) -> str:
    if r.bits_per_dim is None:
        return "—"
    return ("≤ " if r.bound else "") + f"{r.bits_per_dim:.4f}"


def text_table(table: list[Row]) -> str:
    """The rows as plain text for a terminal, one block per dataset."""
    lines = []
    for name in dict.fromkeys(r.dataset for r in table):
        group = [r for r in table if r.dataset == name]
        dims = dimensions(name)
        lines.append(f"{name}" + (f" (D = {dims})" if dims else "")
                     + ": test NLL in nats per example, bits/dim")
        width = max(len(r.name) for r in group)
        nll_w = max(len("test NLL"), *(len(nll_text(r)) for r in group))
        for r in group:
            source = {MEASURED: "measured", None: "not measured"}.get(r.source, "expected")
            lines.append(f"  {r.rank or '-':>3}  {r.name:<{width}}  {r.family:<10} "
                         f"{nll_text(r):>{nll_w}}  {bpd_text(r):>10}  {source}"
                         + ("  (upper bound: dequantized)" if r.bound and r.source else "")
                         + (f"  (given the {r.given}: ranked among those)" if r.given else ""))
        papers = [r for r in group if r.literature]
        if papers:
            lines.append("  beside the literature (gap = zoo's figure minus the paper's):")
        for r in papers:
            paper = r.literature
            lines.append(f"       {r.name:<{width}}  paper {paper['as_published']} "
                         f"({paper['reference']}); gap {gap_text(r)}")
        for protocol in dict.fromkeys(r.literature["protocol"] for r in papers):
            if protocol:  # said once for the entries that share it
                lines.append(f"  protocol difference: {protocol}")
        lines.append("")
    return "\n".join(lines)


def markdown(table: list[Row]) -> str:
    """The rows as Markdown, one table per dataset."""
    parts = []
    for name in dict.fromkeys(r.dataset for r in table):
        dims = dimensions(name)
        parts.append(f"## {name}" + (f" (D = {dims})" if dims else "") + "\n")
        parts.append("| rank | model | family | test NLL (nats per example) | bits/dim | |\n"
                     "| --- | --- | --- | --- | --- | --- |")
        for r in (r for r in table if r.dataset == name):
            note = {MEASURED: "measured", EXPECTED: "expected (catalog, not measured here)",
                    None: "not measured"}[r.source]
            if r.bound:
                note += "; upper bound (dequantization)"
            if r.given:
                note += f"; -log p(x \\| {r.given}), ranked among the entries given the {r.given}"
            parts.append(f"| {r.rank or ''} | `{r.name}` | {r.family} | {nll_text(r)} | "
                         f"{bpd_text(r)} | {note} |")
        papers = [r for r in table if r.dataset == name and r.literature]
        if papers:
            parts.append("\nBeside the literature (gap = zoo's figure minus the paper's; "
                         "positive: zoo's is worse):\n")
            parts.append("| model | paper's figure | reference | gap | protocol difference |\n"
                         "| --- | --- | --- | --- | --- |")
            for r in papers:
                paper = r.literature
                parts.append(f"| `{r.name}` | {paper['as_published']} | {paper['reference']} | "
                             f"{gap_text(r)} | {paper['protocol'] or 'the same'} |")
        parts.append("")
    return "\n".join(parts)


def list_rows() -> list[dict[str, Any]]:
    """``zoo list``'s rows: each catalog entry with its score (keys with ``_`` are display)."""
    out = []
    for entry in catalog():
        score = row(entry)
        out.append({
            "name": entry.name, "family": entry.family, "dataset": entry.dataset,
            "pulled": score.pulled, "description": entry.description,
            "provider": entry.provider, "test_nll": score.test_nll,
            "test_nll_stderr": score.test_nll_stderr, "bits_per_dim": score.bits_per_dim,
            "nll_source": score.source, "nll_bound": score.bound,
            "_nll": nll_text(score, stderr=False), "_bpd": bpd_text(score),
            "_expected": score.source == EXPECTED,
            "build_time": _config.to_dict(entry.build_time) if entry.build_time else None,
            "_build": (duration(entry.build_time.cpu_s) if entry.build_time
                       and entry.build_time.cpu_s is not None else "—"),
        })
    return out


def list_text(rows: list[dict[str, Any]]) -> str:
    """``zoo list`` as text: expected numbers in parentheses, "≤" before bounds."""
    if not rows:
        return "The catalog is empty."
    width = max(len(r["name"]) for r in rows)
    nll_w = max(len("test NLL"), *(len(r["_nll"]) + 2 * r["_expected"] for r in rows))
    bpd_w = max(len("bits/dim"), *(len(r["_bpd"]) + 2 * r["_expected"] for r in rows))
    build_w = max(len("build"), *(len(r["_build"]) for r in rows))
    lines = [f"  {'name':<{width}}  {'family':<10} {'dataset':<16} {'test NLL':>{nll_w}} "
             f"{'bits/dim':>{bpd_w}}  {'build':>{build_w}}  description"]
    for r in rows:
        mark = "*" if r["pulled"] else " "
        nll, bpd = ((f"({r['_nll']})", f"({r['_bpd']})") if r["_expected"]
                    else (r["_nll"], r["_bpd"]))
        lines.append(f"{mark} {r['name']:<{width}}  {r['family']:<10} {r['dataset']:<16} "
                     f"{nll:>{nll_w}} {bpd:>{bpd_w}}  {r['_build']:>{build_w}}  "
                     f"{r['description']}")
    lines.append("\n* = pulled into the local store; NLL in nats per example, measured on the "
                 "test split by the\nbuild; (in parentheses) = expected by the catalog, not "
                 "measured here; ≤ = an upper bound;\nbuild = the recorded time of `zoo pull` "
                 "on 2 CPU cores, one torch thread (`zoo info NAME`: GPU)")
    return "\n".join(lines)


#: The columns of ``zoo leaderboard --csv``: timm's ``results-*.csv`` layout (one row a model,
#: ranked), in zoo's units; empty cells where there is no number.
CSV_COLUMNS = ("rank", "model", "family", "dataset", "test_nll", "test_nll_stderr",
               "bits_per_dim", "bound", "source", "paper_nll", "paper_bits_per_dim",
               "paper_reference", "paper_protocol", "gap_nll", "gap_bits_per_dim", "given")


def csv_text(table: list[Row]) -> str:
    """``table`` as CSV with the header ``CSV_COLUMNS`` (rows as ranked)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in table:
        paper = r.literature or {}
        writer.writerow(["" if v is None else round(v, 6) if isinstance(v, float) else v
                         for v in (
            r.rank, r.name, r.family, r.dataset, r.test_nll, r.test_nll_stderr,
            r.bits_per_dim, r.bound, r.source, paper.get("nll"), paper.get("bits_per_dim"),
            paper.get("reference"), paper.get("protocol"), r.gap_nll, r.gap_bits_per_dim,
            r.given)])
    return out.getvalue()
