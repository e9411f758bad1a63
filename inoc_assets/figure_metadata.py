"""Figures on a materialization: the full PNG is a file under the artifact store, linked from the
event; a downscaled copy (``figures.THUMBNAIL_PX`` wide, tens of kB) is shown inline, so the figure
is visible in the UI without opening the file."""

from __future__ import annotations

import logging

from dagster import MetadataValue

from inoc import figures
from inoc.artifacts import ArtifactStore


class FigurePublisher:
    """Renders, checks and writes one asset's figures, and collects their metadata."""

    def __init__(self, store: ArtifactStore, log: logging.Logger | None = None) -> None:
        self.store, self.log = store, log
        self.metadata: dict[str, object] = {}
        self.problems: list[str] = []
        self.written: list[str] = []

    def publish(self, name: str, fig, *parts: str) -> str:
        """Write ``fig`` to ``parts`` (relative to the store) and add ``name`` (thumbnail) and
        ``name_file`` (link to the full PNG) to the metadata; returns where the PNG went."""
        rendered = figures.render(fig)
        target = self.store.write_bytes(rendered.png, *parts)
        self.written.append(target)
        self.metadata[name] = MetadataValue.md(figures.markdown_image(rendered.thumbnail, name))
        self.metadata[f"{name}_file"] = MetadataValue.url(target) if "://" in target else MetadataValue.path(target)
        for problem in rendered.problems:
            self.problems.append(f"{name}: {problem}")
            if self.log is not None:
                self.log.warning(f"figure {name}: {problem}")
        return target

    def not_drawn(self, name: str, why: str) -> None:
        self.metadata[f"{name}_not_drawn"] = MetadataValue.text(why)

    def summary(self) -> dict[str, object]:
        """The collected metadata plus how many figures were written and how many problems they have."""
        out = dict(self.metadata)
        out["n_figures"] = len(self.written)
        out["figure_problems"] = len(self.problems)
        if self.problems:
            out["figure_problem_list"] = MetadataValue.json(self.problems)
        return out
