"""Plots: every figure is written, as a real PNG and a real SVG, for a few synthetic runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.plots import _pareto, plot_runs
from harness.provenance import make_manifest
from harness.store import RunStore

# A 3B-like shape for the paper's analytic formulas (paper.md): cache = 4 bytes x elements.
LAYERS, D, NQ, NKV, H, SINKS_WINDOW = 36, 2048, 16, 2, 128, 8192
LEVELS = {"16k": 16_000, "32k": 32_000, "64k": 64_000, "128k": 128_000, "256k": 256_000}


def _costs(method: str, n: int) -> dict[str, float]:
    w = min(n, SINKS_WINDOW) if method != "full" else n
    proj = 4 * n * D * H * (NQ + NKV)
    if method == "full":
        flops = proj + 2 * H * NQ * n * n
    else:
        flops = proj + 2 * H * NQ * w * w + 2 * (n - w) * (2 * w * H * NQ)
        if method == "ahn":
            flops += 2 * (n - w) * (2 * H * H * NQ + 3 * D * NQ)
    cache = 4 * LAYERS * 2 * w * H * NKV + (4 * LAYERS * H * H * NQ if method == "ahn" else 0)
    return {
        "flops_paper": LAYERS * flops,
        "flops_actual": LAYERS * flops * 1.05,
        "cache_bytes_paper": cache,
        "cache_bytes_actual": cache // 2,  # bf16 storage
        "cache_bytes_measured": cache // 2 + 4096,
    }


def make_run(path: Path, method: str, quality: list[float], n_per: int = 12, seed: int = 0) -> Path:
    """A synthetic LV-Eval-like run: two tasks x five levels, scores drawn around ``quality`` per level."""
    rng = np.random.default_rng(seed)
    manifest = make_manifest({"preset": method, "method": {"name": method}}, argv=["test"])
    with RunStore.create_or_resume(path, manifest) as store:
        for task in ("lveval/factrecall_en", "lveval/loogle_SD_mixup"):
            for (level, words), q in zip(LEVELS.items(), quality):
                for i in range(n_per):
                    before = int(words * rng.uniform(1.2, 1.5))
                    fed = min(before, 128_000)
                    store.append({
                        "key": f"{task}|{level}|{i}", "task": task, "level": level, "id": str(i),
                        "bucket": level, "prompt_tokens_before": before, "prompt_tokens": fed,
                        "truncated": fed < before, "prediction": "x",
                        "score": float(np.clip(q + rng.normal(0, 0.15), 0, 1)), "status": "ok",
                        "error": None, "n_generated": 16, "prefill_s": fed / 20_000, "decode_s": 0.4,
                        "peak_mem_bytes": 6e9 + _costs(method, fed)["cache_bytes_actual"],
                        **_costs(method, fed),
                    })
    return path


def synthetic_runs(root: Path) -> list[Path]:
    return [
        make_run(root / "full", "full", [0.62, 0.55, 0.45, 0.35, 0.2], seed=1),
        make_run(root / "swa", "swa", [0.45, 0.33, 0.22, 0.15, 0.1], seed=2),
        make_run(root / "ahn", "ahn-gdn", [0.55, 0.48, 0.4, 0.33, 0.25], seed=3),
    ]


def test_plot_runs_writes_real_png_and_svg(tmp_path: Path) -> None:
    runs = synthetic_runs(tmp_path / "runs")
    paths = plot_runs(runs, tmp_path / "fig")
    names = sorted(p.name for p in paths)
    expected = sorted(f"{s}.{e}" for s in ("score_by_length", "cost_vs_length", "score_vs_cost") for e in ("png", "svg"))
    assert names == expected
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 5_000, p
        if p.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        else:
            assert b"<svg" in data[:2000]
    # every method's label is drawn (SVG keeps text as glyph references, so check the PNG sizes differ
    # from an empty plot instead): a single run still plots
    single = plot_runs(runs[:1], tmp_path / "one")
    assert all(p.stat().st_size > 3_000 for p in single)


def test_plot_runs_without_costs(tmp_path: Path) -> None:
    """Runs that recorded no FLOPs/bytes still get every figure (with a note instead of an empty axis)."""
    path = tmp_path / "bare"
    with RunStore.create_or_resume(path, make_manifest({"method": "full"}, argv=["t"])) as store:
        for i in range(6):
            store.append({"key": f"synthetic/passkey|None|{i}", "task": "synthetic/passkey", "level": None,
                          "prompt_tokens_before": 1000 * (i + 1) * 3, "score": float(i % 2), "status": "ok"})
    assert len(plot_runs([path], tmp_path / "fig")) == 6


def test_pareto_front() -> None:
    # (cost, score): (2, 50) is beaten by (1, 60); (3, 70) costs more but scores more
    assert _pareto([(1, 60), (2, 50), (3, 70)]) == [(1, 60), (3, 70)]


def test_score_vs_cost_compares_on_shared_tasks(tmp_path: Path) -> None:
    """A run that also scored an easy extra task must not look better for it on the Pareto plot."""
    from harness.plots import _load, _overall_rows

    def run(path: Path, tasks: dict[str, float]) -> Path:
        with RunStore.create_or_resume(path, make_manifest({"preset": path.name}, argv=["t"])) as store:
            for task, score in tasks.items():
                for i in range(4):
                    store.append({"key": f"{task}|16k|{i}", "task": task, "level": "16k", "score": score})
        return path

    a = run(tmp_path / "a", {"lveval/x": 0.5})
    b = run(tmp_path / "b", {"lveval/x": 0.4, "lveval/easy": 1.0})
    rows, note = _overall_rows(_load([a, b]))
    assert rows["a"]["score"] == 50.0 and rows["b"]["score"] == 40.0  # not (40 + 100) / 2
    assert note == "on the 1 task(s) every run scored"


def test_identical_score_lines_are_named_under_the_axis(tmp_path: Path, monkeypatch) -> None:
    """Methods with the very same scores draw one line over another: the figure must say which ones."""
    from matplotlib.figure import Figure

    from harness.plots import _load, plot_score_by_length

    runs = [make_run(tmp_path / name, name, [0.5, 0.4, 0.3, 0.2, 0.1], seed=7) for name in ("swa", "ct-max")]
    runs.append(make_run(tmp_path / "full", "full", [0.9, 0.9, 0.8, 0.8, 0.7], seed=8))
    labels: list[str] = []
    original = Figure.savefig

    def spy(fig, *args, **kwargs):
        labels.extend(ax.get_xlabel() for ax in fig.axes)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    (tmp_path / "fig").mkdir()
    plot_score_by_length(_load(runs), tmp_path / "fig", formats=("png",))
    text = " ".join(labels)
    assert "identical scores" in text and "swa = ct-max" in text and "full" not in text
