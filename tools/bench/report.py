"""Markdown table and PNG chart for read_bench results."""

from __future__ import annotations

MB = 1e6


def environment_lines(env: dict) -> list[str]:
    ep, px = env.get("endpoint_raw"), env.get("proxy_shaped")
    lines = [f"- CPUs: {env['cpu_count']}; Python {env['python']}; "
             + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)]
    if ep:
        levels = ", ".join(str(r["concurrency"]) for r in ep["levels"])
        lines.append(f"- Endpoint raw throughput ({env['endpoint_kind']}, parallel 8 MiB range "
                     f"GETs, no proxy): **{ep['best_MBps']:.0f} MB/s** "
                     f"(best of concurrency {levels})")
    if px:
        one = px["levels"][0]
        lines.append(f"- Through the shaping proxy ({env['latency_ms']:g} ms, "
                     f"{env['bandwidth_MBps']:g} MB/s per connection): aggregate "
                     f"**{px['best_MBps']:.0f} MB/s** at {px['best_concurrency']} connections; "
                     f"1 connection {one['MBps']:.0f} MB/s per 8 MiB request, first byte "
                     f"{one['first_byte_ms_median']:.1f} ms")
    un = env.get("proxy_unshaped")
    if un:
        lines.append(f"- Proxy with shaping off: {un['best_MBps']:.0f} MB/s (its CPU ceiling)")
    if ep and px:
        lines.append(f"- Endpoint headroom: {ep['best_MBps'] / px['best_MBps']:.1f}x the shaped "
                     "aggregate, so the endpoint is not the bottleneck")
    lines.append("- Each run: fresh filesystem object / scan; median of the timed runs after one "
                 "warm-up; every result checked against pyarrow's local read of the same files")
    lines.append(f"- Physical bound = bytes needed / {env['aggregate_MBps']:.0f} MB/s (measured "
                 f"shaped aggregate) + {env['latency_ms']:g} ms x dependent rounds "
                 "(footer + data = 2; list + footer + data = 3 for a prefix)")
    return lines


def markdown(results: dict) -> str:
    out = ["# wjio read benchmark", ""]
    out += [*environment_lines(results["environment"]), ""]
    out.append("| case | reader | median wall s | min-max s | requests | max in flight "
               "| fetched MB | needed MB | fetched/needed | bound s | wall/bound | check |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in results["cases"]:
        need = case["needed"]["bytes_needed"]
        for r in case["readers"]:
            s = r.get("summary")
            if not s:
                out.append(f"| {case['name']} | {r['name']} | {r['status']}: "
                           f"{r.get('message', '')[:80]} |||||||||| ")
                continue
            out.append(
                f"| {case['name']} | {r['name']} | {s['median_wall_s']:.3f} | "
                f"{s['min_wall_s']:.3f}-{s['max_wall_s']:.3f} | {s['requests']:g} | "
                f"{s['max_in_flight']:g} | {s['bytes_fetched'] / MB:.1f} | {need / MB:.1f} | "
                f"{s['fetched_over_needed']:.3f} | {case['bound_s']:.3f} | "
                f"{s['median_wall_s'] / case['bound_s']:.1f}x | {s['check']} |")
    out.append("")
    for case in results["cases"]:
        n = case["needed"]
        out.append(f"- **({case['name']})** {case['description']}: `{case['uri']}`; "
                   f"{n['row_groups_kept']}/{n['row_groups_total']} row groups needed, "
                   f"{n['bytes_needed'] / MB:.1f} MB of {n['bytes_all_chunks'] / MB:.1f} MB of "
                   f"column chunks (+{n['footer_bytes'] / 1e3:.0f} kB footers in "
                   f"{n['files']} file(s)); bound {case['bound_s']:.3f} s; local pyarrow read "
                   f"of the same data (page cache, no network) {case['local_read_s']:.3f} s")
    tg = results.get("targets")
    if tg:
        out += ["", "Targets (wjio):"]
        for t in tg:
            out.append(f"- [{'x' if t['met'] else ' '}] {t['what']}: {t['detail']}")
    return "\n".join(out) + "\n"


def chart(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = results["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 4.2), squeeze=False)
    colors = {"wjio": "#d62728", "pyarrow": "#1f77b4", "s3fs": "#9467bd", "polars": "#2ca02c"}
    for ax, case in zip(axes[0], cases, strict=True):
        names, med, lo, hi, cols = [], [], [], [], []
        for r in case["readers"]:
            s = r.get("summary")
            if not s:
                continue
            names.append(r["name"])
            med.append(s["median_wall_s"])
            lo.append(s["median_wall_s"] - s["min_wall_s"])
            hi.append(s["max_wall_s"] - s["median_wall_s"])
            cols.append(colors.get(r["name"], "grey"))
        x = range(len(names))
        ax.bar(x, med, yerr=[lo, hi], color=cols, capsize=3)
        ranked = sorted(med)
        top = None
        if len(ranked) >= 2 and ranked[-1] > 4 * max(ranked[-2], case["bound_s"]):
            top = 2.0 * max(ranked[-2], case["bound_s"], case["local_read_s"])
            ax.set_ylim(0, top)  # an outlier would flatten the other bars: clip and label it
        for i, v in enumerate(med):
            if top is not None and v > top:
                ax.text(i, 0.5 * top, f"{v:.2f} s (clipped)", ha="center", va="center",
                        rotation=90, color="white", fontsize=9, fontweight="bold")
            else:
                ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.axhline(case["bound_s"], ls="--", color="black", lw=1,
                   label=f"physical bound {case['bound_s']:.2f} s")
        ax.axhline(case["local_read_s"], ls=":", color="grey", lw=1,
                   label=f"local read, no network {case['local_read_s']:.2f} s")
        ax.set_xticks(list(x), names)
        ax.set_title(f"({case['name']}) {case['description']}", fontsize=8, wrap=True)
        ax.set_ylabel("median wall time (s)")
        ax.legend(fontsize=7, loc="upper left")
    env = results["environment"]
    fig.suptitle(f"Parquet reads via shaping proxy: {env['latency_ms']:g} ms first byte, "
                 f"{env['bandwidth_MBps']:g} MB/s per connection", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
