"""What ``zoo info NAME`` prints: the catalog entry and the stored artifact as ``key  value``
lines, numbers with their provenance (measured, or expected by the catalog; "≤" for bounds)."""

from __future__ import annotations

import json
from typing import Any


def info_lines(name: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines of ``zoo info`` from ``zoo.info(name).as_dict()``."""
    artifact = data.get("artifact") or {}
    lines = [("name", name)]
    for key in ("family", "dataset", "description", "provider"):
        value = data.get(key) or artifact.get(key)
        if value:
            lines.append((key, value))
    config = data.get("config") or artifact.get("config")
    if config:
        lines.append(("config", json.dumps(config)))
    if data.get("recipe"):
        lines.append(("recipe", json.dumps(data["recipe"])))
    if data.get("build_time"):
        from zoo.catalog.build_time import BuildTime

        recorded = BuildTime(**data["build_time"])
        lines.append(("build time", recorded.summary() + (f" ({recorded.note})" if recorded.note else "")))
    if data.get("literature"):
        from zoo.catalog.literature import Literature

        paper = Literature(**data["literature"])
        lines.append(("literature", f"{paper.shown()}, {paper.reference}"
                                    + (f"; protocol: {paper.protocol}" if paper.protocol else "")))
    for source in data.get("sources") or []:
        lines.append(("published", f"{source['repo']}@{source['revision']}"))
    lines.append(("pulled", "yes" if data["pulled"] else "no"))
    if data.get("path"):
        lines.append(("path", data["path"]))
    if data.get("source") or artifact.get("source"):
        lines.append(("came from", json.dumps(data.get("source") or artifact.get("source"))))
    metrics = artifact.get("metrics") or data.get("metrics") or {}
    from zoo.artifact.card import BOUND_METRICS, is_bound

    bound = is_bound(data.get("family") or artifact.get("family"), config or {})
    expected = "" if artifact.get("metrics") else " (expected)"
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        if bound and key in BOUND_METRICS:
            shown = f"≤ {shown}"
        lines.append((key, f"{shown}{expected if key in BOUND_METRICS else ''}"))
    if bound and metrics:
        lines.append(("note", "NLL is an upper bound: a continuous density on discrete data, "
                              "uniformly dequantized"))
    if artifact.get("files"):  # pictures and history, shown by the model card
        lines.append(("extra files", ", ".join(artifact["files"])))
    if data.get("artifact_error"):
        lines.append(("error", data["artifact_error"]))
    return lines
