#!/usr/bin/env python3
"""Runs k6 scenarios against a running platform and writes the load report.

Called by `./x load`, which starts the platform (and the native baseline)
first. For each scenario and VU level it runs k6, samples the resident
memory of the host process while k6 runs, and reads k6's summary. The
`health` and `listing` scenarios also run against the native baseline in
the same run, and the report gives the ratio.

    run.py --host-pid PID --base URL --baseline URL --vus 100,500,1000 \
           --duration 20s --out REPORT.md SCENARIO...
"""

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMPARED = {"health", "listing", "search"}


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def scenario_requests(scenario):
    """What a scenario asks for, read from its script: each request it makes
    (method and URL template, page sizes and filters included) and its
    header comment."""
    with open(os.path.join(HERE, f"{scenario}.js")) as f:
        script = f.read()
    header = []
    for line in script.splitlines():
        if not line.startswith("//"):
            break
        header.append(line.lstrip("/ ").strip())
    summary = " ".join(header)
    calls = re.findall(r"http\.(get|post|put|del)\(`\$\{BASE\}([^`]*)`", script)
    calls += re.findall(r"`\$\{BASE\}(/api/videos/\$\{id\}/hls)`", script) and [("get", "/api/videos/${id}/hls/...")]
    return summary, [f"{method.upper()} {url}" for method, url in calls]


def cpu_seconds(pid, with_children=False):
    """CPU time (user + system) process `pid` has used, plus, if asked, that
    of its live children (PostgreSQL's backends are the postmaster's)."""
    if not pid:
        return 0.0
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(entry) == pid or (with_children and int(fields[1]) == pid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def k6_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_k6(scenario, base, vus, duration, env, pid, worker_pid=None, server_pid=None, pg_pid=None):
    """One k6 run; returns its metrics, the host's peak RSS during it, the
    host's and worker's RSS at its start and end (growth over a soak), and
    the CPU time per request of the server under test (`server_pid`: the
    host or the native baseline), of PostgreSQL (`pg_pid`, the postmaster)
    and of k6 itself."""
    summary = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    cpu_before = (cpu_seconds(server_pid), cpu_seconds(pg_pid, with_children=True), k6_cpu_seconds())
    peak = [rss_bytes(pid) if pid else 0]
    start = {"host": rss_bytes(pid) if pid else 0, "worker": rss_bytes(worker_pid) if worker_pid else 0}
    # (seconds since start, host RSS, worker RSS) once a second: over a soak
    # this tells a warm-up that levels off from a leak that keeps climbing.
    timeline = []
    done = threading.Event()

    def sample():
        ticks = 0
        while not done.wait(0.2):
            if pid:
                peak[0] = max(peak[0], rss_bytes(pid))
            ticks += 1
            if ticks % 5 == 0:
                timeline.append(
                    (time.time() - started, rss_bytes(pid) if pid else 0, rss_bytes(worker_pid) if worker_pid else 0)
                )

    started = time.time()
    sampler = threading.Thread(target=sample)
    sampler.start()
    result = subprocess.run(
        ["k6", "run", "--quiet", "--summary-export", summary, os.path.join(HERE, f"{scenario}.js")],
        env=dict(os.environ, XTREAM_BASE=base, VUS=str(vus), DURATION=duration, **env),
        capture_output=True,
        text=True,
    )
    done.set()
    sampler.join()
    cpu_after = (cpu_seconds(server_pid), cpu_seconds(pg_pid, with_children=True), k6_cpu_seconds())
    with open(summary) as f:
        metrics = json.load(f)["metrics"]
    os.unlink(summary)
    duration_metric = metrics["http_req_duration"]
    return {
        "scenario": scenario,
        "vus": vus,
        "passed": result.returncode == 0,
        "requests": int(metrics["http_reqs"]["count"]),
        "rps": metrics["http_reqs"]["rate"],
        # What an answer weighs on average (GET /videos grows with the catalog).
        "kib_per_response": metrics["data_received"]["count"] / max(1, metrics["http_reqs"]["count"]) / 1024,
        "p50": duration_metric["med"],
        "p95": duration_metric["p(95)"],
        "p99": duration_metric["p(99)"],
        "failed": max(rate(metrics, "http_req_failed"), rate(metrics, "upload_failed")),
        # upload.js: 503s with Retry-After (max_concurrent_uploads reached),
        # waited out and sent again; expected answers, so not in "failed".
        "busy": int(metrics.get("upload_busy", {}).get("count", 0)),
        # Microseconds of CPU per request: (server, PostgreSQL, k6).
        "cpu_us": tuple(
            (after - before) * 1e6 / max(1, int(metrics["http_reqs"]["count"]))
            for before, after in zip(cpu_before, cpu_after)
        ),
        "rss_mib": peak[0] / 2**20,
        "host_growth_mib": ((rss_bytes(pid) if pid else 0) - start["host"]) / 2**20,
        "worker_growth_mib": ((rss_bytes(worker_pid) if worker_pid else 0) - start["worker"]) / 2**20,
        "seconds": time.time() - started,
        "timeline": timeline,
        "log": result.stdout[-2000:] + result.stderr[-2000:],
    }


def rate(metrics, name):
    """A k6 Rate from the summary export (0 when the scenario has none)."""
    metric = metrics.get(name, {})
    return metric.get("value", metric.get("rate", 0))


def memory_timeline(run, points=10):
    """Resident memory at each tenth of a run, and the growth after its
    first fifth (warm-up: instance slots, connection pools, allocator arenas
    filling up) to its end."""
    samples = run["timeline"]
    if not samples:
        return []
    mib = 2**20
    lines = [
        f"Memory over the {run['scenario']} run at {run['vus']} VUs (sampled every second):",
        "",
        "| elapsed s | host RSS MiB | worker RSS MiB |",
        "|---:|---:|---:|",
    ]
    for i in range(1, points + 1):
        at, host, worker = samples[min(len(samples) - 1, len(samples) * i // points)]
        lines.append(f"| {at:.0f} | {host / mib:.0f} | {worker / mib:.0f} |")
    warm = samples[len(samples) // 5]
    last = samples[-1]
    lines += [
        "",
        f"Growth from {warm[0]:.0f} s to the end: host {(last[1] - warm[1]) / mib:+.1f} MiB, "
        f"worker {(last[2] - warm[2]) / mib:+.1f} MiB.",
    ]
    return lines


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-pid", type=int, required=True)
    parser.add_argument("--worker-pid", type=int)
    parser.add_argument("--baseline-pid", type=int, help="the native baseline, for its CPU time")
    parser.add_argument("--pg-pid", type=int, help="PostgreSQL's postmaster, for its CPU time")
    parser.add_argument("--base", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--vus", default="100,500,1000")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--out", required=True)
    parser.add_argument("--clip", default="")
    parser.add_argument("--timeline", action="store_true", help="report memory over each run (soaks)")
    parser.add_argument("--seeded", default="", help="what the catalog held, as ./x load seeded it")
    parser.add_argument("scenarios", nargs="+")
    args = parser.parse_args()
    env = {"XTREAM_CLIP": args.clip, "XTREAM_API_KEY": os.environ.get("XTREAM_API_KEY", "")}

    rows, ratios, failures = [], [], []
    for scenario in args.scenarios:
        for vus in [int(v) for v in args.vus.split(",")]:
            print(f"==> {scenario} with {vus} VUs for {args.duration}", flush=True)
            ours = run_k6(scenario, args.base, vus, args.duration, env, args.host_pid, args.worker_pid,
                          server_pid=args.host_pid, pg_pid=args.pg_pid)
            rows.append(ours)
            if not ours["passed"]:
                failures.append(ours)
            if scenario in COMPARED:
                native = run_k6(scenario, args.baseline, vus, args.duration, env, None,
                                server_pid=args.baseline_pid, pg_pid=args.pg_pid)
                ratios.append((scenario, vus, ours, native))

    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}.",
        "Every server ran on this one machine, k6 included: the numbers are for comparing",
        "with each other, not absolute capacity. Each row is one k6 run "
        f"of {args.duration} at a constant number of virtual users.",
        f"Catalog: {args.seeded or 'as found'}.",
        "",
        "What each scenario asks for, read from its script in tests/load/:",
        "",
        *[
            f"- {scenario}: {summary} ({'; '.join(f'`{call}`' for call in calls)})"
            for scenario in args.scenarios
            for summary, calls in [scenario_requests(scenario)]
        ],
        "",
        "| scenario | VUs | requests | req/s | KiB/answer | p50 ms | p95 ms | p99 ms | failed | host RSS MiB (peak) | RSS growth MiB host / worker | thresholds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['vus']} | {r['requests']} | {r['rps']:.0f} | {r['kib_per_response']:.1f} | {r['p50']:.1f} | "
            f"{r['p95']:.1f} | {r['p99']:.1f} | {r['failed']:.2%} | {r['rss_mib']:.0f} | "
            f"{r['host_growth_mib']:+.0f} / {r['worker_growth_mib']:+.0f} | "
            f"{'pass' if r['passed'] else 'FAIL'} |"
        )
    busy = [r for r in rows if r["busy"]]
    if busy:
        lines += ["", "Back-pressure: answers `503 server_busy` with `Retry-After` (max_concurrent_uploads"
                  " reached), waited out and sent again; in requests and latencies, not in failed:"]
        lines += [f"- {r['scenario']} at {r['vus']} VUs: {r['busy']}" for r in busy]
    if ratios:
        lines += [
            "",
            "Against the native baseline (`benches/baseline`: the same JSON from plain hyper, the",
            "same listing logic with a pooled client), measured in the same run:",
            "",
            "| scenario | VUs | host req/s | native req/s | ratio | host p95 ms | native p95 ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for scenario, vus, ours, native in ratios:
            lines.append(
                f"| {scenario} | {vus} | {ours['rps']:.0f} | {native['rps']:.0f} | "
                f"{ours['rps'] / native['rps']:.2f} | {ours['p95']:.1f} | {native['p95']:.1f} |"
            )
        lines += [
            "",
            "Where the time goes: CPU time per request, in microseconds, of the server under",
            "test (the host, or the native baseline), of PostgreSQL (the postmaster and its",
            "backends) and of k6, from /proc and getrusage over the same runs. With every",
            "process on the same cores, the sum bounds the requests per second.",
            "",
            "| scenario | VUs | host | native | PostgreSQL, host's requests | PostgreSQL, native's | k6, host's | k6, native's |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for scenario, vus, ours, native in ratios:
            (h, hp, hk), (n, np, nk) = ours["cpu_us"], native["cpu_us"]
            lines.append(
                f"| {scenario} | {vus} | {h:.0f} | {n:.0f} | {hp:.0f} | {np:.0f} | {hk:.0f} | {nk:.0f} |"
            )
    if args.timeline:
        for r in rows:
            lines += ["", *memory_timeline(r)]
    report = "\n".join(lines) + "\n"
    with open(args.out, "w") as out:
        out.write(report)
    print(report)
    for r in failures:
        print(f"thresholds failed for {r['scenario']} at {r['vus']} VUs:\n{r['log']}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
