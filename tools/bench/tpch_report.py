"""Summary, Markdown table and chart of a ``tools.bench.tpch_bench`` result.

    python -m tools.bench.tpch_report bench-results/tpch_bench_sf1.json   # rewrites .md/.png
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def _median(rec: dict, engine: str):
    return rec["engines"].get(engine, {}).get("median_s")


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def summarize(doc: dict) -> dict:
    target = doc.get("target_ratio", 0.15)
    queries = doc["queries"]
    both = [r for r in queries if _median(r, "native") is not None
            and _median(r, "spark") is not None]
    out: dict = {"queries": len(queries), "compared": len(both)}
    if both:
        nat = [_median(r, "native") for r in both]
        spk = [_median(r, "spark") for r in both]
        out["native_total_s"] = sum(nat)
        out["spark_total_s"] = sum(spk)
        out["total_ratio"] = sum(nat) / sum(spk)
        out["native_geomean_s"] = _geomean(nat)
        out["spark_geomean_s"] = _geomean(spk)
        out["geomean_ratio"] = out["native_geomean_s"] / out["spark_geomean_s"]
        out["slower_than_spark"] = [r["query"] for r, n, s in zip(both, nat, spk, strict=True)
                                    if n > s]
    natives = [r for r in queries if "native" in r["engines"]]
    out["fallbacks"] = {r["query"]: r["engines"]["native"].get("reason")
                        for r in natives if r["engines"]["native"].get("native") is False}
    out["native_errors"] = {r["query"]: r["engines"]["native"]["error"]
                            for r in natives if "error" in r["engines"]["native"]}
    out["mismatches"] = {r["query"]: r["engines"]["native"]["check"]["detail"]
                         for r in natives
                         if not r["engines"]["native"].get("check", {"ok": True})["ok"]}
    unchecked = [r["query"] for r in natives if "check" not in r["engines"]["native"]]
    out["unchecked"] = unchecked
    pol = [r for r in queries if "polars" in r["engines"]]
    if pol:
        ok = [r for r in pol if _median(r, "polars") is not None]
        out["polars_ok"] = len(ok)
        out["polars_failed"] = {r["query"]: r["engines"]["polars"].get("error", "")
                                for r in pol if _median(r, "polars") is None}
        out["polars_mismatch"] = [r["query"] for r in ok
                                  if not r["engines"]["polars"].get("check", {"ok": True})["ok"]]
        sub = [r for r in ok if _median(r, "spark") is not None]
        if sub:
            out["polars_subset"] = [r["query"] for r in sub]
            out["polars_subset_total_s"] = sum(_median(r, "polars") for r in sub)
            out["spark_on_polars_subset_total_s"] = sum(_median(r, "spark") for r in sub)
            if all(_median(r, "native") is not None for r in sub):
                out["native_on_polars_subset_total_s"] = sum(_median(r, "native") for r in sub)
    complete = (out["compared"] == 22 and not out["native_errors"] and not out["mismatches"]
                and not unchecked)
    met = (bool(both) and out["total_ratio"] <= target and out["geomean_ratio"] <= target
           and not out["slower_than_spark"])
    out["target"] = {
        "ratio": target,
        "total_met": bool(both) and out["total_ratio"] <= target,
        "geomean_met": bool(both) and out["geomean_ratio"] <= target,
        "none_slower_met": bool(both) and not out["slower_than_spark"],
        "met": met and complete,
        "complete_run": complete,
    }
    return out


def _fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def _native_cell(e: dict) -> str:
    if "error" in e:
        return "ERROR: " + e["error"].replace("|", "\\|")[:120]
    if e.get("native"):
        return "native"
    reason = (e.get("reason") or "").replace("|", "\\|").replace("\n", " ")
    return f"fallback: {reason[:120]}"


def _check_cell(e: dict) -> str:
    c = e.get("check")
    if c is None:
        return "-"
    return "ok" if c["ok"] else f"**{c['detail']}**"


def _split_cell(e: dict) -> str:
    b = e.get("breakdown")
    if not b or "error" in b:
        return "-"
    return f"{b['spark_plan_s']:.2f} / {b['walk_translate_s']:.2f} / {b['execute_s']:.2f}"


def markdown(doc: dict) -> str:
    s = doc.get("summary") or summarize(doc)
    env = doc["environment"]
    setup = doc["setup"]
    has_polars = "polars" in doc["engines"]
    lines = [
        f"## TPC-H SF {doc['scale']:g}: native executor vs Spark local[2]",
        "",
        f"Median of {doc['runs']} timed run(s) after {doc['warmup_runs']} warm-up, seconds from "
        f"SQL text to a materialized pyarrow Table. Native includes Spark's parse/analyze/"
        f"optimize; Spark is `spark.sql(q).toArrow()`. {env.get('cpus')} CPUs "
        f"({env.get('cpu', '?')}), Spark {env.get('spark')}, pyarrow {env.get('pyarrow')}, "
        f"polars {env.get('polars')}, {env.get('java')}; data "
        f"{(env.get('data') or {}).get('bytes', 0) / 1e6:.0f} MB Parquet. "
        "Split = one extra instrumented native run: Spark planning / plan walk + translation / "
        "execution.",
        "",
        "Setup (not in the per-query times): " + ", ".join(
            f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f}s" for k, v in setup.items()) + ".",
        "",
    ]
    head = "| query | native s | Spark s | native/Spark |"
    rule = "|---|---:|---:|---:|"
    if has_polars:
        head += " polars s |"
        rule += "---:|"
    head += " native? | split s (plan / walk / exec) | check |"
    rule += "---|---|---|"
    lines += [head, rule]
    for r in doc["queries"]:
        e = r["engines"].get("native", {})
        n, sp = _median(r, "native"), _median(r, "spark")
        ratio = f"{n / sp:.2f}" if n is not None and sp else "-"
        if n is not None and sp and n > sp:
            ratio = f"**{ratio}**"
        row = f"| {r['query']} | {_fmt(n)} | {_fmt(sp)} | {ratio} |"
        if has_polars:
            pe = r["engines"].get("polars", {})
            pm = _median(r, "polars")
            if pm is None:
                cell = "fail"
            else:
                cell = _fmt(pm) + ("" if pe.get("check", {"ok": True})["ok"] else " (≠)")
            row += f" {cell} |"
        row += f" {_native_cell(e) if e else '-'} | {_split_cell(e)} | {_check_cell(e)} |"
        lines.append(row)
    if s.get("compared"):
        row = (f"| **total** | {_fmt(s['native_total_s'], 2)} | {_fmt(s['spark_total_s'], 2)} | "
               f"{s['total_ratio']:.2f} |")
        if has_polars:
            row += " |"
        lines.append(row + " | | |")
        row = (f"| **geomean** | {_fmt(s['native_geomean_s'])} | {_fmt(s['spark_geomean_s'])} | "
               f"{s['geomean_ratio']:.2f} |")
        if has_polars:
            row += " |"
        lines.append(row + " | | |")
    lines.append("")
    t = s["target"]
    if s.get("compared"):
        lines.append(
            f"Target (native total and geomean <= {t['ratio']} x Spark, no query slower): "
            f"**{'MET' if t['met'] else 'NOT MET'}** -- total {s['total_ratio']:.2f} x "
            f"({'ok' if t['total_met'] else 'miss'}), geomean {s['geomean_ratio']:.2f} x "
            f"({'ok' if t['geomean_met'] else 'miss'}), slower than Spark: "
            f"{', '.join(s['slower_than_spark']) or 'none'}"
            + ("" if t["complete_run"] else " (incomplete run: not all 22 queries compared "
               "and checked)") + ".")
    lines.append(f"Fallbacks: {', '.join(s['fallbacks']) or 'none'}; native errors: "
                 f"{', '.join(s['native_errors']) or 'none'}; result mismatches: "
                 f"{', '.join(f'{q} ({d})' for q, d in s['mismatches'].items()) or 'none'}.")
    if has_polars and "polars_ok" in s:
        failed = ", ".join(s["polars_failed"]) or "none"
        txt = (f"polars SQL (reference): {s['polars_ok']}/{len(doc['queries'])} queries ran "
               f"(failed: {failed}; value mismatches vs Spark: "
               f"{', '.join(s['polars_mismatch']) or 'none'})")
        if "polars_subset_total_s" in s:
            txt += (f"; on those, total polars {s['polars_subset_total_s']:.2f}s vs Spark "
                    f"{s['spark_on_polars_subset_total_s']:.2f}s")
            if "native_on_polars_subset_total_s" in s:
                txt += f" vs native {s['native_on_polars_subset_total_s']:.2f}s"
        lines.append(txt + ".")
    lines.append("")
    return "\n".join(lines)


def chart(doc: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    queries = [r["query"] for r in doc["queries"]]
    engines = [e for e in ("native", "spark", "polars") if e in doc["engines"]]
    colors = {"native": "tab:blue", "spark": "tab:orange", "polars": "tab:green"}
    width = 0.8 / len(engines)
    fig, ax = plt.subplots(figsize=(max(8, len(queries) * 0.6), 4.5))
    for i, engine in enumerate(engines):
        xs, ys = [], []
        for j, r in enumerate(doc["queries"]):
            m = _median(r, engine)
            if m is not None:
                xs.append(j + (i - (len(engines) - 1) / 2) * width)
                ys.append(m)
        ax.bar(xs, ys, width, label=engine, color=colors[engine])
    for j, r in enumerate(doc["queries"]):
        e = r["engines"].get("native", {})
        if e and not e.get("native", True):
            ax.annotate("fb", (j, 0), ha="center", va="bottom", fontsize=7, color="red")
    ax.set_xticks(range(len(queries)))
    ax.set_xticklabels(queries, rotation=60, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("median seconds (log)")
    ax.set_title(f"TPC-H SF {doc['scale']:g}: SQL text -> Arrow table, median of {doc['runs']}")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(argv[0])
    doc = json.loads(src.read_text())
    doc["summary"] = summarize(doc)
    src.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    stem = src.with_suffix("")
    Path(f"{stem}.md").write_text(markdown(doc))
    chart(doc, f"{stem}.png")
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
