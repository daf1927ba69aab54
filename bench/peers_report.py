"""The peers report (bench/RESULTS-peers.md and bench/peers-*.png), from one or more
`bench/run.sh --peers [--scaling]` runs. Called by report.py (--peers-md); see bench/README.md.

Every figure is the median over the rounds in which all servers alternated (A B C … per round).
Returns 1 if a headline number is missing for a server the runs measured, never because of
what the numbers are.
"""
from __future__ import annotations

import os

import report as R

NAMES = {
    "pounce": "pounce",
    "nginx": "nginx",
    "nginx-batch": "nginx (chrt -b)",
    "actix": "actix-web",
    "hyper": "hyper (tokio)",
    "may": "may-minihttp",
    "monoio": "monoio (hyper)",
}
COLORS = {
    "pounce": "#d9822b", "nginx": "#2b8a3e", "nginx-batch": "#8fcf9a", "actix": "#1f77b4",
    "hyper": "#9467bd", "may": "#8c564b", "monoio": "#e377c2",
}
PEERS = ("actix", "hyper", "may", "monoio")
TIE = 0.02

# (scenario, metric, label, unit, better)
HEADLINE = [
    ("plaintext-c64", "rps", "plaintext `wrk -c64`", "req/s", "higher"),
    ("plaintext-c256", "rps", "plaintext `wrk -c256`", "req/s", "higher"),
    ("pipelined-m16", "rps", "pipelined `h2load --h1 -c64 -m16`", "req/s", "higher"),
    ("json-c64", "rps", "`/json` `wrk -c64`", "req/s", "higher"),
    ("plaintext-c64", "p50_ms", "plaintext `wrk -c64` p50", "ms", "lower"),
    ("plaintext-c64", "p99_ms", "plaintext `wrk -c64` p99", "ms", "lower"),
    ("plaintext-c256", "p99_ms", "plaintext `wrk -c256` p99", "ms", "lower"),
    ("plaintext-c64", "cpu_us_per_req", "server CPU per request, plaintext `wrk -c64`", "µs", "lower"),
    ("pipelined-m16", "cpu_us_per_req", "server CPU per request, pipelined", "µs", "lower"),
    ("idle-N", "rss_per_conn_kib", "RSS per idle keep-alive connection, N={n}", "KiB", "lower"),
    ("idle-N", "rss_base_kib", "server RSS before the N={n} connections", "KiB", "lower"),
    ("startup", "first_200_ms", "exec → first 200", "ms", "lower"),
]
SCALING = [
    ("rps", "req/s", "higher", "requests/s"),
    ("p50_ms", "ms", "lower", "p50 latency, ms"),
    ("p99_ms", "ms", "lower", "p99 latency, ms"),
    ("cpu_us_per_req", "µs", "lower", "server CPU per request, µs"),
]


def n_fmt(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def rows_for(vals, meta) -> list[tuple]:
    idle_ns = sorted({int(s[5:]) for (s, _, _) in vals if s.startswith("idle-")})
    out = []
    for scen, metric, label, unit, better in HEADLINE:
        if scen == "idle-N":
            out += [(f"idle-{n}", metric, label.format(n=n_fmt(n)), unit, better) for n in idle_ns]
        else:
            out.append((scen, metric, label, unit, better))
    return out


def best_other(vals, scen, metric, servers, better):
    """The best server other than pounce on this metric: (name, value) or (None, None)."""
    cands = [(s, R.med(vals, scen, metric, s)) for s in servers if s != "pounce"]
    cands = [(s, v) for s, v in cands if v is not None]
    if not cands:
        return None, None
    return (max if better == "higher" else min)(cands, key=lambda c: c[1])


def targets(vals, servers, idle_ns) -> list[tuple[str, str, str]]:
    """(target, verdict, evidence) for the issue's targets."""
    out = []

    def ahead(scen, metric, label, better):
        p = R.med(vals, scen, metric, "pounce")
        who, v = best_other(vals, scen, metric, servers, better)
        if p is None or v is None:
            out.append((label, "not measured", "—"))
            return
        ok = p > v if better == "higher" else p < v
        unit = "req/s" if metric == "rps" else "µs" if metric.startswith("cpu") else "KiB"
        # Medians of a few rounds on a shared VM: a lead of under 2 % either way is no verdict.
        verdict = ("**met**" if ok else "**not met**") + (" (level: within 2 %)" if abs(p / v - 1) < TIE else "")
        out.append((label, verdict,
                    f"pounce {R.fmt(p, unit)} vs best other {NAMES.get(who, who)} {R.fmt(v, unit)} "
                    f"({p / v:.2f}×)"))

    ahead("plaintext-c64", "rps", "plaintext req/s at 64 connections: ahead of every peer", "higher")
    ahead("plaintext-c256", "rps", "plaintext req/s at 256 connections: ahead of every peer", "higher")
    ahead("plaintext-c64", "cpu_us_per_req", "CPU per request, plaintext: lowest", "lower")
    ahead("pipelined-m16", "cpu_us_per_req", "CPU per request, pipelined: lowest", "lower")
    for n in idle_ns:
        ahead(f"idle-{n}", "rss_per_conn_kib", f"RSS per idle connection (N={n_fmt(n)}): lowest", "lower")
    p = R.med(vals, "plaintext-c64", "cpu_us_per_req", "pounce")
    b = R.med(vals, "plaintext-c64", "cpu_us_per_req", "nginx-batch")
    if p is None or b is None:
        out.append(("plaintext CPU per request ≤ 0.9× nginx under `chrt -b`", "not measured", "—"))
    else:
        out.append(("plaintext CPU per request ≤ 0.9× nginx under `chrt -b`",
                    "**met**" if p <= 0.9 * b else "**not met**",
                    f"pounce {R.fmt(p, 'µs')} µs vs {R.fmt(b, 'µs')} µs ({p / b:.2f}×)"))
    return out


def bars(vals, servers, png, title, groups, ylabel, log=False, fmt_lab=None) -> str | None:
    """One grouped bar chart: a group per (scenario, metric, label), servers side by side."""
    plt, why = R.pyplot()
    if plt is None:
        return why
    fig, ax = plt.subplots(figsize=(max(7, 1.9 * len(groups) + 3), 4.8))
    width = 0.84 / len(servers)
    for i, server in enumerate(servers):
        ys = [R.med(vals, s, m, server) or 0 for s, m, _ in groups]
        xs = [k + (i - (len(servers) - 1) / 2) * width for k in range(len(groups))]
        bs = ax.bar(xs, ys, width, label=NAMES.get(server, server), color=COLORS.get(server))
        for b, y in zip(bs, ys):
            if y:
                ax.annotate(fmt_lab(y) if fmt_lab else f"{y:.3g}", (b.get_x() + b.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=6.5, rotation=90, xytext=(0, 2),
                            textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[2] for g in groups])
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.25)
    ax.legend(fontsize=8, ncol=4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return R.save_chart(plt, fig, png)


def scaling_chart(vals, servers, conns, png, title) -> str | None:
    plt, why = R.pyplot()
    if plt is None:
        return why
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (metric, _unit, better, ylabel) in zip(axes.flat, SCALING):
        for server in servers:
            pts = [(c, R.med(vals, f"scale-c{c}", metric, server)) for c in conns]
            pts = [(c, v) for c, v in pts if v is not None]
            if not pts:
                continue
            ax.plot([c for c, _ in pts], [v for _, v in pts], marker="o",
                    label=NAMES.get(server, server), color=COLORS.get(server),
                    linewidth=2.5 if server == "pounce" else 1.4)
        ax.set_xscale("log", base=2)
        ax.set_xticks(conns)
        ax.set_xticklabels([str(c) for c in conns])
        ax.set_xlabel("connections (wrk -t1)")
        ax.set_ylabel(f"{ylabel} ({better} is better)")
        if metric in ("p50_ms", "p99_ms"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return R.save_chart(plt, fig, png)


def write(md_path: str, vals, by_round, meta, info) -> int:
    servers = [s for s in meta["servers"] if any(k[2] == s for k in vals)]
    sections = meta["sections"].split(",")
    rows = rows_for(vals, meta)
    idle_ns = sorted({int(s[5:]) for (s, _, _) in vals if s.startswith("idle-")})
    conns = sorted({int(s[7:]) for (s, _, _) in vals if s.startswith("scale-c")})
    out_dir = os.path.dirname(os.path.abspath(md_path))
    started = meta.get("started", "?").replace("T", " ").replace("Z", " UTC")
    durs = sorted({m.get("duration_s") for m in meta["per_run"]})
    title_tail = (f"{meta['workers']} workers, {info['cores']} vCPU, {meta['rounds']} rounds × "
                  f"{'/'.join(str(d) for d in durs)} s, {started[:10]}")

    # ---- missing numbers
    missing = []
    for scen, metric, *_ in rows:
        sec = "idle" if scen.startswith(("idle-", "startup")) else "load"
        if sec not in sections:
            continue
        for s in servers:
            if s == "nginx-batch" and meta["mode"] == "quick" and scen != "plaintext-c64":
                continue  # --quick measures nginx under chrt -b on plaintext -c64 only
            if R.med(vals, scen, metric, s) is None:
                missing.append(f"{s} {scen} {metric}")
    for c in conns:
        for s in servers:
            if R.med(vals, f"scale-c{c}", "rps", s) is None:
                missing.append(f"{s} scale-c{c} rps")

    errors = []
    for (scen, metric, server), v in sorted(vals.items()):
        if server not in servers:
            continue
        if metric in ("errors", "non200", "conns_failed", "closed_before_signal") and sum(v):
            errors.append(f"{server} {scen}: {metric} = {', '.join(str(int(x)) for x in v)} (per round)")
        if metric == "exit_code" and server not in PEERS and any(v):
            errors.append(f"{server} {scen}: exit code {', '.join(str(int(x)) for x in v)} (per round)")

    # ---- charts
    charts = {}
    if "load" in sections:
        charts["throughput"] = bars(
            vals, servers, os.path.join(out_dir, "peers-throughput.png"), f"req/s (median) — {title_tail}",
            [("plaintext-c64", "rps", "plaintext\nc64"), ("plaintext-c256", "rps", "plaintext\nc256"),
             ("pipelined-m16", "rps", "pipelined\nc64 m16"), ("json-c64", "rps", "/json\nc64")],
            "requests/s (log scale; higher is better)", log=True, fmt_lab=lambda y: f"{y / 1000:.0f}k")
        charts["cpu"] = bars(
            vals, servers, os.path.join(out_dir, "peers-cpu.png"),
            f"server CPU per request (median) — {title_tail}",
            [("plaintext-c64", "cpu_us_per_req", "plaintext c64"), ("pipelined-m16", "cpu_us_per_req",
                                                                    "pipelined c64 m16")],
            "µs of CPU per request (lower is better)", fmt_lab=lambda y: f"{y:.2f}")
    if idle_ns:
        charts["idle"] = bars(
            vals, servers, os.path.join(out_dir, "peers-idle.png"),
            f"RSS per idle keep-alive connection (median) — {title_tail}",
            [(f"idle-{n}", "rss_per_conn_kib", f"N = {n_fmt(n)}") for n in idle_ns],
            "KiB per connection (lower is better)", fmt_lab=lambda y: f"{y:.2f}")
    if conns:
        charts["scaling"] = scaling_chart(vals, servers, conns, os.path.join(out_dir, "peers-scaling.png"),
                                          f"plaintext wrk -t1 by connection count — {title_tail}")

    # ---- stdout
    print(f"\npeers — {title_tail}")
    head = ["metric"] + [NAMES.get(s, s) for s in servers] + ["pounce/best other"]
    txt = [head]
    for scen, metric, label, unit, better in rows:
        who, v = best_other(vals, scen, metric, servers, better)
        p = R.med(vals, scen, metric, "pounce")
        txt.append([f"{label} ({unit})".replace("`", "")] + [R.fmt(R.med(vals, scen, metric, s), unit)
                                                            for s in servers]
                   + [f"{R.ratio_of(p, v)} ({NAMES.get(who, who)})" if who else "—"])
    w = [max(len(r[i]) for r in txt) for i in range(len(head))]
    for r in txt:
        print("  ".join(c.ljust(w[j]) if j == 0 else c.rjust(w[j]) for j, c in enumerate(r)))
    for t, verdict, ev in targets(vals, servers, idle_ns):
        print(f"target: {t}: {verdict.replace('**', '')} — {ev}")
    if errors:
        print("\nerrors / anomalies:\n  " + "\n  ".join(errors))
    if missing:
        print("\nMISSING numbers:\n  " + "\n  ".join(missing))
    print(f"\npeers report: {md_path}")

    # ---- markdown
    v = info["versions"]
    pv = meta.get("peer_versions", {})
    md = ["# pounce vs the Rust servers a user would pick instead — benchmark results", ""]
    if meta["mode"] == "quick":
        md += ["> **Quick smoke run**: 1 round, short measurements. Don't quote these numbers.", ""]
    cmds = "; ".join(f"`bench/run.sh {m['args']}`" if m.get("args") else "`bench/run.sh --peers`"
                     for m in meta["per_run"])
    md.append(f"Produced by {cmds} (runs {', '.join('`' + r + '`' for r in meta['runs'])}"
              f"{', merged' if len(meta['runs']) > 1 else ''}), started {started}"
              + (f", {meta['bench_seconds']} s of measurement." if meta.get("bench_seconds") else "."))
    md.append("Every figure is the **median over rounds** in which all servers ran one after the other "
              "(pounce, nginx, nginx under `chrt -b 0`, actix-web, hyper, may-minihttp, monoio; fresh "
              "server each time) on the same machine, the load generator included. Absolute numbers drift "
              "between runs on this shared 2-vCPU VM; compare within a table.")
    md.append("")
    md.append("## Machine and servers")
    md.append("")
    md.append(f"- CPU: {info['cpu']}, {info['cores']} logical CPUs; memory {info['memory']}; kernel "
              f"{info['kernel']}; {info['os']}")
    md.append("- Load average (1, 5, 15 min) at start / end: " + "; ".join(
        f"{m.get('loadavg_start', '?')} / {m.get('loadavg_end', '?')}"
        + (f" (`{m.get('sections')}` run)" if len(meta["per_run"]) > 1 else "") for m in meta["per_run"])
        + ". The benchmark itself keeps 2–3 tasks runnable (wrk and two workers); a clearly higher figure "
          "means other work shared the 2 vCPUs: the per-round values below show the spread.")
    md.append(f"- Tools: {v['nginx']}; {v['wrk']}; {v['h2load']}; {v['rustc']}")
    md.append(f"- pounce: {v['pounce']}; `pounce demo --workers {meta['workers']}` (glommio, io_uring, one "
              "pinned executor per core, `SO_REUSEPORT`, `SCHED_BATCH` workers by default)")
    md.append(f"- nginx: `worker_processes {meta['workers']}`, `reuseport`, `worker_cpu_affinity auto`, as "
              "installed and under `chrt -b 0` (\"nginx (chrt -b)\", the policy pounce's workers use)")
    md.append(f"- actix-web {pv.get('actix-web', '?')}: `HttpServer::new(..).workers({meta['workers']})`")
    md.append(f"- hyper {pv.get('hyper', '?')} on tokio {pv.get('tokio', '?')}: multi-thread runtime, "
              f"`worker_threads({meta['workers']})`, a task per connection, `http1::Builder`")
    md.append(f"- may-minihttp {pv.get('may_minihttp', '?')} (may {pv.get('may', '?')}): "
              f"`may::config().set_workers({meta['workers']})` (may pins its workers)")
    md.append(f"- monoio {pv.get('monoio', '?')}: {meta['workers']} threads, a runtime (io_uring) and a "
              f"`SO_REUSEPORT` listener each, HTTP/1.1 by hyper through monoio-compat "
              f"{pv.get('monoio-compat', '?')}")
    md.append("- Sources: [`bench/peers/`](peers/) (its own Cargo workspace and lock file, release profile "
              "= pounce's: fat LTO, one codegen unit). Every server: 127.0.0.1, backlog 4096, keep-alive "
              "≥ 120 s, `Hello, World!` as `text/plain; charset=utf-8` on `/`.")
    md.append("")
    md.append("## Results")
    md.append("")
    md.append("| metric | unit | " + " | ".join(NAMES.get(s, s) for s in servers)
              + " | pounce ÷ best other | |")
    md.append("|---|---|" + "--:|" * len(servers) + "--:|---|")
    for scen, metric, label, unit, better in rows:
        p = R.med(vals, scen, metric, "pounce")
        who, bv = best_other(vals, scen, metric, servers, better)
        cells = []
        for s in servers:
            x = R.fmt(R.med(vals, scen, metric, s), unit)
            cells.append(f"**{x}**" if s == "pounce" else x)
        last = f"{R.ratio_of(p, bv)} ({NAMES.get(who, who)})" if who else "—"
        md.append(f"| {label} | {unit} | " + " | ".join(cells) + f" | {last} | {better} is better |")
    md.append("")
    if meta.get("idle_skipped"):
        md.append(f"**Not measured: {', '.join(n_fmt(n) for n in meta['idle_skipped'])} idle connections.** "
                  f"The open-files limit here is {meta.get('nofile')} (hard limit "
                  f"{meta.get('nofile_hard', '?')}; raising it needs CAP_SYS_RESOURCE, which this machine's "
                  "sandbox does not give), and each idle connection needs a descriptor in the server and one "
                  "in the client. The harness skips such a count and says so instead of failing.")
        md.append("")
    for key, alt in (("throughput", "req/s per scenario"), ("cpu", "CPU per request"),
                     ("idle", "RSS per idle connection"), ("scaling", "scaling with connections")):
        if key in charts:
            md.append(f"![{alt}](peers-{key}.png)" if charts[key] is None else f"_No {key} chart: {charts[key]}._")
            md.append("")
    md.append("## Targets (issue 16)")
    md.append("")
    md.append("| target | verdict | evidence (medians) |")
    md.append("|---|---|---|")
    for t, verdict, ev in targets(vals, servers, idle_ns):
        md.append(f"| {t} | {verdict} | {ev} |")
    md.append("")
    if conns:
        md.append("## Scaling with connections")
        md.append("")
        md.append(f"Plaintext `wrk -t1 -c<N> -d{'/'.join(str(d) for d in durs)}s --latency /` at each "
                  "connection count, one server instance per round for all counts (after a warm-up), CPU per "
                  "request from `/proc` as above.")
        md.append("")
        for metric, unit, better, ylabel in SCALING:
            md.append(f"**{ylabel}** ({better} is better)")
            md.append("")
            md.append("| connections | " + " | ".join(NAMES.get(s, s) for s in servers) + " | pounce ÷ best other |")
            md.append("|--:|" + "--:|" * len(servers) + "--:|")
            for c in conns:
                scen = f"scale-c{c}"
                p = R.med(vals, scen, metric, "pounce")
                who, bv = best_other(vals, scen, metric, servers, better)
                last = f"{R.ratio_of(p, bv)} ({NAMES.get(who, who)})" if who else "—"
                md.append(f"| {n_fmt(c)} | " + " | ".join(R.fmt(R.med(vals, scen, metric, s), unit)
                                                          for s in servers) + f" | {last} |")
            md.append("")
    md.append("Errors and anomalies: " + ("none." if not errors else ""))
    for e in errors:
        md.append(f"- {e}")
    if missing:
        md.append("")
        md.append("**Missing numbers** (a measurement failed): " + "; ".join(missing))
    md.append("")
    md.append("## How it was measured")
    md.append("")
    md.append(f"""- `bench/run.sh --peers --scaling` (sections can be split with `--only load,idle` and `--only scaling`;
  `report.py` merges the runs). Same harness as the pounce vs nginx report (`bench/RESULTS.md`): wrk and
  h2load with one thread on the same 2 vCPUs as the servers, each server {meta['workers']} workers/threads,
  a fresh server per block, `hey` checking that `/` and `/json` answer 200 before each load block.
- CPU per request: utime+stime of the server's process tree from `/proc` before and after the
  measurement ÷ requests completed. RSS per idle connection: (VmRSS with N idle keep-alive connections
  − VmRSS before) ÷ N, each connection having made one request (`bench/idle.py`); kernel socket memory
  is not in RSS. The peers are SIGKILLed after the idle measurement (their shutdown is not compared).
- Each peer is written the way its documentation and examples show, with no tuning beyond what the
  harness gives every server (backlog 4096, a keep-alive timeout long enough for the idle test —
  actix-web's default is 5 s — and the worker count). pounce, nginx and may pin their workers to cores;
  actix, tokio and monoio leave placement to the kernel.""")
    md.append("")
    md.append("## Per-round values")
    md.append("")
    md.append("| metric | server | per-round values |")
    md.append("|---|---|---|")
    extra = [(f"scale-c{c}", m, f"scaling c{c} {lab}", unit, b) for c in conns for m, unit, b, lab in SCALING[:1]]
    for scen, metric, label, unit, _ in rows + extra:
        for s in servers:
            rs = by_round.get((scen, metric, s))
            if rs:
                md.append(f"| {label} ({unit}) | {NAMES.get(s, s)} | "
                          + "; ".join(f"r{r}: " + ", ".join(R.fmt(x, unit) for x in xs)
                                      for r, xs in sorted(rs.items())) + " |")
    md.append("")
    with open(md_path, "w") as f:
        f.write("\n".join(md))
    return 1 if missing else 0
