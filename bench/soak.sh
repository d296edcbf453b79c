#!/usr/bin/env bash
# Soak (issue 13): a bounded run of mixed traffic against the real gateway on
# 127.0.0.1 while its config and plugins are hot-reloaded and one upstream comes and
# goes, sampling the gateway's memory, file descriptors and threads as it goes.
#
#   bench/soak.sh                       DURATION=600 RATE=200 WORKERS=8 by default
#   DURATION=60 bench/soak.sh           a one-minute run
#   WASMGATE_BIN=/path/to/wasmgate PLUGINS_DIR=target/wasm32-wasip2/plugin bench/soak.sh
#       use a gateway binary and plugin components that are already built: no cargo
#       at all. PLUGINS_DIR holds CRATE.wasm files as scripts/build-plugins.sh leaves
#       them ('-' in a crate name is '_'), test guests included: headers, deny,
#       panic, version_a, version_b.
#
# What runs, all on loopback ports from BASE_PORT+1 (default 18381):
#   - the gateway: routes /plain (no plugins), /chain (deny + headers; /chain/admin is
#     denied with 403), /panic (the `panic` test guest), /version (a plugin named
#     `swap` whose file is replaced by the version-a / version-b test guests) and
#     /flaky (no plugins, to an upstream that comes and goes);
#   - two upstreams, small python3 http.server echoes: `stable`, always up, and
#     `flaky`, killed (SIGKILL) and started again every FLAP_EVERY s on a fixed port;
#   - the load: WORKERS python3 threads, RATE requests/s in all, paced; even workers
#     keep their connection alive (a new one after 1–200 requests), odd ones open a
#     new connection per request. GET and POST (16–1024-byte bodies) over the five
#     routes; 1 request in PANIC_EVERY (100; 0: none) per worker goes to /panic with
#     `x-panic: 1` and the worker's next request goes to /panic without it. Seeded
#     (SEED): the same sequence of requests every run;
#   - every RELOAD_EVERY s a change, alternately (RELOADS=both; or only one kind:
#     RELOADS=config, RELOADS=plugin): the config file rewritten in place with
#     /chain's header value toggled a <-> b, and swap.wasm replaced (copy to a
#     hidden name, rename) by the other version; then a probe request polls until
#     the change is visible;
#   - every SAMPLE_EVERY s a sample to samples.csv in the run's directory: the
#     gateway's VmRSS, VmHWM, how much of the RSS is in wasmtime's instance pool
#     (the largest run of anonymous mappings in /proc/PID/smaps), threads, open fds
#     (/proc), and from GET /metrics on the admin listener
#     http_requests_in_progress, wasmgate_plugin_instances and
#     wasmgate_connections_open (n/a when the gateway has no such gauge), reload
#     counters and the config generation.
#
# Every answer is checked: the status the route and request call for (200; 403
# FORBIDDEN on /chain/admin; 500 PLUGIN_ERROR for x-panic: 1 and 200 for the request
# after it; on /flaky 200 while the upstream is up, a 502/503 envelope while it is
# down, either while it is being started or killed and within a second of that),
# the JSON envelope (success false, code, request_id equal to X-Request-Id) on every
# error, an X-Request-Id on every answer, the upstream's echo (method, path, body
# length), the same version a/b in the request the upstream saw and in the
# response, and no version older than one already seen by a probe after its reload.
#
# Exit status 1 (thresholds), after printing the summary, when
#   - the gateway died, or did not exit 0 within 15 s of SIGTERM at the end;
#   - VmRSS at the end > RSS_FACTOR (1.5) x VmRSS after warm-up (the first sample at
#     or after WARMUP s, default 60, at most a third of DURATION);
#   - open fds at the end > fds after warm-up + FD_MARGIN (20);
#   - any request got no answer (none within REQUEST_TIMEOUT, 10 s, or its connection
#     failed) or an unexpected one (above); a reload was not visible within 10 s, or
#     the gateway rejected one;
#   - http_requests_in_progress is not 0 three seconds after the load stops.
# The end sample is taken under load, like the warm-up one.
#
# Loopback only; every step is bounded in time; the run's directory (samples.csv,
# the gateway's log, the upstreams' logs) is kept and printed at the end. Installs
# python3 and curl from Debian's packages when missing (apt-get, as root); builds
# the gateway and the plugins unless WASMGATE_BIN and PLUGINS_DIR are given.
set -euo pipefail
# The caller's relative paths, made absolute before moving to the repository root.
[ -n "${WASMGATE_BIN:-}" ] && WASMGATE_BIN="$(cd "$(dirname "$WASMGATE_BIN")" && pwd)/$(basename "$WASMGATE_BIN")"
[ -n "${PLUGINS_DIR:-}" ] && PLUGINS_DIR="$(cd "$PLUGINS_DIR" && pwd)"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"

duration="${DURATION:-600}"
rate="${RATE:-200}"
workers="${WORKERS:-8}"
reload_every="${RELOAD_EVERY:-5}"
reloads="${RELOADS:-both}"
panic_every="${PANIC_EVERY:-100}"
flap_every="${FLAP_EVERY:-20}"
sample_every="${SAMPLE_EVERY:-10}"
warmup="${WARMUP:-60}"
rss_factor="${RSS_FACTOR:-1.5}"
fd_margin="${FD_MARGIN:-20}"
request_timeout="${REQUEST_TIMEOUT:-10}"
seed="${SEED:-1}"
base_port="${BASE_PORT:-18380}"
target="${CARGO_TARGET_DIR:-$repo/target}"

step() { printf '\n==> %s\n' "$*" >&2; }

for n in duration rate workers reload_every panic_every flap_every sample_every warmup fd_margin request_timeout seed base_port; do
    [[ "${!n}" =~ ^[0-9]+$ ]] || { echo "${n^^} must be a whole number (got '${!n}')" >&2; exit 2; }
done
case "$reloads" in both | config | plugin) ;; *) echo "RELOADS must be both, config or plugin" >&2; exit 2 ;; esac
[ "$duration" -ge 30 ] || { echo "DURATION must be at least 30 s" >&2; exit 2; }
if [ "$workers" -lt 1 ] || [ "$rate" -lt "$workers" ]; then
    echo "need RATE >= WORKERS >= 1" >&2
    exit 2
fi
[ $((warmup * 3)) -le "$duration" ] || warmup=$((duration / 3))

step "tools: python3, curl"
if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 curl >/dev/null
fi

if [ -n "${WASMGATE_BIN:-}" ]; then
    bin="$WASMGATE_BIN"
else
    step "build: wasmgate (release)"
    cargo build --release --locked -p wasmgate >&2
    bin="$target/release/wasmgate"
fi
[ -x "$bin" ] || { echo "no gateway binary at $bin" >&2; exit 1; }
if [ -n "${PLUGINS_DIR:-}" ]; then
    components="$PLUGINS_DIR"
else
    step "build: the plugins and test guests (scripts/build-plugins.sh)"
    scripts/build-plugins.sh >/dev/null
    components="$target/wasm32-wasip2/plugin"
fi

port_gw=$((base_port + 1))
port_admin=$((base_port + 2))
port_stable=$((base_port + 3))
port_flaky=$((base_port + 4))
for port in "$port_gw" "$port_admin" "$port_stable" "$port_flaky"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port on 127.0.0.1 is taken; pick another BASE_PORT" >&2
        exit 2
    fi
done

work="$(mktemp -d /tmp/wasmgate-soak.XXXXXX)"
mkdir -p "$work/plugins" "$work/versions"
component() { # CRATE -> its file in $components (CRATE.wasm, or with '-' as '_')
    local f
    for f in "$components/$1.wasm" "$components/${1//-/_}.wasm"; do
        [ -f "$f" ] && { echo "$f"; return; }
    done
    echo "no $1.wasm in $components (scripts/build-plugins.sh builds it)" >&2
    exit 1
}
cp "$(component headers)" "$work/plugins/headers.wasm"
cp "$(component deny)" "$work/plugins/deny.wasm"
cp "$(component panic)" "$work/plugins/panic.wasm"
cp "$(component version-a)" "$work/versions/a.wasm"
cp "$(component version-b)" "$work/versions/b.wasm"
cp "$work/versions/a.wasm" "$work/plugins/swap.wasm"

# --- the upstream: a python3 echo ---------------------------------------------------
cat >"$work/upstream.py" <<'PY'
# Echo upstream for bench/soak.sh: answers every request 200 with JSON naming what it
# received (method, path, query, body length, the headers the gateway's plugins set).
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, name = int(sys.argv[1]), sys.argv[2]

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    wbufsize = 65536  # head and body in one write: no Nagle / delayed-ACK stall

    def body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self):
        body = self.body()
        path, _, query = self.path.partition("?")
        out = json.dumps({
            "upstream": name, "method": self.command, "path": path, "query": query,
            "len": len(body), "x_soak": self.headers.get("x-soak"),
            "x_plugin_version": self.headers.get("x-plugin-version"),
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
PY

# --- the gateway's config: @SOAK@ is the value the driver toggles -------------------
cat >"$work/gateway.toml.in" <<TOML
# bench/soak.sh: the driver rewrites this file in place, toggling @SOAK@ a <-> b.
[gateway]
listen = "127.0.0.1:$port_gw"
plugin_dir = "plugins"
data_dir = "data"
shutdown_grace_ms = 5000

[admin]
enabled = true
listen = "127.0.0.1:$port_admin"

[reload]
watch = true
debounce_ms = 200

[health]
interval_ms = 2000
timeout_ms = 1000

[services.stable]
endpoints = ["http://127.0.0.1:$port_stable"]
connect_timeout_ms = 1000

[services.flaky]
endpoints = ["http://127.0.0.1:$port_flaky"]
connect_timeout_ms = 1000

[[routes]]
name = "plain"
prefix = "/plain"
service = "stable"
timeout_ms = 5000

[[routes]]
name = "chain"
prefix = "/chain"
service = "stable"
timeout_ms = 5000
[[routes.plugins]]
name = "deny"
config = { rules = [{ path_prefix = "/chain/admin" }], message = "soak: closed" }
[[routes.plugins]]
name = "headers"
config = { request = { set = { "x-soak" = "@SOAK@" } }, response = { set = { "x-soak-response" = "@SOAK@" } } }

[[routes]]
name = "panic"
prefix = "/panic"
service = "stable"
timeout_ms = 5000
[[routes.plugins]]
name = "panic"

[[routes]]
name = "version"
prefix = "/version"
service = "stable"
timeout_ms = 5000
[[routes.plugins]]
name = "swap"

[[routes]]
name = "flaky"
prefix = "/flaky"
service = "flaky"
timeout_ms = 5000
TOML
sed 's/@SOAK@/a/g' "$work/gateway.toml.in" >"$work/gateway.toml"

# --- the driver: load, reloads, the flapping upstream, samples, the summary ---------
cat >"$work/soak.py" <<'PY'
# Driver for bench/soak.sh; its settings come as JSON in argv[1]. Exit 0 when every
# threshold holds, 1 when one does not (the summary says which), 130 on a signal.
import collections, csv, http.client, json, os, random, shutil, signal, socket
import subprocess, sys, threading, time

C = json.load(open(sys.argv[1]))
WORK = C["work"]
stop = threading.Event()
lock = threading.Lock()
T0 = time.monotonic()


def now():
    return time.monotonic() - T0


# --- what the answers were -----------------------------------------------------
by_kind = collections.defaultdict(collections.Counter)  # kind -> status -> n
latency = collections.defaultdict(list)                 # kind -> [ms]
unexpected = collections.Counter()                      # reason -> n
examples = collections.defaultdict(list)                # reason -> the first 3, in full
counts = collections.Counter()                          # everything else


def record_unexpected(reason, detail):
    with lock:
        unexpected[reason] += 1
        if len(examples[reason]) < 3:
            examples[reason].append(f"t={now():.1f}s {detail}")


# --- state the checks read: the flaky upstream's timeline, the accepted versions ---
flaps = []        # (t, "starting" | "up" | "stopping" | "down"), in order
flaky_up = False
accepted = {"config": {"a"}, "plugin": {"a"}}   # values a request may see now


def flaky_state(start, end):
    """'up', 'down' or 'edge': the upstream was being started or killed during the
    request, or within a second of it."""
    with lock:
        events = list(flaps)
        up = flaky_up
    for t, _ in events:
        if start - 1.0 <= t <= end + 1.0:
            return "edge"
    state = "up" if up else "down"
    for t, what in events:
        if t <= start:
            state = what
    return state if state in ("up", "down") else "edge"


def envelope_problem(data, codes, rid):
    try:
        env = json.loads(data)
    except ValueError:
        return "error body is not JSON"
    if env.get("success") is not False:
        return "envelope without success: false"
    if env.get("code") not in codes:
        return f"envelope code {env.get('code')!r}, expected {'/'.join(sorted(codes))}"
    if env.get("request_id") != rid:
        return f"envelope request_id {env.get('request_id')!r} != X-Request-Id {rid!r}"
    if not env.get("error") or not env.get("timestamp"):
        return "envelope without error or timestamp"
    return None


def check(kind, method, path, sent, status, headers, data, start, end, acc_start):
    """None, or (what went wrong, in words that group alike answers; the detail)."""
    rid = headers.get("x-request-id")
    if not rid:
        return "no X-Request-Id", ""
    if kind.startswith("flaky"):
        state = flaky_state(start, end)
        with lock:
            counts[f"flaky {state} {status}"] += 1
        ok = {"up": {200}, "down": {502, 503}, "edge": {200, 502, 503}}[state]
        if status not in ok:
            return f"/flaky answered {status} while the upstream was {state}", ""
        if status != 200:
            problem = envelope_problem(data, {"BAD_GATEWAY", "SERVICE_UNAVAILABLE"}, rid)
            return (f"/flaky {status}: {problem}", "") if problem else None
    elif kind.startswith("chain-admin"):
        if status != 403:
            return f"/chain/admin answered {status}, expected 403", ""
        problem = envelope_problem(data, {"FORBIDDEN"}, rid)
        return (f"/chain/admin 403: {problem}", "") if problem else None
    elif kind == "panic-trigger":
        if status != 500:
            return f"x-panic: 1 answered {status}, expected 500", ""
        problem = envelope_problem(data, {"PLUGIN_ERROR"}, rid)
        return (f"x-panic: 1 500: {problem}", "") if problem else None
    elif status != 200:
        return f"{kind} answered {status}, expected 200", ""
    try:
        echo = json.loads(data)
    except ValueError:
        return f"{kind}: 200 body is not the upstream's JSON", ""
    want_path, _, want_query = path.partition("?")
    seen = (echo.get("method"), echo.get("path"), echo.get("query"), echo.get("len"))
    if seen != (method, want_path, want_query, len(sent or b"")):
        return f"{kind}: the upstream saw another request", f"upstream saw {seen}, sent {method} {path} len {len(sent or b'')}"
    if echo.get("upstream") != ("flaky" if kind.startswith("flaky") else "stable"):
        return f"{kind}: answered by upstream {echo.get('upstream')!r}", ""
    if kind.startswith("chain"):
        what, upstream_saw, response_has = "config", echo.get("x_soak"), headers.get("x-soak-response")
    elif kind.startswith("version"):
        what, upstream_saw, response_has = "plugin", echo.get("x_plugin_version"), headers.get("x-plugin-version")
    else:
        return None
    if upstream_saw != response_has:
        return (f"{what} version mixed in one request",
                f"upstream saw {upstream_saw!r}, the response has {response_has!r}")
    with lock:
        ok = acc_start[what] | accepted[what]
    if response_has not in ok:
        return (f"{what} version older than one a probe already saw",
                f"{response_has!r} while {'/'.join(sorted(ok))} was in force")
    return None


def request(conn, method, path, headers, body):
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp, data


# --- the load --------------------------------------------------------------------
KINDS = [  # weight, kind
    (25, "plain"), (10, "plain-post"), (18, "chain"), (5, "chain-post"), (3, "chain-admin"), (1, "chain-admin-post"),
    (14, "panic"), (12, "version"), (8, "flaky"), (4, "flaky-post"),
]


def build(kind, rng, i, n):
    method, body = "GET", None
    if kind.endswith("-post"):
        method = "POST"
        body = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(16, 1024)))
    base = kind.split("-")[0]
    path = {
        "plain": f"/plain/items/{n}?w={i}",
        "chain": f"/chain/items/{n}",
        "panic": f"/panic/p/{n}",
        "version": f"/version/v/{n}",
        "flaky": f"/flaky/f/{n}?w={i}",
    }[base]
    if kind.startswith("chain-admin"):
        path = f"/chain/admin/{n}"
    headers = {"user-agent": "wasmgate-soak"}
    if kind == "panic-trigger":
        path, headers["x-panic"] = f"/panic/p/{n}", "1"
    if body is not None:
        headers["content-type"] = "application/octet-stream"
    return method, path, headers, body


def worker(i):
    rng = random.Random(C["seed"] * 1000 + i)
    keepalive = i % 2 == 0
    conn, used, limit = None, 0, rng.randint(1, 200)
    opened, prev, prev_key = 0.0, "none", ""  # when this connection opened; its previous exchange
    period = C["workers"] / C["rate"]
    next_t = time.monotonic() + rng.random() * period
    n, after_panic = 0, False
    while not stop.is_set():
        delay = next_t - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        next_t = max(next_t + period, time.monotonic() - 1.0)  # never more than 1 s behind
        n += 1
        if after_panic:
            kind = "panic-after"
        elif C["panic_every"] and (n + 7 * i) % C["panic_every"] == 0:
            kind = "panic-trigger"
        else:
            kind = rng.choices([k for _, k in KINDS], weights=[w for w, _ in KINDS])[0]
        method, path, headers, body = build(kind, rng, i, n)
        if not keepalive:
            headers["connection"] = "close"
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", C["port_gw"], timeout=C["request_timeout"])
            opened, prev, prev_key = time.monotonic(), "none", ""
        with lock:
            acc_start = {k: set(v) for k, v in accepted.items()}
        start = time.monotonic()
        try:
            resp, data = request(conn, method, path, headers, body)
        except Exception as error:  # no answer: a hang (timeout) or a dropped connection
            end = time.monotonic()
            conn.close()
            on_conn = (f"{'keep-alive' if keepalive else 'new'} connection opened {end - opened:.2f} s before, "
                       f"request {used + 1} on it, previous: {prev}")
            conn, used = None, 0
            if isinstance(error, socket.timeout):
                name = f"no answer within {C['request_timeout']} s"
            else:
                name = f"no answer: {type(error).__name__}"
            with lock:
                by_kind[kind]["none"] += 1
            record_unexpected(f"{name}{prev_key}", f"{method} {path} ({kind}) after {1000 * (end - start):.0f} ms, "
                              f"{on_conn}: {error!r}")
            after_panic = kind == "panic-trigger"
            continue
        end = time.monotonic()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        problem = check(kind, method, path, body, resp.status, hdrs, data, start - T0, end - T0, acc_start)
        with lock:
            by_kind[kind][resp.status] += 1
            latency[kind].append(1000 * (end - start))
        if problem:
            record_unexpected(problem[0], f"{method} {path} ({kind}) -> {resp.status} x-request-id "
                              f"{hdrs.get('x-request-id')} body {data[:200]!r} {problem[1]}")
        after_panic = kind == "panic-trigger"
        used += 1
        prev = (f"{method} {path} ({kind}) -> {resp.status} x-request-id {hdrs.get('x-request-id')} "
                f"connection: {hdrs.get('connection')}, answered at t={time.monotonic() - T0:.3f}s")
        prev_key = f", on a keep-alive connection whose previous request was {method} {path.split('/')[1]} -> {resp.status}"
        if not keepalive or resp.will_close or used >= limit:
            if keepalive and resp.will_close and used < limit:
                with lock:
                    counts["keep-alive connection closed by the gateway"] += 1
            conn.close()
            conn, used, limit = None, 0, rng.randint(1, 200)
    if conn is not None:
        conn.close()


# --- reloads ---------------------------------------------------------------------
reloads = collections.Counter()
visible_ms = []


def probe(path, header):
    conn = http.client.HTTPConnection("127.0.0.1", C["port_gw"], timeout=C["request_timeout"])
    start = time.monotonic()
    try:
        resp, _ = request(conn, "GET", path, {"user-agent": "wasmgate-soak-probe"}, None)
        with lock:
            by_kind["probe"][resp.status] += 1
            latency["probe"].append(1000 * (time.monotonic() - start))
        return resp.status, resp.getheader(header)
    except Exception as error:
        with lock:
            by_kind["probe"]["none"] += 1
        record_unexpected("probe got no answer", f"GET {path}: {error!r}")
        return None, None
    finally:
        conn.close()


def reloader():
    template = open(os.path.join(WORK, "gateway.toml.in")).read()
    config = os.path.join(WORK, "gateway.toml")
    plugins = os.path.join(WORK, "plugins")
    value = {"config": "a", "plugin": "a"}
    k = 0
    if not C["reload_every"]:
        return
    while not stop.wait(C["reload_every"]):
        what = {"config": "config", "plugin": "plugin"}.get(C["reloads"], "config" if k % 2 == 0 else "plugin")
        k += 1
        new = "b" if value[what] == "a" else "a"
        with lock:
            accepted[what] = {value[what], new}
        if what == "config":  # in place, as an editor saves
            with open(config, "w") as f:
                f.write(template.replace("@SOAK@", new))
            path, header = "/chain/probe", "x-soak-response"
        else:  # a hidden name, then a rename, as the README says
            tmp = os.path.join(plugins, ".swap.wasm.tmp")
            shutil.copyfile(os.path.join(WORK, "versions", f"{new}.wasm"), tmp)
            os.rename(tmp, os.path.join(plugins, "swap.wasm"))
            path, header = "/version/probe", "x-plugin-version"
        t = time.monotonic()
        reloads[what] += 1
        while True:
            status, seen = probe(path, header)
            if status == 200 and seen == new:
                visible_ms.append(1000 * (time.monotonic() - t))
                break
            if time.monotonic() - t > 10 or stop.is_set():
                record_unexpected("reload not visible within 10 s",
                                  f"{what} -> {new}: last probe {path} {status} {header}: {seen!r}")
                break
            time.sleep(0.05)
        value[what] = new
        with lock:
            accepted[what] = {new}


# --- the upstream that comes and goes -------------------------------------------
def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def flapper(ready):
    global flaky_up
    proc = None
    log = open(os.path.join(WORK, "upstream-flaky.log"), "ab")

    def start():
        with lock:
            flaps.append((now(), "starting"))
        p = subprocess.Popen([sys.executable, os.path.join(WORK, "upstream.py"), str(C["port_flaky"]), "flaky"],
                             stdout=log, stderr=log)
        with open(os.path.join(WORK, "flaky.pid"), "w") as f:
            f.write(str(p.pid))
        deadline = time.monotonic() + 10
        while not listening(C["port_flaky"]):
            if time.monotonic() > deadline or p.poll() is not None:
                record_unexpected("flaky upstream did not start", f"rc {p.poll()}")
                break
            time.sleep(0.02)
        return p

    try:
        proc = start()
        with lock:
            flaky_up = True
            flaps.append((now(), "up"))
        counts["upstream starts"] += 1
        ready.set()
        while not stop.wait(C["flap_every"] or None):  # 0: never
            if proc is not None:
                with lock:
                    flaps.append((now(), "stopping"))
                proc.kill()
                proc.wait()
                proc = None
                with lock:
                    flaky_up = False
                    flaps.append((now(), "down"))
                counts["upstream kills"] += 1
            else:
                proc = start()
                with lock:
                    flaky_up = True
                    flaps.append((now(), "up"))
                counts["upstream starts"] += 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        ready.set()


# --- samples -----------------------------------------------------------------------
def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                out[key] = val.strip()
    except OSError:
        return None
    if out.get("State", "").startswith(("Z", "X")):
        return None
    return out


def pool_rss(pid):
    """KiB resident in the largest run of adjacent anonymous (or wasm memory image)
    mappings: in the gateway, the reservation of wasmtime's pooling allocator
    (instance memories, tables, stacks; terabytes of address space)."""
    runs, cur = [], None  # [size, rss, end] per run
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                    start, end = (int(x, 16) for x in head[0].split("-"))
                    name = head[5] if len(head) > 5 else ""
                    if name and not name.startswith("/memfd:wasm"):
                        cur = None
                    elif cur is not None and cur[2] == start:
                        cur[0] += end - start
                        cur[2] = end
                    else:
                        cur = [end - start, 0, end]
                        runs.append(cur)
                elif head[0] == "Rss:" and cur is not None:
                    cur[1] += int(head[1])
    except (OSError, ValueError, IndexError):
        return None
    return max(runs)[1] if runs else None


def scrape():
    conn = http.client.HTTPConnection("127.0.0.1", C["port_admin"], timeout=5)
    try:
        resp, data = request(conn, "GET", "/metrics", {}, None)
        if resp.status != 200:
            raise RuntimeError(f"status {resp.status}")
    finally:
        conn.close()
    series = {}
    for line in data.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        try:
            series[head] = (name, float(value))
        except ValueError:
            pass
    return series


def total(series, name, contains=""):
    vals = [v for head, (n, v) in series.items() if n == name and contains in head]
    return sum(vals) if vals else None


def gauge_like(series, prefix):
    """The sum of the series of the gauge named `prefix` (or the first name starting
    with it): (name, value), or (None, None) when the gateway has none."""
    names = sorted({n for n, _ in series.values() if n.startswith(prefix) and not n.endswith("_created")})
    if not names:
        return None, None
    name = prefix if prefix in names else names[0]
    return name, total(series, name)


gauge_names = {}
COLUMNS = ["t_s", "rss_kib", "hwm_kib", "pool_rss_kib", "threads", "fds", "in_progress", "plugin_instances",
           "connections_open", "reloads_applied", "reloads_rejected", "generation",
           "requests", "unexpected", "flaky_up", "phase"]


def sample(phase):
    pid = C["gateway_pid"]
    st = proc_status(pid)
    if st is None:
        return None
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    row = {"t_s": round(now(), 1), "rss_kib": int(st["VmRSS"].split()[0]),
           "hwm_kib": int(st["VmHWM"].split()[0]), "pool_rss_kib": pool_rss(pid),
           "threads": int(st["Threads"]), "fds": fds,
           "phase": phase}
    try:
        s = scrape()
        row["in_progress"] = total(s, "http_requests_in_progress")
        for col, prefix in (("plugin_instances", "wasmgate_plugin_instances"),
                            ("connections_open", "wasmgate_connections_open")):
            name, val = gauge_like(s, prefix)
            row[col] = "n/a" if name is None else val
            if name:
                gauge_names[col] = name
        row["reloads_applied"] = total(s, "plugin_reloads_total", 'result="applied"') or 0
        row["reloads_rejected"] = total(s, "plugin_reloads_total", 'result="rejected"') or 0
        row["generation"] = total(s, "wasmgate_config_generation")
        row["_requests_total"] = total(s, "http_requests_total") or 0
        row["_plugin_errors"] = {h: v for h, (n, v) in s.items() if n == "plugin_errors_total"}
    except Exception as error:
        record_unexpected("GET /metrics failed", repr(error))
    with lock:
        row["requests"] = sum(sum(c.values()) for c in by_kind.values())
        row["unexpected"] = sum(unexpected.values())
        row["flaky_up"] = int(flaky_up)
    return row


def admin_json(path):
    conn = http.client.HTTPConnection("127.0.0.1", C["port_admin"], timeout=5)
    try:
        resp, data = request(conn, "GET", path, {}, None)
        return json.loads(data)
    except Exception as error:
        return {"error": repr(error)}
    finally:
        conn.close()


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def on_term(*_):
    raise KeyboardInterrupt()


def main():
    signal.signal(signal.SIGTERM, on_term)
    samples, died, threads = [], False, []
    ready = threading.Event()
    fl = threading.Thread(target=flapper, args=(ready,), name="flapper")
    fl.start()
    ready.wait(15)
    csv_file = open(os.path.join(WORK, "samples.csv"), "w", newline="")
    out = csv.DictWriter(csv_file, COLUMNS, extrasaction="ignore")
    out.writeheader()

    def keep(row):
        samples.append(row)
        out.writerow(row)
        csv_file.flush()
        print(f"  t={row['t_s']:6.1f}s rss {row['rss_kib'] / 1024:6.1f} MiB (pool {(row['pool_rss_kib'] or 0) / 1024:5.1f})  fds {row['fds']:4d}  "
              f"threads {row['threads']:3d}  in_progress {row.get('in_progress')}  "
              f"instances {row.get('plugin_instances')}  conns {row.get('connections_open')}  "
              f"requests {row['requests']}  unexpected {row['unexpected']}", file=sys.stderr, flush=True)

    try:
        first = sample("start")
        if first is None:
            died = True
        else:
            keep(first)
        start = time.monotonic()
        for i in range(C["workers"]):
            threads.append(threading.Thread(target=worker, args=(i,), name=f"worker-{i}"))
        threads.append(threading.Thread(target=reloader, name="reloader"))
        for t in threads:
            t.start()
        end = start + C["duration"]
        next_sample = start + C["sample_every"]
        while not died:
            wake = min(next_sample, end)
            if stop.wait(max(0.0, wake - time.monotonic())):
                break
            if time.monotonic() >= end - 0.05:
                break
            row = sample("load")
            if row is None:
                died = True
                break
            keep(row)
            next_sample += C["sample_every"]
        if not died:
            row = sample("end")  # still under load
            if row is None:
                died = True
            else:
                keep(row)
    except KeyboardInterrupt:
        stop.set()
        for t in threads + [fl]:
            t.join(C["request_timeout"] + 5)
        print("soak: interrupted", file=sys.stderr)
        return 130
    stop.set()
    for t in threads:
        t.join(C["request_timeout"] + 5)
    fl.join(15)
    idle = None
    if not died:
        time.sleep(3)
        idle = sample("idle")
        if idle is None:
            died = True
        else:
            keep(idle)
    csv_file.close()
    return summary(samples, idle, died)


def summary(samples, idle, died):
    fails = []
    load = [s for s in samples if s["phase"] in ("start", "load", "end")]
    warm = next((s for s in load if s["t_s"] >= C["warmup"]), None)
    last = next((s for s in reversed(load) if s["phase"] == "end"), load[-1] if load else None)
    first = load[0] if load else None
    snapshot = admin_json("/admin/snapshot") if not died else {}
    plugins = admin_json("/admin/plugins") if not died else {}

    print()
    print(f"soak: {C['duration']} s, {C['rate']} req/s over {C['workers']} workers (half keep-alive, "
          f"half a new connection per request), a reload every {C['reload_every']} s, "
          f"the flaky upstream flips every {C['flap_every']} s, a sample every {C['sample_every']} s")
    print(f"run directory: {WORK} (samples.csv, wasmgate.log)")
    print()
    if died:
        fails.append("the gateway died")
        print("THE GATEWAY DIED (its /proc entry is gone or a zombie); last sample:", samples[-1] if samples else None)

    def fmt(v, col):
        if v is None:
            return "-"
        if v == "n/a":
            return "n/a"
        if col in ("rss_kib", "hwm_kib", "pool_rss_kib"):
            return f"{v / 1024:.1f}"
        return f"{v:g}" if isinstance(v, float) else str(v)

    if first and last:
        print(f"| gateway | start (t={first['t_s']:g}s) | after warm-up (t={warm['t_s'] if warm else '-'}s) "
              f"| end (t={last['t_s']:g}s) | max | idle, 3 s after the load |")
        print("|---|---|---|---|---|---|")
        for col, label in (("rss_kib", "VmRSS MiB"), ("hwm_kib", "VmHWM MiB"),
                           ("pool_rss_kib", "of it in wasmtime's instance pool, MiB"),
                           ("fds", "open fds"),
                           ("threads", "threads"), ("in_progress", "http_requests_in_progress"),
                           ("plugin_instances", gauge_names.get("plugin_instances", "wasmgate_plugin_instances")),
                           ("connections_open", gauge_names.get("connections_open", "wasmgate_connections_open"))):
            vals = [s.get(col) for s in load if isinstance(s.get(col), (int, float))]
            mx = max(vals) if vals else ("n/a" if any(s.get(col) == "n/a" for s in load) else None)
            print(f"| {label} | {fmt(first.get(col), col)} | {fmt(warm.get(col) if warm else None, col)} "
                  f"| {fmt(last.get(col), col)} | {fmt(mx, col)} | {fmt(idle.get(col) if idle else None, col)} |")
        print()
        if warm:
            limit = C["rss_factor"] * warm["rss_kib"]
            if last["rss_kib"] > limit:
                fails.append(f"VmRSS grew {last['rss_kib'] / warm['rss_kib']:.2f}x after warm-up "
                             f"({warm['rss_kib'] / 1024:.1f} -> {last['rss_kib'] / 1024:.1f} MiB; limit {C['rss_factor']}x)")
            if last["fds"] > warm["fds"] + C["fd_margin"]:
                fails.append(f"open fds grew from {warm['fds']} to {last['fds']} (margin {C['fd_margin']})")
        else:
            fails.append("no sample after warm-up")
    if idle is not None and idle.get("in_progress") not in (0, 0.0, None):
        fails.append(f"http_requests_in_progress is {idle.get('in_progress')} with no load")

    with lock:
        kinds = {k: dict(v) for k, v in by_kind.items()}
    statuses = sorted({s for v in kinds.values() for s in v}, key=str)
    sent = sum(sum(v.values()) for v in kinds.values())
    classes = collections.Counter()
    for v in kinds.values():
        for s, n in v.items():
            classes["no answer" if s == "none" else f"{str(s)[0]}xx"] += n
    print(f"requests: {sent} ({sent / C['duration']:.0f}/s); by class: "
          + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    print()
    print("| request | sent | " + " | ".join(str(s) for s in statuses) + " | p50 ms | p99 ms | max ms |")
    print("|---|---|" + "---|" * len(statuses) + "---|---|---|")
    for kind in sorted(kinds):
        v, lat = kinds[kind], latency.get(kind, [])
        print(f"| {kind} | {sum(v.values())} | " + " | ".join(str(v.get(s, 0)) for s in statuses)
              + f" | {pct(lat, 50):.1f} | {pct(lat, 99):.1f} | {max(lat) if lat else float('nan'):.1f} |")
    print()
    triggers = kinds.get("panic-trigger", {})
    after = kinds.get("panic-after", {})
    print(f"x-panic: 1 sent {sum(triggers.values())}, answered 500: {triggers.get(500, 0)}; "
          f"the request after each: {after.get(200, 0)} of {sum(after.values())} answered 200")
    fl = {k: v for k, v in counts.items() if k.startswith("flaky ")}
    print(f"flaky upstream: killed {counts['upstream kills']}, started {counts['upstream starts']}; /flaky answers "
          + ", ".join(f"{k[6:]}: {v}" for k, v in sorted(fl.items())))
    if counts["keep-alive connection closed by the gateway"]:
        print(f"keep-alive connections the gateway closed (Connection: close): "
              f"{counts['keep-alive connection closed by the gateway']}")

    done = reloads["config"] + reloads["plugin"]
    applied = [s.get("reloads_applied") for s in samples if s.get("reloads_applied") is not None]
    rejected = [s.get("reloads_rejected") for s in samples if s.get("reloads_rejected") is not None]
    gens = [s.get("generation") for s in samples if s.get("generation") is not None]
    log_applied = log_rejected = 0
    levels, messages = collections.Counter(), collections.Counter()
    try:
        with open(os.path.join(WORK, "wasmgate.log"), errors="replace") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    levels["(not JSON)"] += 1
                    continue
                level = entry.get("level", "?")
                msg = (entry.get("fields") or {}).get("message") or entry.get("message") or ""
                levels[level] += 1
                if msg.startswith("reload applied"):
                    log_applied += 1
                elif msg.startswith("reload rejected"):
                    log_rejected += 1
                if level in ("WARN", "ERROR"):
                    messages[f"{level} {msg[:110]}"] += 1
    except OSError:
        pass
    rel = snapshot.get("reloads", {}) if isinstance(snapshot, dict) else {}
    print(f"reloads done: {done} ({reloads['config']} config edits, {reloads['plugin']} plugin swaps); "
          f"visible to a probe after median {pct(visible_ms, 50):.0f} ms, max {max(visible_ms) if visible_ms else float('nan'):.0f} ms")
    print(f"reloads the gateway reports: log 'reload applied' {log_applied}, 'reload rejected' {log_rejected}; "
          f"/admin/snapshot applied {rel.get('applied')}, rejected {rel.get('rejected')}; "
          f"plugin_reloads_total{{result=\"applied\"}} {applied[-1] if applied else '-'}, "
          f"{{result=\"rejected\"}} {rejected[-1] if rejected else '-'}; "
          f"wasmgate_config_generation {gens[0] if gens else '-'} -> {gens[-1] if gens else '-'}")
    if isinstance(plugins, dict):
        for p in plugins.get("plugins", []) if isinstance(plugins.get("plugins"), list) else []:
            print(f"  plugin {p.get('name')}: calls {p.get('calls')}, errors {p.get('errors')}, status {p.get('status')}")
    if samples and samples[-1].get("_plugin_errors"):
        print("  plugin_errors_total: " + ", ".join(f"{h} {v:g}" for h, v in samples[-1]["_plugin_errors"].items()))
    if idle is not None and idle.get("_requests_total") is not None:
        print(f"  http_requests_total (all series) after the load: {idle['_requests_total']:g}; "
              f"answers the driver got: {sent - classes['no answer']}")
    print("gateway log lines by level: " + ", ".join(f"{k} {v}" for k, v in sorted(levels.items())))
    for m, n in messages.most_common(15):
        print(f"  {n:6d}  {m}")
    if log_rejected or (rejected and rejected[-1]):
        fails.append("a reload was rejected")

    n_unexpected = sum(unexpected.values())
    print(f"\nunexpected answers: {n_unexpected}")
    for reason, n in unexpected.most_common():
        print(f"  {n:6d}  {reason}")
        for e in examples[reason]:
            print(f"          e.g. {e}")
    if n_unexpected:
        fails.append(f"{n_unexpected} unexpected answers (or none)")

    print()
    if fails:
        print("FAIL: " + "; ".join(fails))
        return 1
    print(f"PASS: the gateway lived; VmRSS end/warm-up within {C['rss_factor']}x; fds within +{C['fd_margin']}; "
          f"every answer as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
PY

# --- run -------------------------------------------------------------------------
pids=()
gw_pid=""
driver_pid=""
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$driver_pid" ]; then
        kill "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    if [ -f "$work/flaky.pid" ]; then kill -9 "$(cat "$work/flaky.pid")" 2>/dev/null || true; fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "run directory (kept): $work" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "start: upstream 'stable' on :$port_stable, the gateway on :$port_gw (admin :$port_admin)"
python3 "$work/upstream.py" "$port_stable" stable >"$work/upstream-stable.log" 2>&1 &
pids+=($!)
(cd "$work" && LOG_LEVEL="${LOG_LEVEL:-info}" LOG_FORMAT=json exec "$bin" run --config gateway.toml) \
    >"$work/wasmgate.out" 2>"$work/wasmgate.log" &
gw_pid=$!
pids+=("$gw_pid")

ok=""
for _ in $(seq 1 240); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port_gw/plain/ready" || true)" = 200 ]; then
        ok=1
        break
    fi
    kill -0 "$gw_pid" 2>/dev/null || break
    sleep 0.25
done
if [ -z "$ok" ]; then
    echo "the gateway does not answer 200 on /plain (60 s)" >&2
    tail -n 30 "$work/wasmgate.log" >&2
    exit 1
fi
for path in /chain/x /panic/x /version/x; do
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port_gw$path" || true)"
    [ "$code" = 200 ] || { echo "$path answers $code, not 200" >&2; tail -n 30 "$work/wasmgate.log" >&2; exit 1; }
done

cat >"$work/soak.json" <<JSON
{"work": "$work", "gateway_pid": $gw_pid, "port_gw": $port_gw, "port_admin": $port_admin,
 "port_flaky": $port_flaky, "duration": $duration, "rate": $rate, "workers": $workers,
 "reload_every": $reload_every, "reloads": "$reloads", "panic_every": $panic_every, "flap_every": $flap_every, "sample_every": $sample_every,
 "warmup": $warmup, "rss_factor": $rss_factor, "fd_margin": $fd_margin,
 "request_timeout": $request_timeout, "seed": $seed}
JSON

step "soak: ${duration} s, $rate req/s, $workers workers; a sample every ${sample_every} s"
rc=0
python3 "$work/soak.py" "$work/soak.json" &
driver_pid=$!
wait "$driver_pid" || rc=$?
driver_pid=""

# The gateway must still be there, and stop cleanly on SIGTERM.
if kill -0 "$gw_pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$gw_pid/status" 2>/dev/null; then
    kill -TERM "$gw_pid"
    for _ in $(seq 1 150); do
        kill -0 "$gw_pid" 2>/dev/null || break
        grep -q '^State:.*Z' "/proc/$gw_pid/status" 2>/dev/null && break
        sleep 0.1
    done
    gw_rc=0
    if kill -0 "$gw_pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$gw_pid/status" 2>/dev/null; then
        echo "FAIL: the gateway did not exit within 15 s of SIGTERM" >&2
        kill -9 "$gw_pid" 2>/dev/null || true
        rc=1
    fi
    wait "$gw_pid" || gw_rc=$?
    echo "the gateway exited $gw_rc after SIGTERM"
    if [ "$gw_rc" != 0 ]; then
        echo "FAIL: the gateway's exit status after SIGTERM was $gw_rc, not 0" >&2
        [ "$rc" = 0 ] && rc=1
    fi
else
    wait "$gw_pid" 2>/dev/null || true
    echo "FAIL: the gateway is gone; the end of its log:" >&2
    tail -n 30 "$work/wasmgate.log" >&2
    [ "$rc" = 0 ] && rc=1
fi
gw_pid=""
cores="$(nproc)"
cpu="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "machine: $cores cores ($cpu); $(date -u '+%Y-%m-%d %H:%M UTC')"
exit "$rc"
