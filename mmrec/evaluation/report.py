"""The harness's result: one row per model, printed as a table and saved as CSV, JSON and a plot."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec.utils.io import atomic_path, atomic_write_text

__all__ = ["EvaluationReport"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _save_figure(fig: Any, axes: Any, path: str | os.PathLike[str]) -> Path:
    """Legend, layout, and the PNG written atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return path


@dataclass
class EvaluationReport:
    """Metrics of several models under one split and protocol (``full`` or ``sampled-N``)."""

    rows: list[dict[str, Any]]
    ks: tuple[int, ...]
    metrics: tuple[str, ...]
    protocol: str
    split: str
    n_users: int
    n_items: int
    notes: list[str] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        """One row per model (index ``model``), every measured column."""
        return pd.DataFrame(self.rows).set_index("model")

    def headline_columns(self) -> list[str]:
        """What a reader compares first: recall and NDCG at each K; the other metrics, coverage,
        novelty and ANN recall at the largest K; rating errors; timings (all of them are in the CSV)."""
        table = self.table
        top = max(self.ks)
        wanted = [f"{m}@{k}" for k in self.ks for m in ("recall", "ndcg")]
        wanted += [f"{m}@{top}" for m in self.metrics if m not in ("recall", "ndcg")]
        wanted += [f"{m}@{top}" for m in ("coverage", "novelty", "ild", "ild_category", "gini", "tail",
                                           "miscalibration", "ann_recall", "ann_recall_loss")]
        wanted += ["rmse", "accuracy", "fit_s", "score_s"]
        return [c for c in wanted if c in table and table[c].notna().any()]

    def to_markdown(self, columns: Sequence[str] | None = None) -> str:
        """A markdown table; the header says the protocol, so a sampled number is never mistaken
        for a full-ranking one."""
        table = self.table
        columns = list(columns) if columns is not None else self.headline_columns()
        header = (f"{self.split}; {self.protocol} ranking over {self.n_items:,} items; "
                  f"{self.n_users:,} test users")
        lines = [header, "", "| model | " + " | ".join(columns) + " |",
                 "|---|" + "---|" * len(columns)]
        for name, row in table.iterrows():
            lines.append(f"| {name} | " + " | ".join(_cell(row.get(c, float("nan"))) for c in columns) + " |")
        return "\n".join(lines + [f"\n{note}" for note in self.notes])

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "split": self.split, "n_users": self.n_users,
                "n_items": self.n_items, "ks": list(self.ks), "metrics": list(self.metrics),
                "rows": self.rows, "notes": self.notes}

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """metric@K curves, one panel per metric, one line per model (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        table = self.table
        preferred = ("recall", "ndcg", "precision", "map", "hit", "mrr", "f1")
        shown = [m for m in preferred if m in self.metrics][:4]
        fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.4), squeeze=False)
        for axis, metric in zip(axes[0], shown, strict=True):
            for name, row in table.iterrows():
                axis.plot(self.ks, [row.get(f"{metric}@{k}", float("nan")) for k in self.ks], marker="o",
                          label=str(name))
            axis.set_xlabel("K")
            axis.set_title(f"{metric}@K ({self.protocol})")
            axis.grid(alpha=0.3)
        return _save_figure(fig, axes, path)

    @property
    def has_tradeoff(self) -> bool:
        """Whether the rows hold several diversification levels (λ) of a model."""
        table = self.table
        return "diversify" in table.columns and table["diversify"].nunique() > 1

    def plot_tradeoff(self, path: str | os.PathLike[str]) -> Path:
        """Accuracy against diversity and against coverage at the largest K, one line per model
        through its λ values (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        table = self.table.reset_index()
        top = max(self.ks)
        diversity = next((f"{m}@{top}" for m in ("ild", "ild_category") if f"{m}@{top}" in table), None)
        panels = [c for c in (diversity, f"coverage@{top}") if c is not None and c in table]
        accuracy = f"recall@{top}" if f"recall@{top}" in table else f"{self.metrics[0]}@{top}"
        table["base"] = table["model"].str.replace(r" \(diversify=[^)]*\)$", "", regex=True)
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
        for axis, column in zip(axes[0], panels, strict=True):
            for base, rows in table.sort_values("diversify").groupby("base", sort=False):
                axis.plot(rows[column], rows[accuracy], marker="o", label=str(base))
                for _, row in rows.iterrows():
                    axis.annotate(f"λ={row['diversify']:g}", (row[column], row[accuracy]), fontsize=6,
                                  textcoords="offset points", xytext=(3, 3))
            axis.set_xlabel(column)
            axis.set_ylabel(accuracy)
            axis.set_title(f"{accuracy} vs {column} ({self.protocol})")
            axis.grid(alpha=0.3)
        return _save_figure(fig, axes, path)

    def save(self, folder: str | os.PathLike[str], *, plot: bool = True) -> Path:
        """``metrics.csv``, ``metrics.json``, ``metrics.md`` and ``metrics.png`` in ``folder``
        (and ``tradeoff.png`` when the rows hold several diversification levels)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "metrics.csv", self.table.to_csv())
        atomic_write_text(folder / "metrics.json", json.dumps(self.to_dict(), indent=1, default=str))
        atomic_write_text(folder / "metrics.md", self.to_markdown() + "\n")
        if plot:
            self.plot(folder / "metrics.png")
            if self.has_tradeoff:
                self.plot_tradeoff(folder / "tradeoff.png")
        return folder
