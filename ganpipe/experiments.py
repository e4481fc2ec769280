"""``ganpipe experiments``: DVC experiments side by side, readable in a terminal or a pipe.

``dvc exp show`` lists every param and metric (265 columns here; 92 with ``--only-changed``) and hides
what does not fit the terminal. This reads the same data (``dvc exp show --json``) and prints one row
per experiment (the baseline commit first, then its experiments; ``--all-commits`` passed on) with only
the params whose values differ between the rows, then the evaluation metrics (``metrics/eval.json``:
``mcd``, ``mrstft``, ``pesq``, ``f0_rmse_cents``, ``vuv_f1``) and the Griffin-Lim baseline's
(``gl_mcd`` ...: the floor each vocoder must beat).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

METRICS = ("mcd", "mrstft", "pesq", "f0_rmse_cents", "vuv_f1")
BASELINE = ("mcd", "mrstft", "pesq")
EVAL_FILE = "metrics/eval.json"


class ExperimentsError(RuntimeError):
    """``dvc exp show`` failed (the message carries DVC's)."""


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def rows_of(show: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``dvc exp show --json`` -> ``[{"name", "rev", "params": {key: value}, "metrics": {key: value}}]``."""
    rows = []

    def add(entry: dict[str, Any], name: str | None) -> None:
        data = entry.get("data") or {}
        params: dict[str, Any] = {}
        for file in (data.get("params") or {}).values():
            params.update(_flat((file or {}).get("data") or {}))
        metrics = ((data.get("metrics") or {}).get(EVAL_FILE) or {}).get("data") or {}
        rows.append({"name": name or entry.get("name") or str(entry.get("rev", ""))[:7],
                     "rev": str(entry.get("rev", ""))[:7], "params": params, "metrics": metrics})

    for commit in show:
        if commit.get("rev") == "workspace":
            continue
        add(commit, commit.get("name"))
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                add(rev, exp.get("name") or rev.get("name"))
    return rows


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and cells: name, the params that differ, the metrics and the Griffin-Lim baseline's."""
    keys = sorted({k for r in rows for k in r["params"]})
    changed = [k for k in keys if len({json.dumps(r["params"].get(k), sort_keys=True) for r in rows}) > 1]

    def fmt(v: Any, metric: bool = False) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if metric else f"{v:g}"
        return json.dumps(v) if isinstance(v, (list, dict)) else str(v)

    header = ["experiment", *changed, *METRICS, *(f"gl_{m}" for m in BASELINE)]
    cells = [[r["name"], *(fmt(r["params"].get(k)) for k in changed),
              *(fmt(r["metrics"].get(m), True) for m in METRICS),
              *(fmt((r["metrics"].get("griffin_lim") or {}).get(m), True) for m in BASELINE)] for r in rows]
    return header, cells


def render(header: list[str], cells: list[list[str]]) -> str:
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(header)]
    line = lambda row: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))  # noqa: E731
    return "\n".join([line(header), *(line(c) for c in cells)])


def show(extra: list[str] | None = None, cwd: str = ".") -> list[dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json", *(extra or [])], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExperimentsError((proc.stderr or proc.stdout).strip() or f"dvc exp show exited {proc.returncode}")
    return rows_of(json.loads(proc.stdout))
