"""A learning curve as inline SVG, drawn on the server (no charting library, no script)."""

from __future__ import annotations

from html import escape

WIDTH, HEIGHT, PAD = 480, 220, 40


def learning_curve_svg(rounds: list[dict]) -> str:
    """Accuracy (test where the data has it, else validation, else the held-out items people
    labeled) against labels, one point per trained round."""
    splits = (("test", "test"), ("val", "validation"), ("holdout", "held-out (people's labels)"))
    which, key = next(((name, f"{split}_accuracy") for split, name in splits
                       if any(r.get(f"{split}_accuracy") is not None for r in rounds)), (None, None))
    if key is None:
        return ""
    points = [(r["labeled"], r[key]) for r in rounds if r.get("labeled") is not None and r.get(key) is not None]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = 0, max(xs) * 1.05 or 1
    y0, y1 = max(0.0, min(ys) - 0.05), min(1.0, max(ys) + 0.05)
    if y1 <= y0:
        y1 = y0 + 0.1

    def at(n: float, a: float) -> tuple[float, float]:
        return (PAD + (n - x0) / (x1 - x0) * (WIDTH - 2 * PAD), HEIGHT - PAD - (a - y0) / (y1 - y0) * (HEIGHT - 2 * PAD))

    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(n, a) for n, a in points))
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{n} labels: {a:.4f}</title></circle>'
                   for (n, a), (x, y) in zip(points, (at(n, a) for n, a in points)))
    label = escape(f"{which} accuracy")
    return (f'<svg class="curve" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="learning curve: {label}">'
            f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
            f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" class="axis"/>'
            f'<text x="{PAD}" y="{PAD - 10}">{label}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end">labels</text>'
            f'<text x="{PAD - 4}" y="{PAD + 4}" text-anchor="end">{y1:.2f}</text>'
            f'<text x="{PAD - 4}" y="{HEIGHT - PAD}" text-anchor="end">{y0:.2f}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - PAD + 14}" text-anchor="end">{max(xs)}</text>'
            f'<polyline points="{path}" class="line"/>{dots}</svg>')
