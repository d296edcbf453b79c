"""The tables of bench/run.sh: medians over rounds of wrk's throughput and latency,
and of the latency h2load logged at a fixed rate.

    python3 bench/report.py WORK_DIR ROUNDS TARGET...
    RATE=2000 RATE_DURATION=6 python3 bench/report.py --rate WORK_DIR ROUNDS TARGET...

Reads WORK_DIR/wrk-TARGET-ROUND.txt (wrk --latency output) and WORK_DIR/rss.txt
("name KiB" lines), prints a Markdown table: requests/s, p50 and p99 latency (medians
over the rounds), throughput as a ratio to nginx, to Envoy with its wasm filter and to
the direct path, p99 added over direct, and the errors wrk saw (non-2xx answers,
socket errors) summed over the rounds.

With --rate it reads WORK_DIR/rate-TARGET-ROUND.log (h2load --log-file: start time,
status, microseconds to the end of the response, one request a line) and prints, per
target, medians over the rounds of the rate reached and of p50, p99 and p99.9 latency,
each also as added over the direct path in the same round's median, and the requests
that failed or did not answer 2xx.
"""

import os

import re
import statistics
import sys
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def millis(text):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def parse(path):
    text = path.read_text()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = millis(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = millis(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return rps, p50, p99, errors


def percentile(ordered, fraction):
    """The nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def parse_rate_log(path, seconds):
    """(requests/s, p50, p99, p99.9 in ms, errors) of one h2load log."""
    durations, errors = [], 0
    for line in path.read_text().split("\n"):
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        status, micros = int(fields[1]), int(fields[2])
        if 200 <= status < 300:
            durations.append(micros / 1000)
        else:
            errors += 1
    durations.sort()
    if not durations:
        return 0.0, float("nan"), float("nan"), float("nan"), errors
    return (
        (len(durations) + errors) / seconds,
        percentile(durations, 0.50),
        percentile(durations, 0.99),
        percentile(durations, 0.999),
        errors,
    )


def rate_table(work, rounds, targets):
    seconds = float(os.environ.get("RATE_DURATION", "6"))
    asked = os.environ.get("RATE", "?")
    rows = {}
    for target in targets:
        runs = [
            parse_rate_log(work / f"rate-{target}-{r}.log", seconds)
            for r in range(1, rounds + 1)
        ]
        rows[target] = {
            "rate": statistics.median(r[0] for r in runs),
            "p50": statistics.median(r[1] for r in runs),
            "p99": statistics.median(r[2] for r in runs),
            "p999": statistics.median(r[3] for r in runs),
            "errors": sum(r[4] for r in runs),
        }
    direct = rows.get("direct")

    def added(target, key):
        return "" if direct is None else f"{rows[target][key] - direct[key]:+.3f}"

    print()
    print(
        f"| target | req/s reached (asked {asked}) | p50 ms | p99 ms | p99.9 ms "
        "| p50 added over direct, ms | p99 added over direct, ms | errors |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for target in targets:
        row = rows[target]
        print(
            f"| {target} | {row['rate']:.0f} | {row['p50']:.3f} | {row['p99']:.3f} "
            f"| {row['p999']:.3f} | {added(target, 'p50')} | {added(target, 'p99')} "
            f"| {row['errors']} |"
        )


def main():
    if sys.argv[1] == "--rate":
        rate_table(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
        return
    work, rounds, targets = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    rows = {}
    for target in targets:
        runs = [parse(work / f"wrk-{target}-{r}.txt") for r in range(1, rounds + 1)]
        rows[target] = {
            "rps": statistics.median(r[0] for r in runs),
            "p50": statistics.median(r[1] for r in runs),
            "p99": statistics.median(r[2] for r in runs),
            "errors": sum(r[3] for r in runs),
            "spread": (min(r[0] for r in runs), max(r[0] for r in runs)),
            "each": [r[0] for r in runs],
        }
    rss = {}
    rss_file = work / "rss.txt"
    if rss_file.exists():
        for line in rss_file.read_text().split("\n"):
            if line.strip():
                name, kib = line.split()
                rss[name] = int(kib)

    def ratio(target, to):
        if to not in rows:
            return "n/a"
        return f"{rows[target]['rps'] / rows[to]['rps']:.2f}"

    print()
    print(
        "| target | req/s (median) | min–max req/s | p50 ms | p99 ms "
        "| p99 added over direct, ms | ×nginx | ×envoy-wasm | ×direct "
        "| peak RSS MiB | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    direct_p99 = rows["direct"]["p99"] if "direct" in rows else None
    for target in targets:
        row = rows[target]
        added = "" if direct_p99 is None else f"{row['p99'] - direct_p99:+.2f}"
        server = target.split("-")[0] if target[-1].isdigit() else target
        peak = f"{rss[server] / 1024:.1f}" if server in rss else ""
        low, high = row["spread"]
        print(
            f"| {target} | {row['rps']:.0f} | {low:.0f}–{high:.0f} | {row['p50']:.2f} "
            f"| {row['p99']:.2f} | {added} | {ratio(target, 'nginx')} "
            f"| {ratio(target, 'envoy-wasm')} | {ratio(target, 'direct')} "
            f"| {peak} | {row['errors']} |"
        )
    print()
    print(
        "peak RSS: VmHWM after the whole run; wasmgate is one process serving every"
        " wasmgate target; nginx: master + workers of the proxy."
    )
    pairs = [
        (t, "baseline-" + t[len("wasmgate-"):])
        for t in targets
        if t.startswith("wasmgate-") and "baseline-" + t[len("wasmgate-"):] in rows
    ]
    if pairs:
        print()
        print("| A/B | req/s this build | req/s baseline | ratio | ratio within a round "
              "(median, min–max) | p50 ms (this / baseline) | p99 ms (this / baseline) |")
        print("|---|---|---|---|---|---|---|")
        for new, old in pairs:
            a, b = rows[new], rows[old]
            # Both ran in the same round, minutes apart at most: drift of the machine
            # cancels in their ratio.
            paired = [x / y for x, y in zip(a["each"], b["each"])]
            print(
                f"| {new[len('wasmgate-'):]} plugins | {a['rps']:.0f} | {b['rps']:.0f} "
                f"| {a['rps'] / b['rps']:.3f} | {statistics.median(paired):.3f} "
                f"({min(paired):.2f}–{max(paired):.2f}) | {a['p50']:.2f} / {b['p50']:.2f} "
                f"| {a['p99']:.2f} / {b['p99']:.2f} |"
            )


if __name__ == "__main__":
    main()
