"""All plotting: matplotlib figures saved as PNG, with the Agg backend (no display needed)."""

from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def accuracy_bars(
    path: Path, labels: list[str], values: list[float], intervals: list[tuple[float, float]], title: str
) -> Path:
    """Accuracy per setting with 95% intervals and the chance line, like the paper's Fig. 4."""
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(labels)), 4))
    lower = [v - lo for v, (lo, _) in zip(values, intervals)]
    upper = [hi - v for v, (_, hi) in zip(values, intervals)]
    ax.bar(labels, values, yerr=[lower, upper], capsize=4, color="#4c72b0")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def line_plot(path: Path, x: list[float], series: dict[str, list[float]], title: str, xlabel: str) -> Path:
    """One or more curves against a shared x axis (training losses, rewards, KL)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(x, ys, label=name, marker="." if len(x) < 50 else None)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def calibration_plot(path: Path, predicted: list[float], observed: list[float], title: str, bins: int = 10) -> Path:
    """Mean label per bin of predicted probability; the diagonal is perfect calibration."""
    edges = [i / bins for i in range(bins + 1)]
    xs, ys, ns = [], [], []
    for lo, hi in pairwise(edges):
        idx = [i for i, p in enumerate(predicted) if lo <= p < hi or (hi == 1.0 and p == 1.0)]
        if idx:
            xs.append(sum(predicted[i] for i in idx) / len(idx))
            ys.append(sum(observed[i] for i in idx) / len(idx))
            ns.append(len(idx))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    ax.scatter(xs, ys, s=[12 + 4 * n for n in ns], color="#c44e52", label="bins (size = count)")
    ax.plot(xs, ys, color="#c44e52")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(preferred)")
    ax.set_ylabel("label frequency")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def revision_curve(path: Path, means: list[float], sems: list[float]) -> Path:
    """Mean PM score after 0..N revisions, with standard errors (the paper's Fig. 5)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.errorbar(range(len(means)), means, yerr=sems, marker="o", capsize=4, color="#55a868")
    ax.set_xticks(range(len(means)))
    ax.set_xlabel("number of revisions (0 = initial answer)")
    ax.set_ylabel("mean PM score")
    ax.set_title("PM score vs number of revisions")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def rl_curves(path: Path, rows: list[dict]) -> Path:
    """PM reward, KL to the reference and answer length per RL step, in three panels."""
    steps = [r["step"] for r in rows]
    panels = [("reward", "PM reward"), ("kl", "KL to SL-CAI (per token)"), ("response_length", "answer tokens")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(steps, [r[key] for r in rows], marker="." if len(steps) < 50 else None, color="#4c72b0")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def elo_scatter(
    path: Path,
    names: list[str],
    helpful: list[float],
    helpful_ci: list[tuple[float, float]],
    harmless: list[float],
    harmless_ci: list[tuple[float, float]],
) -> Path:
    """Harmlessness Elo against helpfulness Elo, one point per model (the paper's Fig. 2)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, name in enumerate(names):
        xerr = [[helpful[k] - helpful_ci[k][0]], [helpful_ci[k][1] - helpful[k]]]
        yerr = [[harmless[k] - harmless_ci[k][0]], [harmless_ci[k][1] - harmless[k]]]
        ax.errorbar(helpful[k], harmless[k], xerr=xerr, yerr=yerr, fmt="o", capsize=4, label=name)
        ax.annotate(name, (helpful[k], harmless[k]), textcoords="offset points", xytext=(6, 6))
    ax.axhline(0, color="grey", linewidth=0.8, linestyle="--")
    ax.axvline(0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel(f"helpfulness Elo (vs {names[0]})")
    ax.set_ylabel(f"harmlessness Elo (vs {names[0]})")
    ax.set_title("Harmlessness vs helpfulness")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
