"""Lineage as a graph (pure): data versions (`path@hash`), the runs that used them (with their reruns
and verdicts), what those runs produced, and the runs that used that in turn; drawn as a tree for
the terminal, as plain data for `--json`, and as a self-contained HTML page with an SVG picture
(logged beside a run, so that the MLflow UI shows it)."""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Graph", "RunNode", "data_key", "to_html", "to_json", "tree_lines"]


def data_key(path: str, digest: str) -> str:
    return f"{path}@{digest}"


@dataclass
class RunNode:
    run_id: str
    name: str = ""
    status: str = ""
    commit: str = ""
    verdict: str = ""  # a rerun's: reproduced, not-reproduced, nothing-to-compare
    rerun_of: str = ""
    smoke: bool = False
    inputs: list[str] = field(default_factory=list)  # data keys
    outputs: list[str] = field(default_factory=list)  # data keys
    models: list[dict[str, str]] = field(default_factory=list)  # MLflow logged models: model_id, name, uri


@dataclass
class Graph:
    runs: dict[str, RunNode] = field(default_factory=dict)
    data: set[str] = field(default_factory=set)
    truncated: bool = False  # the walk stopped at its depth or size limit

    def add_run(self, node: RunNode) -> None:
        self.runs[node.run_id] = node
        self.data.update(node.inputs)
        self.data.update(node.outputs)

    def users(self, key: str) -> list[RunNode]:
        """The runs (not reruns: they hang under their original) that read this data version."""
        found = [r for r in self.runs.values() if key in r.inputs and not r.rerun_of]
        return sorted(found, key=lambda r: r.run_id)

    def makers(self, key: str) -> list[RunNode]:
        return sorted((r for r in self.runs.values() if key in r.outputs and not r.rerun_of), key=lambda r: r.run_id)

    def reruns(self, run_id: str) -> list[RunNode]:
        return sorted((r for r in self.runs.values() if r.rerun_of == run_id), key=lambda r: r.run_id)


def _run_label(node: RunNode) -> str:
    parts = [f"run {node.run_id[:12]}"]
    if node.name:
        parts.append(node.name)
    if node.status:
        parts.append(node.status)
    if node.commit:
        parts.append(f"commit {node.commit[:8]}")
    if node.smoke:
        parts.append("smoke run")
    return "  ".join(parts)


def _data_label(key: str) -> str:
    path, _, digest = key.rpartition("@")
    return f"{path} @ {digest[:12]}"


def tree_lines(graph: Graph, roots: Iterable[str]) -> list[str]:
    """The lineage from ``roots`` (data keys, or run IDs) down: each data version, the runs that
    used it, their reruns with the verdict, what each run produced, and so on; a node met again
    is named, not repeated."""
    lines: list[str] = []
    seen: set[str] = set()

    def data(key: str, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        if key in seen:
            lines.append(f"{prefix}{branch}{_data_label(key)}  (above)")
            return
        seen.add(key)
        lines.append(f"{prefix}{branch}{_data_label(key)}")
        inner = prefix + ("" if top else ("   " if last else "│  "))
        children = graph.users(key)
        for i, node in enumerate(children):
            run(node, inner, i == len(children) - 1, "used by ")

    def run(node: RunNode, prefix: str, last: bool, how: str) -> None:
        branch = "└─ " if last else "├─ "
        if node.run_id in seen:
            lines.append(f"{prefix}{branch}{how}{_run_label(node)}  (above)")
            return
        seen.add(node.run_id)
        lines.append(f"{prefix}{branch}{how}{_run_label(node)}")
        inner = prefix + ("   " if last else "│  ")
        reruns = graph.reruns(node.run_id)
        items: list[tuple[str, Any]] = [("rerun", r) for r in reruns] + [("made", k) for k in node.outputs]
        items += [("model", m) for m in node.models]
        for i, (kind, item) in enumerate(items):
            end = i == len(items) - 1
            if kind == "model":
                lines.append(f"{inner}{'└─ ' if end else '├─ '}logged model {item['name']}  {item['uri']}")
            elif kind == "rerun":
                verdict = item.verdict.replace("-", " ").upper() if item.verdict else "not verified"
                lines.append(f"{inner}{'└─ ' if end else '├─ '}rerun {item.run_id[:12]}  {item.status}  {verdict}")
            else:
                lines.append(f"{inner}{'└─ ' if end else '├─ '}made {_data_label(item)}")
                below = inner + ("   " if end else "│  ")
                users = graph.users(item)
                for j, user in enumerate(users):
                    run(user, below, j == len(users) - 1, "used by ")

    for key in roots:
        if key in graph.runs:
            node = graph.runs[key]
            for source in node.inputs:  # where the run's data came from
                makers = graph.makers(source)
                by = f"  made by {', '.join(m.run_id[:12] for m in makers)}" if makers else ""
                lines.append(f"{_data_label(source)}{by}")
            run(node, "", True, "")
        else:
            data(key, "", True, True)
    if graph.truncated:
        lines.append("(the lineage goes on: shown to its depth limit; --depth N shows more)")
    return lines


def to_json(graph: Graph, roots: Iterable[str]) -> dict[str, Any]:
    edges = []
    for node in graph.runs.values():
        edges += [{"from": key, "to": node.run_id, "kind": "input"} for key in node.inputs]
        edges += [{"from": node.run_id, "to": key, "kind": "output"} for key in node.outputs]
        if node.rerun_of:
            edges.append({"from": node.rerun_of, "to": node.run_id, "kind": "rerun"})
    return {
        "roots": list(roots),
        "data": [{"key": k, "path": k.rpartition("@")[0], "hash": k.rpartition("@")[2]} for k in sorted(graph.data)],
        "runs": [vars(node) for node in sorted(graph.runs.values(), key=lambda r: r.run_id)],
        "edges": edges,
        "truncated": graph.truncated,
    }


# --- the picture -----------------------------------------------------------------------------------

_W, _H, _GAP_X, _GAP_Y = 230, 44, 70, 18


def _layers(graph: Graph, roots: list[str]) -> dict[str, int]:
    """Each node's column: its longest distance from a root along input -> run -> output -> run."""
    nexts: dict[str, list[str]] = {}
    for node in graph.runs.values():
        for key in node.inputs:
            nexts.setdefault(key, []).append(node.run_id)
        nexts.setdefault(node.run_id, []).extend(node.outputs)
        if node.rerun_of:
            nexts.setdefault(node.rerun_of, []).append(node.run_id)
    column: dict[str, int] = {}
    frontier = [(r, 0) for r in roots]
    for run in graph.runs.values():
        for key in run.inputs:
            if key not in column and not graph.makers(key) and key not in roots:
                frontier.append((key, 0))
    while frontier:
        key, depth = frontier.pop()
        if column.get(key, -1) >= depth or depth > 64:
            continue
        column[key] = depth
        frontier += [(n, depth + 1) for n in nexts.get(key, [])]
    for key in [*graph.data, *graph.runs]:
        column.setdefault(key, 0)
    return column


def to_html(graph: Graph, roots: list[str], title: str) -> str:
    """A self-contained page: the lineage as an SVG (data versions as rounded boxes, runs as boxes,
    reruns dashed, coloured by verdict) and the same as a tree below it."""
    column = _layers(graph, roots)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for node in sorted(column, key=lambda n: (column[n], n)):
        c = column[node]
        where[node] = (20 + c * (_W + _GAP_X), 20 + rows.get(c, 0) * (_H + _GAP_Y))
        rows[c] = rows.get(c, 0) + 1
    width = 40 + (max(column.values(), default=0) + 1) * (_W + _GAP_X)
    height = 40 + max(rows.values(), default=1) * (_H + _GAP_Y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    for edge in to_json(graph, roots)["edges"]:
        if edge["from"] not in where or edge["to"] not in where:
            continue
        (x1, y1), (x2, y2) = where[edge["from"]], where[edge["to"]]
        dash = ' stroke-dasharray="4 3"' if edge["kind"] == "rerun" else ""
        parts.append(
            f'<line x1="{x1 + _W}" y1="{y1 + _H // 2}" x2="{x2}" y2="{y2 + _H // 2}" stroke="#555"{dash} '
            'marker-end="url(#a)"/>'
        )
    colours = {"reproduced": "#d8f5d0", "not-reproduced": "#f8d0d0", "nothing-to-compare": "#eeeeee"}
    for node, (x, y) in where.items():
        if node in graph.runs:
            run = graph.runs[node]
            fill = colours.get(run.verdict, "#dde8ff") if run.rerun_of else "#dde8ff"
            dash = ' stroke-dasharray="4 3"' if run.rerun_of else ""
            first = ("rerun " if run.rerun_of else "run ") + run.run_id[:12]
            second = " ".join(x for x in (run.status, run.verdict.replace("-", " "), run.name[:24]) if x)
            parts.append(f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" fill="{fill}" stroke="#335"{dash}/>')
        else:
            path, _, digest = node.rpartition("@")
            first, second = path[-34:], digest[:16]
            parts.append(f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="14" fill="#fff4d6" stroke="#a70"/>')
        parts.append(f'<text x="{x + 8}" y="{y + 18}">{html.escape(first)}</text>')
        parts.append(f'<text x="{x + 8}" y="{y + 34}" fill="#444">{html.escape(second)}</text>')
    parts.append("</svg>")
    tree = html.escape("\n".join(tree_lines(graph, roots)))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h3>{html.escape(title)}</h3>{''.join(parts)}<pre>{tree}</pre></body></html>\n"
    )
