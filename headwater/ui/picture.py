"""The lineage picture of a dataset page: an inline SVG drawn on the server, no script.

Datasets stand in columns by their signed distance from the dataset shown (upstream to the left, downstream to
the right), sorted by name within a column; each edge is a curve from its source's right side to its target's
left side. A column holds at most :data:`PER_COLUMN` boxes; what does not fit is counted in a last box.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from markupsafe import Markup, escape

from headwater.lineage.schemas import GraphOut, NodeOut

__all__ = ["PER_COLUMN", "lineage_svg"]

PER_COLUMN = 12
BOX_W, BOX_H = 230, 30
COL_W, ROW_H = 290, 42
PAD = 10
NAME_CHARS = 30


@dataclass(frozen=True)
class _Box:
    x: int
    y: int
    node: NodeOut | None  # None: the "+N more" box of a full column
    more: int = 0


def _label(node: NodeOut) -> str:
    return node.label if node.hidden and node.label else f"{node.namespace}/{node.name}"


def _short(text: str) -> str:
    return text if len(text) <= NAME_CHARS else text[: NAME_CHARS - 1] + "…"


def _layout(graph: GraphOut) -> tuple[dict[str, _Box], list[_Box], int, int]:
    columns: dict[int, list[NodeOut]] = defaultdict(list)
    for node in graph.nodes:
        if node.kind == "dataset":
            columns[node.distance or 0].append(node)
    if not columns:
        return {}, [], 0, 0
    lowest = min(columns)
    placed: dict[str, _Box] = {}
    extra: list[_Box] = []
    rows = 0
    for distance, nodes in sorted(columns.items()):
        x = PAD + (distance - lowest) * COL_W
        shown = sorted(nodes, key=lambda n: (n.name or "", n.namespace or ""))[:PER_COLUMN]
        for row, node in enumerate(shown):
            placed[_label(node)] = _Box(x, PAD + row * ROW_H, node)
        if len(nodes) > PER_COLUMN:
            extra.append(_Box(x, PAD + len(shown) * ROW_H, None, len(nodes) - PER_COLUMN))
        rows = max(rows, len(shown) + (1 if len(nodes) > PER_COLUMN else 0))
    width = PAD * 2 + (max(columns) - lowest) * COL_W + BOX_W
    return placed, extra, width, PAD * 2 + rows * ROW_H - (ROW_H - BOX_H)


def lineage_svg(graph: GraphOut) -> Markup:
    """The dataset-level lineage around one dataset as an inline SVG; empty when there is nothing to draw."""
    placed, extra, width, height = _layout(graph)
    if len(placed) < 2:
        return Markup("")
    parts = [
        f'<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage of {escape(graph.root)}">'
    ]
    drawn: set[tuple[str, str]] = set()
    for edge in graph.edges:
        source, target = placed.get(edge.source), placed.get(edge.target)
        if source is None or target is None or (edge.source, edge.target) in drawn:
            continue
        drawn.add((edge.source, edge.target))
        x1, y1 = source.x + BOX_W, source.y + BOX_H // 2
        x2, y2 = target.x, target.y + BOX_H // 2
        bend = max(40, (x2 - x1) // 2)
        parts.append(
            f'<path class="edge" d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}">'
            f"<title>{escape(edge.source)} → {escape(edge.target)}"
            f"{' (' + str(escape(edge.job)) + ')' if edge.job else ''}</title></path>"
        )
    for label, box in placed.items():
        node = box.node
        assert node is not None
        root = " root" if node.distance == 0 else ""
        if node.hidden:  # a restricted dataset's placeholder: no name, no link
            parts.append(
                f'<g class="node hidden"><rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                f'<text x="{box.x + 8}" y="{box.y + 19}">restricted</text><title>{escape(label)}</title></g>'
            )
            continue
        parts.append(
            f'<a href="/ui/datasets/{node.id}"><g class="node{root}">'
            f'<rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text x="{box.x + 8}" y="{box.y + 19}">{escape(_short(node.name or ""))}</text>'
            f"<title>{escape(label)}</title></g></a>"
        )
    for box in extra:
        parts.append(
            f'<g class="node more"><rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text x="{box.x + 8}" y="{box.y + 19}">+{box.more} more</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
