"""Pictures people look at: training curves, confusion matrices, neighbour grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    epochs = np.arange(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    ax_acc.plot(epochs, [h["top1"] for h in history], marker="o", label="validation top-1")
    ax_acc.plot(epochs, [h["top3"] for h in history], marker="o", label="validation top-3")
    ax_acc.plot(epochs, [h["train_top1"] for h in history], linestyle="--", label="train top-1")
    if all("P@10" in h for h in history):  # the cpu recipe also measures the embedding itself
        ax_acc.plot(epochs, [h["P@10"] for h in history], marker="s", label="validation P@10 (L2 retrieval)")
    switch = next((i for i, h in enumerate(history) if h["phase"] == "finetune"), None)
    for ax in (ax_loss, ax_acc):
        if switch:
            ax.axvline(switch + 0.5, color="grey", linestyle=":", label="head -> fine-tune")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * n + 2), max(4, 0.6 * n + 1.5)))
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    ax.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    color = "white" if normalized[i, j] > 0.5 else "black"
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8, color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_neighbours(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Each row: the query photo, then its nearest photos with distances (green: same category)."""
    k = max(len(r["neighbours"]) for r in rows)
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.9 * (k + 1), 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        cells = [
            (row["path"], f"query\n{row['category']}", "black"),
            *[
                (n["path"], f"{n['distance']:.2f}\n{n['category']}", "green" if n["same"] else "red")
                for n in row["neighbours"]
            ],
        ]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            image_path, label, color = cells[c]
            with Image.open(image_path) as image:
                image.thumbnail((160, 160))
                ax.imshow(image.convert("RGB"))
            ax.set_title(label, fontsize=8, color=color)
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(3 if c else 1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
