"""What makes a figure unfit for a slide, found on the matplotlib Figure itself.

``figure_problems`` reports panels without any plotted data, text under 8 pt, legends drawn over
data, and scatter plots whose colours have no legend or colorbar. The figure functions run it on
every figure they build (``inoc.figures.render``), and tests/test_figures.py holds it to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import Collection, PathCollection
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Text

MIN_FONT_PT = 8.0


@dataclass(frozen=True)
class FigureProblem:
    kind: str  # empty_panel | small_text | legend_covers_data | scatter_without_colour_legend
    panel: str  # the panel's title (or its position when untitled)
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} in panel {self.panel!r}: {self.detail}"


def _panels(fig: Figure) -> list[Axes]:
    """Axes that are panels: visible, axis on, not a colorbar."""
    # A 3-D axes draws its own axes (`_axis3don`) and keeps the 2-D frame (`axison`) off.
    on = lambda ax: getattr(ax, "_axis3don", ax.axison)  # noqa: E731
    return [ax for ax in fig.axes if ax.get_visible() and on(ax) and not hasattr(ax, "_colorbar")]


def _name(ax: Axes, fig: Figure) -> str:
    title = ax.get_title() or ax.get_title("left") or ax.get_title("right")
    return title or f"axes {fig.axes.index(ax)} ({ax.get_xlabel() or 'no x label'})"


def _on_data(artist, ax: Axes) -> bool:
    """True when the artist is placed in data coordinates (not a reference line at an axes fraction)."""
    if hasattr(artist, "_offsets3d") or hasattr(artist, "_verts3d") or hasattr(artist, "_segments3d"):
        return True
    if isinstance(artist, PathCollection):  # scatter: markers in pixels, placed at data offsets
        return artist.get_offset_transform().contains_branch(ax.transData)
    return artist.get_transform().contains_branch(ax.transData)


def _finite_points(artist) -> np.ndarray:
    """Finite data points of a line, scatter, bar or polygon collection, as an (n, 2) array."""
    if isinstance(artist, Line2D):
        xy = np.column_stack([np.asarray(artist.get_xdata(), float), np.asarray(artist.get_ydata(), float)])
    elif hasattr(artist, "_offsets3d"):
        xy = np.column_stack([np.ma.filled(np.asarray(c, float), np.nan) for c in artist._offsets3d[:2]])
    elif isinstance(artist, PathCollection):
        xy = np.ma.filled(np.asarray(artist.get_offsets(), float), np.nan)
    elif isinstance(artist, Rectangle):
        x, y, w, h = artist.get_x(), artist.get_y(), artist.get_width(), artist.get_height()
        ok = np.isfinite([x, y, w, h]).all() and w != 0 and h != 0  # a bar of a missing value draws nothing
        xy = np.array([[x, y], [x + w, y + h]], float) if ok else np.empty((0, 2))
    elif isinstance(artist, Collection):
        paths = artist.get_paths()
        xy = np.concatenate([p.vertices for p in paths]) if paths else np.empty((0, 2))
    else:
        return np.empty((0, 2))
    xy = xy.reshape(-1, 2) if xy.size else np.empty((0, 2))
    return xy[np.isfinite(xy).all(axis=1)]


def _data_artists(ax: Axes) -> list:
    return [a for a in [*ax.lines, *ax.collections, *ax.patches, *ax.images] if a.get_visible() and _on_data(a, ax)]


def _has_data(ax: Axes) -> bool:
    for artist in _data_artists(ax):
        if artist in ax.images:
            if np.isfinite(np.ma.filled(np.asarray(artist.get_array(), float), np.nan)).any():
                return True
        elif len(_finite_points(artist)):
            return True
    return False


def empty_panels(fig: Figure) -> list[str]:
    """Names of the panels that show no data at all (reference lines and text do not count)."""
    return [_name(ax, fig) for ax in _panels(fig) if not _has_data(ax)]


def _small_text(fig: Figure) -> list[FigureProblem]:
    seen: dict[tuple[str, float], FigureProblem] = {}
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip() or text.get_fontsize() >= MIN_FONT_PT - 1e-6:
            continue
        ax = text.axes
        panel = _name(ax, fig) if ax is not None and ax in fig.axes else "figure"
        key = (panel, round(text.get_fontsize(), 1))
        seen.setdefault(
            key, FigureProblem("small_text", panel, f"{text.get_text()[:40]!r} at {text.get_fontsize():.1f} pt")
        )
    return list(seen.values())


def _display_points(artist, ax: Axes) -> np.ndarray:
    """The artist's data in display pixels; line segments sampled so a line crossing a legend counts."""
    if hasattr(artist, "_offsets3d") or artist in ax.images:
        return np.empty((0, 2))  # 3-D projections and heatmaps: legends there are placed outside by construction
    if isinstance(artist, Rectangle):
        return np.empty((0, 2))  # bars: checked by overlap of their extents
    xy = _finite_points(artist)
    if isinstance(artist, Line2D) and len(xy) > 1 and artist.get_linestyle() not in ("None", "", " "):
        t = np.linspace(0, 1, 12)[:, None]
        xy = np.concatenate([a + t * (b - a) for a, b in zip(xy[:-1], xy[1:])])
    if isinstance(artist, Collection) and not isinstance(artist, PathCollection):
        return np.empty((0, 2))  # shaded CI bands and error-bar segments may sit under a legend's edge
    transform = artist.get_offset_transform() if isinstance(artist, PathCollection) else artist.get_transform()
    return transform.transform(xy) if len(xy) else np.empty((0, 2))


def _legend_overlaps(fig: Figure) -> list[FigureProblem]:
    fig.canvas.draw()
    out = []
    for ax in _panels(fig):
        legends: list[Legend] = [ax.get_legend()] if ax.get_legend() is not None else []
        for legend in legends:
            box = legend.get_window_extent()
            hits = 0
            for artist in _data_artists(ax):
                if isinstance(artist, Rectangle):
                    ext = artist.get_window_extent()
                    hits += bool(ext.width and ext.height and box.overlaps(ext))
                    continue
                pts = _display_points(artist, ax)
                if len(pts):
                    inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
                    hits += int(inside.sum())
            if hits:
                out.append(
                    FigureProblem("legend_covers_data", _name(ax, fig), f"{hits} data point(s)/bar(s) under the legend")
                )
    return out


def _scatter_legends(fig: Figure) -> list[FigureProblem]:
    out = []
    for ax in _panels(fig):
        for sc in ax.collections:
            if not isinstance(sc, PathCollection) or len(_finite_points(sc)) < 2:
                continue
            if sc.get_array() is not None:
                if getattr(sc, "colorbar", None) is None:
                    out.append(
                        FigureProblem(
                            "scatter_without_colour_legend", _name(ax, fig), "colour-mapped points without a colorbar"
                        )
                    )
            elif (
                len(np.unique(np.round(sc.get_facecolors(), 3), axis=0)) > 1
                and ax.get_legend() is None
                and not fig.legends
            ):
                out.append(
                    FigureProblem(
                        "scatter_without_colour_legend", _name(ax, fig), "points of several colours without a legend"
                    )
                )
    return out


def figure_problems(fig: Figure) -> list[FigureProblem]:
    """Everything that keeps ``fig`` off a slide; an empty list when it is fit to show."""
    problems = [FigureProblem("empty_panel", name, "no plotted data") for name in empty_panels(fig)]
    if not _panels(fig):
        problems.append(FigureProblem("empty_panel", "figure", "the figure has no panel"))
    return problems + _small_text(fig) + _legend_overlaps(fig) + _scatter_legends(fig)
