"""Charts as server-rendered SVG (no script, no style attribute: the pages' CSP allows neither)."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2")


def line_chart(
    series: dict[str, list[tuple[str, float]]], *, title: str, width: int = 720, height: int = 240
) -> Markup:
    """Lines over shared x labels (days), y from 0 to the largest value; one colour and legend entry a series."""
    labels = sorted({x for points in series.values() for x, _ in points})
    if not labels:
        return Markup("")
    left, right, top, bottom = 48, 16, 28, 36
    top_value = max((y for points in series.values() for _, y in points), default=0) or 1.0
    inner_w, inner_h = width - left - right, height - top - bottom

    def x_of(label: str) -> float:
        return left + (labels.index(label) + 0.5) * inner_w / len(labels)

    def y_of(value: float) -> float:
        return top + inner_h * (1 - value / top_value)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}"'
        f' role="img" aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, 0.5, 1):
        y = y_of(tick * top_value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#6b7280">'
            f"{100 * tick * top_value:.1f}%</text>"
        )
    step = max(1, len(labels) // 8)
    for label in labels[::step]:
        parts.append(
            f'<text x="{x_of(label):.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="11"'
            f' fill="#6b7280">{escape(label[5:])}</text>'
        )
    legend_x = left
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in sorted(points))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in points:
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{colour}"/>')
        parts.append(
            f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="17" font-size="12" fill="#111827">{escape(name)}</text>'
        )
        legend_x += 14 + int(7 * len(name)) + 18  # about 7 px a character at 12 px
    parts.append("</svg>")
    return Markup("".join(parts))
