#!/usr/bin/env python3
"""Turns a bench/run.sh run directory (results.jsonl + meta.json) into the stdout table,
the Markdown report and the chart.

  report.py --run-dir bench/out/<stamp>-<mode> --md bench/RESULTS.md --png bench/results.png
  report.py --run-dir DIR1 --run-dir DIR2 --peers-md bench/RESULTS-peers.md   (bench/run.sh --peers)

--run-dir can be given more than once: the runs' samples are merged (their rounds numbered on),
e.g. a `--only load,idle` run and a `--only scaling` run of the same servers.

Exits 1 if a headline number is missing for either server (the run failed to produce it),
never because of what the numbers are.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict

SERVERS = ("pounce", "nginx")
# nginx under SCHED_BATCH (`chrt -b 0`), the policy pounce's workers use by default: a column
# of its own next to nginx, with the same-policy ratio.
REFERENCES = ("nginx-batch",)

# (scenario, metric, label, unit, better[, reference]) — scenarios named idle-N are expanded per
# N; a row with a reference compares pounce with that server instead of nginx.
ROWS = [
    ("plaintext-c64", "rps", "plaintext `wrk -c64`", "req/s", "higher"),
    ("plaintext-c64", "p50_ms", "plaintext `wrk -c64` p50", "ms", "lower"),
    ("plaintext-c64", "p99_ms", "plaintext `wrk -c64` p99", "ms", "lower"),
    ("plaintext-c256", "rps", "plaintext `wrk -c256`", "req/s", "higher"),
    ("plaintext-c256", "p50_ms", "plaintext `wrk -c256` p50", "ms", "lower"),
    ("plaintext-c256", "p99_ms", "plaintext `wrk -c256` p99", "ms", "lower"),
    ("pipelined-m16", "rps", "pipelined `h2load --h1 -c64 -m16`", "req/s", "higher"),
    ("pipelined-m16", "mean_ms", "pipelined mean time per request", "ms", "lower"),
    ("json-c64", "rps", "`/json` `wrk -c64`", "req/s", "higher"),
    ("json-c64", "p50_ms", "`/json` `wrk -c64` p50", "ms", "lower"),
    ("json-c64", "p99_ms", "`/json` `wrk -c64` p99", "ms", "lower"),
    ("plaintext-c64", "cpu_us_per_req", "server CPU per request, plaintext `wrk -c64`", "µs", "lower"),
    ("pipelined-m16", "cpu_us_per_req", "server CPU per request, pipelined", "µs", "lower"),
    ("idle-N", "rss_per_conn_kib", "RSS per idle keep-alive connection, N={n}", "KiB", "lower"),
    ("idle-N", "rss_base_kib", "server RSS before the N={n} connections", "KiB", "lower"),
    ("idle-N", "exit_ms", "signal → exit with N={n} idle connections", "ms", "lower"),
    ("startup", "first_200_ms", "exec → first 200", "ms", "lower"),
]
# Every nginx figure is shown under both policies: nginx as installed, and nginx under
# `chrt -b 0` (measured wherever nginx is in a full run; in --quick only on plaintext -c64).
# The same-policy ratio (pounce ÷ nginx under chrt -b) is the headline one, in bold.

# Missing any of these (for either server) means the run failed to produce numbers.
# Each belongs to a section of run.sh (--only): only the sections a run ran are required.
SECTION_OF = {"idle-N": "idle", "startup": "idle"}
REQUIRED = [
    ("plaintext-c64", "rps"), ("plaintext-c64", "p99_ms"), ("plaintext-c256", "rps"),
    ("plaintext-c256", "p99_ms"), ("pipelined-m16", "rps"), ("json-c64", "rps"),
    ("plaintext-c64", "cpu_us_per_req"), ("idle-N", "rss_per_conn_kib"), ("idle-N", "exit_ms"),
    ("startup", "first_200_ms"),
]

# The cost of --metrics-addr: pounce with metrics on vs off, measured back to back in each round
# (run.sh metrics_block, the order swapping every round), /metrics scraped every second while on.
METRICS_OFF, METRICS_ON = "pounce-metrics-off", "pounce-metrics-on"
METRICS_ROWS = [
    ("plaintext-c64", "rps", "plaintext `wrk -c64`", "req/s", "higher"),
    ("plaintext-c64", "p99_ms", "plaintext `wrk -c64` p99", "ms", "lower"),
    ("plaintext-c64", "cpu_us_per_req", "server CPU per request, plaintext `wrk -c64`", "µs", "lower"),
    ("pipelined-m16", "rps", "pipelined `h2load --h1 -c64 -m16`", "req/s", "higher"),
    ("pipelined-m16", "cpu_us_per_req", "server CPU per request, pipelined", "µs", "lower"),
]
# The budget for throughput and CPU per request (p99 is shown, not judged).
METRICS_BUDGET = 0.03
METRICS_JUDGED = ("rps", "cpu_us_per_req")

CHART_RPS = ["plaintext-c64", "plaintext-c256", "pipelined-m16", "json-c64"]
CHART_P99 = ["plaintext-c64", "plaintext-c256", "json-c64"]


def sh(*cmd: str) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return (p.stdout + p.stderr).strip()


def machine(repo: str) -> dict:
    info: dict = {}
    try:
        cpuinfo = open("/proc/cpuinfo").read()
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = m.group(1).strip() if m else platform.processor() or "unknown"
    except OSError:
        info["cpu"] = "unknown"
    info["cores"] = os.cpu_count()
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cores"] = info["cores"]
    info["kernel"] = platform.release()
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", open("/proc/meminfo").read())
        info["memory"] = f"{int(m.group(1)) / 1024 / 1024:.1f} GiB" if m else "unknown"
    except OSError:
        info["memory"] = "unknown"
    try:
        m = re.search(r'^PRETTY_NAME="?([^"\n]+)', open("/etc/os-release").read(), re.M)
        info["os"] = m.group(1) if m else "unknown"
    except OSError:
        info["os"] = "unknown"
    info["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
    v = {}
    v["nginx"] = sh("nginx", "-v").replace("nginx version: ", "")
    v["wrk"] = sh("wrk", "-v").splitlines()[0].split(" Copyright")[0] if sh("wrk", "-v") else "?"
    v["h2load"] = sh("h2load", "--version")
    hey = sh("dpkg-query", "-W", "-f", "${Version}", "hey")
    v["hey"] = f"hey {hey}" if hey and "no packages" not in hey else "hey (version unknown)"
    v["python"] = f"Python {platform.python_version()}"
    v["rustc"] = sh("rustc", "--version")
    commit = sh("git", "-C", repo, "rev-parse", "--short", "HEAD")
    dirty = sh("git", "-C", repo, "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock")
    v["pounce"] = f"commit {commit}" + (" + uncommitted changes" if dirty and dirty != "not found" else "")
    info["versions"] = v
    return info


def load(run_dirs: list[str]):
    """Samples of one or more runs; a later run's rounds are numbered on after the earlier's."""
    vals: dict = defaultdict(list)  # (scenario, metric, server) -> [values in round order]
    by_round: dict = defaultdict(dict)  # (scenario, metric, server) -> {round: [values]}
    offset = 0
    for run_dir in run_dirs:
        last = 0
        with open(os.path.join(run_dir, "results.jsonl")) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                last = max(last, int(r["round"]))
                if r["value"] is None:
                    continue
                key = (r["scenario"], r["metric"], r["server"])
                vals[key].append(float(r["value"]))
                by_round[key].setdefault(r["round"] + offset, []).append(float(r["value"]))
        offset += last
    return vals, by_round


def load_meta(run_dirs: list[str]) -> dict:
    """The first run's meta.json (+ end.json), with what differs across runs merged in."""
    metas = []
    for d in run_dirs:
        m = json.load(open(os.path.join(d, "meta.json")))
        end = os.path.join(d, "end.json")  # written by run.sh when the measurements end
        if os.path.exists(end):
            m.update(json.load(open(end)))
        metas.append(m)
    meta = dict(metas[0])
    meta.setdefault("sections", "load,metrics,idle")
    meta["sections"] = ",".join(sorted({s for m in metas for s in m.get("sections", "load,metrics,idle").split(",")}))
    meta["idle"] = sorted({n for m in metas for n in m.get("idle", [])}) if meta["sections"].find("idle") >= 0 else []
    meta["idle_skipped"] = sorted({n for m in metas for n in m.get("idle_skipped", [])})
    # Each run measured its own sections over its own rounds: the title gives the largest count.
    meta["rounds"] = max(m.get("rounds", 0) for m in metas)
    meta["runs"] = [os.path.basename(d.rstrip("/")) for d in run_dirs]
    meta["bench_seconds"] = sum(m.get("bench_seconds", 0) for m in metas) or None
    meta["loadavg_start"] = metas[0].get("loadavg_start", "?")
    meta["loadavg_end"] = metas[-1].get("loadavg_end", "?")
    servers = []
    for m in metas:
        for sv in m.get("servers", ["pounce", "nginx", "nginx-batch"]):
            if sv not in servers:
                servers.append(sv)
    meta["servers"] = servers
    meta["scaling_conns"] = sorted({n for m in metas for n in m.get("scaling_conns", [])})
    for m in metas:
        meta.setdefault("peer_versions", {}).update(m.get("peer_versions", {}))
    meta["per_run"] = metas
    return meta


def expand_rows(vals) -> list[tuple]:
    idle_ns = sorted({int(s[5:]) for (s, _, _) in vals if s.startswith("idle-")})
    rows = []
    for scen, metric, label, unit, better, *ref in ROWS:
        other = ref[0] if ref else "nginx"
        if scen == "idle-N":
            for n in idle_ns:
                lab = label.format(n=f"{n:,}".replace(",", " "))
                rows.append((f"idle-{n}", metric, lab, unit, better, other))
        elif other == "nginx" or vals.get((scen, metric, other)):
            rows.append((scen, metric, label, unit, better, other))
    return rows


def med(vals, scen, metric, server):
    v = vals.get((scen, metric, server))
    return statistics.median(v) if v else None


def fmt(x: float | None, unit: str) -> str:
    if x is None:
        return "—"
    if unit == "req/s":
        return f"{x:,.0f}".replace(",", " ")
    if abs(x) >= 100:
        return f"{x:,.0f}".replace(",", " ")
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3f}"


def ratio_of(p, n) -> str:
    return f"{p / n:.2f}×" if p is not None and n not in (None, 0) else "—"


def table(vals, rows) -> list[tuple[str, ...]]:
    """metric, unit, pounce, nginx, nginx under chrt -b, pounce/nginx, pounce/nginx-batch, better."""
    out = []
    for scen, metric, label, unit, better, other in rows:
        p, n, b = (med(vals, scen, metric, s) for s in ("pounce", "nginx", "nginx-batch"))
        out.append((label, unit, fmt(p, unit), fmt(n, unit), fmt(b, unit), ratio_of(p, n), ratio_of(p, b),
                    f"{better} is better"))
    return out


def text_table(rows) -> str:
    head = ("metric", "unit", "pounce", "nginx", "nginx chrt-b", "p/nginx", "p/nginx chrt-b", "")
    all_rows = [head] + [tuple(c.replace("`", "") for c in r) for r in rows]
    w = [max(len(r[i]) for r in all_rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(all_rows):
        lines.append("  ".join(c.ljust(w[j]) if j in (0, 1, 7) else c.rjust(w[j]) for j, c in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * x for x in w))
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot (headless) and None, or None and why it is unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        return None, f"matplotlib unavailable ({e.__class__.__name__})"
    return plt, None


def save_chart(plt, fig, png: str) -> str | None:
    """Writes and closes `fig`; None on success, else why it was not written."""
    try:
        fig.savefig(png, dpi=110)
    except OSError as e:
        return f"could not write {png}: {e}"
    finally:
        plt.close(fig)
    return None


def chart(vals, png: str, title: str) -> str | None:
    """Draws the chart; returns None on success or the reason it was skipped."""
    plt, why = pyplot()
    if plt is None:
        return why
    colors = {"pounce": "#d9822b", "nginx": "#2b8a3e", "nginx-batch": "#8fcf9a"}
    labels = {"nginx-batch": "nginx under chrt -b"}
    # A reference series is drawn where it was measured (plaintext -c64).
    servers = ("pounce", "nginx-batch", "nginx") if any(k[2] == "nginx-batch" for k in vals) else SERVERS
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [4, 3]})
    for ax, scens, metric, ylabel in (
        (axes[0], CHART_RPS, "rps", "requests/s (median, log scale)"),
        (axes[1], CHART_P99, "p99_ms", "p99 latency, ms (median; lower is better)"),
    ):
        width = 0.8 / len(servers)
        for i, server in enumerate(servers):
            ys = [med(vals, s, metric, server) or 0 for s in scens]
            xs = [k + (i - (len(servers) - 1) / 2) * width for k in range(len(scens))]
            bars = ax.bar(xs, ys, width, label=labels.get(server, server), color=colors[server])
            for b, y in zip(bars, ys):
                if y:
                    lab = f"{y / 1000:.0f}k" if metric == "rps" else f"{y:.2f}"
                    ax.annotate(lab, (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom",
                                fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(scens)))
        ax.set_xticklabels([s.replace("plaintext-", "plaintext\n").replace("pipelined-", "pipelined\n")
                            .replace("json-", "/json\n") for s in scens])
        ax.set_ylabel(ylabel)
        if metric == "rps":
            ax.set_yscale("log")
        ax.margins(y=0.15)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save_chart(plt, fig, png)


def metrics_cost(vals, by_round) -> tuple[list[tuple], list[str], str]:
    """The metrics-on vs metrics-off table rows, the per-round lines, and the verdict."""
    rows, per_round, over, judged = [], [], [], 0
    for scen, metric, label, unit, better in METRICS_ROWS:
        off, on = med(vals, scen, metric, METRICS_OFF), med(vals, scen, metric, METRICS_ON)
        if off in (None, 0) or on is None:
            rows.append((label, unit, fmt(off, unit), fmt(on, unit), "—", "—"))
            continue
        # A paired comparison: each round ran off and on back to back, so the
        # estimate is the median of the per-round on/off ratios, not the ratio
        # of medians taken across rounds (which carries the drift between rounds).
        r_off, r_on = by_round.get((scen, metric, METRICS_OFF), {}), by_round.get((scen, metric, METRICS_ON), {})
        paired = {r: statistics.median(r_on[r]) / statistics.median(r_off[r])
                  for r in sorted(r_off) if r in r_on and statistics.median(r_off[r])}
        ratio = statistics.median(paired.values()) if paired else on / off
        cost = (1 - ratio) if better == "higher" else (ratio - 1)
        rows.append((label, unit, fmt(off, unit), fmt(on, unit), f"{ratio:.3f}×", f"{cost * 100:+.1f} %"))
        if metric in METRICS_JUDGED:
            judged += 1
            if cost > METRICS_BUDGET:
                over.append(f"{label} ({cost * 100:+.1f} %)")
        per_round.append(f"| {label} ({unit}) | {'; '.join(f'r{r}: {x:.3f}' for r, x in paired.items())} |")
    if judged == 0:
        verdict = "not measured (the metrics-cost runs produced no numbers)"
    elif over:
        verdict = f"**over the {METRICS_BUDGET:.0%} budget** in: " + "; ".join(over)
    else:
        verdict = f"within the {METRICS_BUDGET:.0%} budget on throughput and CPU per request"
    return rows, per_round, verdict


def per_round_table(by_round, rows) -> list[str]:
    lines = ["| metric | server | per-round values |", "|---|---|---|"]
    for scen, metric, label, unit, _, other in rows:
        for server in SERVERS + REFERENCES:
            rs = by_round.get((scen, metric, server))
            if not rs:
                continue
            cells = "; ".join(
                f"r{r}: " + ", ".join(fmt(v, unit) for v in vs) for r, vs in sorted(rs.items()))
            lines.append(f"| {label} ({unit}) | {server} | {cells} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, action="append",
                    help="a bench/run.sh run directory; repeat to merge several runs")
    ap.add_argument("--md", help="the pounce vs nginx report (RESULTS.md)")
    ap.add_argument("--png")
    ap.add_argument("--peers-md", help="the peers report (RESULTS-peers.md); its charts go beside it")
    ap.add_argument("--repo", default=".")
    ap.add_argument("--bench-seconds", type=int)
    a = ap.parse_args()
    if not a.md and not a.peers_md:
        ap.error("give --md and/or --peers-md")

    meta = load_meta(a.run_dir)
    if a.bench_seconds is None:
        a.bench_seconds = meta.get("bench_seconds")
    vals, by_round = load(a.run_dir)
    info = machine(a.repo)
    rc = 0
    if a.peers_md:
        import peers_report  # noqa: PLC0415 — beside this file

        rc |= peers_report.write(a.peers_md, vals, by_round, meta, info)
    if a.md:
        rc |= main_report(a, vals, by_round, meta, info)
    return rc


def main_report(a, vals, by_round, meta, info) -> int:
    rows = expand_rows(vals)
    tab = table(vals, rows)
    sections = meta["sections"].split(",")

    missing = []
    idle_ns = sorted({s for (s, _, _) in vals if s.startswith("idle-")}) or ["idle-N"]
    for scen, metric in REQUIRED:
        if SECTION_OF.get(scen, "load") not in sections:
            continue
        for s in (idle_ns if scen == "idle-N" else [scen]):
            for server in SERVERS:
                if not vals.get((s, metric, server)):
                    missing.append(f"{server} {s} {metric}")
    for scen, metric, *_ in METRICS_ROWS:
        if "metrics" not in sections:
            break
        for server in (METRICS_OFF, METRICS_ON):
            if not vals.get((scen, metric, server)):
                missing.append(f"{server} {scen} {metric}")
    m_rows, m_per_round, m_verdict = metrics_cost(vals, by_round)

    errors = []
    for (scen, metric, server), v in sorted(vals.items()):
        if server not in SERVERS + REFERENCES + (METRICS_OFF, METRICS_ON):
            continue  # the peers: in the peers report
        if metric in ("errors", "non200", "conns_failed", "closed_before_signal") and sum(v):
            errors.append(f"{server} {scen}: {metric} = {', '.join(str(int(x)) for x in v)} (per round)")
        if metric == "exit_code" and any(v):
            errors.append(f"{server} {scen}: exit code {', '.join(str(int(x)) for x in v)} (per round)")

    quick = meta["mode"] == "quick"
    try:
        started = dt.datetime.strptime(meta["started"], "%Y-%m-%dT%H:%M:%SZ")
    except (KeyError, ValueError):
        started = dt.datetime.now(dt.timezone.utc)
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    title = (f"pounce vs nginx — {meta['workers']} workers, {info['cores']} vCPU, "
             f"{meta['rounds']} round(s) × {meta['duration_s']} s ({meta['mode']}), {date}")

    chart_note = None
    if a.png:
        chart_note = chart(vals, a.png, title)

    # ---- stdout
    print()
    print(title)
    print(text_table(tab))
    print(f"\nmetrics cost (--metrics-addr on vs off): {m_verdict.replace('**', '')}")
    m_text = [("metric", "unit", "off", "on", "on/off", "cost")] + [tuple(c.replace("`", "") for c in r) for r in m_rows]
    w = [max(len(r[i]) for r in m_text) for i in range(6)]
    for r in m_text:
        print("  ".join(c.ljust(w[j]) if j < 2 else c.rjust(w[j]) for j, c in enumerate(r)).rstrip())
    if errors:
        print("\nerrors / anomalies:\n  " + "\n  ".join(errors))
    if missing:
        print("\nMISSING numbers:\n  " + "\n  ".join(missing))
    print(f"\nreport: {a.md}" + (f"\nchart:  {a.png}" if a.png and not chart_note else
                                 f"\nchart:  skipped — {chart_note}" if a.png else ""))

    # ---- markdown
    v = info["versions"]
    idle_list = ", ".join(str(n) for n in meta["idle"])
    md = []
    md.append("# pounce vs nginx — benchmark results")
    md.append("")
    if quick:
        md.append("> **Quick smoke run** (`bench/run.sh --quick`): 1 round, short measurements, few idle "
                  "connections. It checks that the harness works; don't quote these numbers.")
        md.append("")
    runs = meta.get("per_run", [meta])
    cmds = "; ".join(f"`bench/run.sh{(' ' + m['args']) if m.get('args') else (' --quick' if quick else '')}`"
                     for m in runs)
    md.append(f"Produced by {cmds} on {date}"
              + (f" in {a.bench_seconds} s of measurement" if a.bench_seconds else "")
              + (f" (runs {', '.join('`' + r + '`' for r in meta['runs'])}, merged)." if len(runs) > 1 else "."))
    md.append("**Ratios are the numbers to read** (pounce ÷ nginx, each the median over rounds in which "
              "the servers alternated on the same machine); absolute numbers drift from one run and "
              "one shared machine to the next. pounce's workers run under `SCHED_BATCH` by default, so "
              "nginx is shown under both its default policy and `chrt -b 0`: **the same-policy ratio "
              "(pounce ÷ nginx under `chrt -b`) is the headline one**, in bold.")
    md.append("")
    md.append("## Machine")
    md.append("")
    md.append(f"- CPU: {info['cpu']}, {info['cores']} logical CPUs ({info['usable_cores']} usable by this process)")
    md.append(f"- Memory: {info['memory']}; kernel {info['kernel']}; {info['os']}")
    md.append(f"- Load average at start / end: {meta.get('loadavg_start', '?')} / "
              f"{meta.get('loadavg_end', info['loadavg_end'])}")
    try:
        busy = float(meta.get("loadavg_start", "0").split()[0])
    except (ValueError, IndexError):
        busy = 0.0
    if busy > 0.5 * (info["cores"] or 1):
        md.append(f"- **The machine was busy with other work when this run started** (1-min load average "
                  f"{busy:.1f} on {info['cores']} CPUs before the benchmark began): expect noisy absolute "
                  "numbers and latency tails; alternation keeps the ratios usable, and the per-round "
                  "values below show the spread.")
    md.append(f"- Tools: {v['nginx']}; {v['wrk']}; {v['h2load']}; {v['hey']}; {v['python']}; {v['rustc']}")
    md.append(f"- pounce: {v['pounce']} (release build)")
    md.append("")
    md.append("## Results")
    md.append("")
    md.append(f"{meta['workers']} workers each; {meta['rounds']} round(s); {meta['duration_s']} s per "
              f"wrk/h2load measurement after a {meta['warmup_s']} s warm-up; idle connections: {idle_list}.")
    md.append("")
    md.append("| metric | unit | pounce | nginx | nginx under `chrt -b` | pounce/nginx | "
              "**pounce/nginx under `chrt -b`** | |")
    md.append("|---|---|--:|--:|--:|--:|--:|---|")
    for r in tab:
        cells = list(r)
        if cells[6] != "—":
            cells[6] = f"**{cells[6]}**"
        md.append("| " + " | ".join(cells) + " |")
    if meta.get("idle_skipped"):
        md.append("")
        md.append(f"Not measured: {', '.join(str(n) for n in meta['idle_skipped'])} idle connections — the "
                  f"open-files limit here is {meta.get('nofile')} (hard limit {meta.get('nofile_hard', '?')}, "
                  "which this run could not raise), and each connection needs a descriptor in the server and "
                  "one in the client.")
    md.append("")
    if a.png:
        md.append(f"![req/s and p99 per scenario]({os.path.basename(a.png)})" if not chart_note
                  else f"_No chart: {chart_note}._")
        md.append("")
    md.append("## Metrics cost (`--metrics-addr`)")
    md.append("")
    md.append("pounce with Prometheus metrics off and on (`--metrics-addr`, `/metrics` scraped every second "
              "while on: 15 times Prometheus' default rate), measured back to back in every round, the order "
              "swapping from one round to the next. Cost: the share of throughput lost, or of CPU per "
              f"request added. Verdict: {m_verdict}. A few rounds' pairs spread by more than the budget "
              "on this shared machine: `bench/metrics_cost.py` runs many more (\"Metrics cost, paired rounds\" "
              "below, when present).")
    md.append("")
    md.append("| metric | unit | metrics off | metrics on | on/off | cost |")
    md.append("|---|---|--:|--:|--:|--:|")
    for r in m_rows:
        md.append("| " + " | ".join(r) + " |")
    md.append("")
    md.append("Errors and anomalies: " + ("none (every wrk/h2load/hey answer was a 2xx, no socket "
              "errors, every idle connection opened, every server exited 0)." if not errors else ""))
    for e in errors:
        md.append(f"- {e}")
    if errors:
        md.append("")
        md.append("(`errors` = wrk's socket errors — connect/read/write/timeout, where a timeout is a "
                  "request not answered within wrk's 2 s — plus non-2xx answers; h2load's failed/errored/"
                  "timed-out requests; `non200` = hey answers that were not 200.)")
    if missing:
        md.append("")
        md.append("**Missing numbers** (a measurement failed): " + "; ".join(missing))
    md.append("")
    md.append("## Methodology")
    md.append("")
    md.append(f"""- **Same box, same shape.** Load generator and servers share this {info['cores']}-vCPU machine (there is no
  other). Both servers run {meta['workers']} workers (pounce: `--workers {meta['workers']}`, one glommio executor per
  core with its own `SO_REUSEPORT` listener; nginx: `worker_processes {meta['workers']}`, `worker_cpu_affinity auto`,
  `listen … reuseport`, so each worker has its own listening socket too). wrk and h2load run with one
  thread (`-t1`) so the client takes about one core's worth of time and leaves the rest to the
  server; both servers face the same client handicap, which is why ratios, not absolute req/s, are
  reported.
- **Scheduling policy.** pounce's workers run under `SCHED_BATCH` by default (`--sched-policy`): a
  worker's wake-up does not preempt the task on its core, which on this box is often wrk. nginx has
  no such setting, so every measurement of nginx is also made with nginx started under `chrt -b 0`
  (its workers inherit the policy; in `--quick` only plaintext `-c64`): the column "nginx under
  `chrt -b`" and the same-policy ratio next to it.
- **Alternation.** Each round runs pounce's load block, then nginx's, then nginx's under `chrt -b`
  (A B C), then the idle-connection lifecycles for each N in the same order; rounds repeat. Each row is the median over
  rounds (over every lifecycle for the start-up row).
- **Identical configuration where it matters:** listen on 127.0.0.1 only, port picked free (pounce
  `--port 0`; nginx a port bound-and-released by Python), listen backlog {meta['backlog']}, keep-alive timeout
  {meta['keepalive_s']} s (so idle benchmark connections are not reaped), connection limit {meta['max_connections']} (pounce
  `--max-connections`, per process; nginx `worker_connections`, per worker), no access log,
  `keepalive_requests` effectively unlimited for nginx (pounce has no such limit). nginx runs in the
  foreground (`daemon off`) with its pid file, error log and temp paths in a temp dir, as the current
  user (`user root;` only when run as root). `/` answers `200 Hello, World!` (`text/plain`),
  `/json` answers `{{"message":"Hello, World!"}}`; nginx uses `return 200`. The exact nginx.conf is
  saved next to the raw results as `nginx.conf.sample`.
- **Throughput/latency:** `wrk -t1 -c64 -d{meta['duration_s']}s --latency` and `-c256` on `/` (p50/p99 from wrk's
  latency distribution), `h2load --h1 -t1 -c64 -m16 -D {meta['duration_s']}` (16 pipelined requests in flight per
  connection; h2load reports no percentiles, so the mean time per request is shown), and wrk `-c64`
  on `/json`. Before them, `hey` sends 1 600 requests each to `/` and `/json` as a warm-up and a
  check that every answer is a 200, then a {meta['warmup_s']} s wrk warm-up.
- **CPU per request:** utime+stime from `/proc/PID/stat` of the server process and all its
  descendants (nginx master + workers; pounce is one process whose counters cover all its
  threads), read right before and after the measurement, divided by the requests the client
  completed. Clock-tick resolution is 10 ms, well under 1 % of a run's CPU time.
- **RSS per idle connection:** a fresh server is started; after start-up its RSS (VmRSS summed over
  the process tree) is the baseline; `bench/idle.py` (Python asyncio) opens N connections (256
  connects in flight at a time), each sends one `GET /` keep-alive request and reads the whole
  response, then stays idle; after {meta['settle_s']} s the RSS is read again and (RSS − baseline) / N is
  reported. Caveats: RSS excludes kernel socket memory (the same for both servers), and nginx
  preallocates its connection and event arrays for `worker_connections` at start-up, so that part
  of nginx's per-connection cost shows up in its baseline RSS, not in the per-connection figure.
- **Signal → exit:** with those N idle connections still open, pounce gets SIGTERM and nginx SIGQUIT
  (its graceful shutdown, for reference); the time from `kill` to the process's exit is measured by
  a thread blocked in `waitpid`. pounce by design gives idle keep-alive connections a 1 s grace (so
  a request already on the wire is still answered) before closing them; nginx closes idle
  keep-alive connections at once on SIGQUIT.
- **Metrics cost:** every round also runs pounce twice more, with `--metrics-addr` off and on
  (order swapped every round), each for plaintext `wrk -c64` and pipelined `h2load` as above,
  CPU per request included (the scrapes' CPU is the server's too). While metrics are on, a
  client scrapes `/metrics` every second.
- **exec → first 200:** from just before fork/exec of the server to the first `200` answer on a
  client that retries a refused connect every ~0.1 ms (one sample per lifecycle above).
- Raw tool output and `results.jsonl` (every sample) are kept under `bench/out/` (git-ignored).
""")
    md.append("## Per-round values")
    md.append("")
    md.extend(per_round_table(by_round, rows))
    md.append("")
    md.append("Metrics on ÷ off, per round:")
    md.append("")
    md.append("| metric | on/off per round |")
    md.append("|---|---|")
    md.extend(m_per_round)
    md.append("")
    # Sections other harnesses keep in the same file (bench/upgrade.py's,
    # between `<!-- kept: NAME -->` markers) survive a regeneration.
    kept = []
    if os.path.exists(a.md):
        old = open(a.md).read()
        kept = [m.group(0) for m in re.finditer(r"<!-- kept: ([\w-]+) -->.*?<!-- /kept: \1 -->", old, re.S)]
    with open(a.md, "w") as f:
        f.write("\n".join(md + [k + "\n" for k in kept]))

    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
