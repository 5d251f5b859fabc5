#!/usr/bin/env python3
"""Tollgate's benchmark suite: one entry point, everything on 127.0.0.1, everything cleaned up.

    python benchmarks/run.py [relay|ingest|memory|profile|all] [--smoke] [--quick] [--only tollgate,nginx,...]
    python benchmarks/run.py pages [--quick]     dashboard render times over a ledger of 10M (--quick: 1M) usage rows

`all` (the default) measures the relay side by side (direct to the mock, nginx proxy_pass,
LiteLLM proxy, Tollgate) and then the usage ingestion rate; `memory` and `profile` are separate
because they take long or perturb the numbers. benchmarks/README.md explains the method.
"""

import argparse
import atexit
import base64
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
WORK = RESULTS / "work"  # generated configs and process logs of the last run
sys.path.insert(0, str(HERE))

import canned  # noqa: E402

PY = sys.executable
PORTS = {"mock": 18081, "nginx": 18082, "spaced": 18083, "litellm": 18084, "tollgate": 18085}
TARGETS = ("direct", "nginx", "litellm", "tollgate")
SCENARIOS = ("chat", "stream", "embeddings")  # wrk; "spaced" (TTFT) is measured with stream_client.py
# Tollgate only (ab.py --scenario): /v1/messages to an Anthropic-format deployment (passed through) and to an
# OpenAI-format one (translated to chat and back), /v1/responses to an OpenAI-format one (translated).
GATEWAY_SCENARIOS = ("messages", "messages-translated", "responses")
LITELLM_VERSION = "1.108.5"  # 1.108.6 and later ask for litellm-proxy-extras/-enterprise builds PyPI does not have here
LITELLM_MASTER_KEY = "sk-bench-master-key"
PYSPY_VERSION = "0.4.3"
LITELLM_VENV = HERE / ".venv-litellm"
TOOLS_VENV = HERE / ".venv-tools"
BENCH_DB = "tollgate_bench"
GC_LOG = WORK / "tollgate-gc.log"
# Not 14: the test suite's parallel workers take databases counting down from REDIS_URL's (CI: 15 → gw0 14,
# gw1 13; a local .../0 → 15, 14), and the benchmark flushes its database at the start.
REDIS_DB = 12
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Processes pinned: the gateway under test alone on GATEWAY_CPU; mocks, load generators and helpers on LOAD_CPU.
PIN = (os.cpu_count() or 1) >= 2
GATEWAY_CPU, LOAD_CPU = "1", "0"
NICE = -10  # the benchmark's processes get the cores first when something else runs on the machine (--nice 0: off)
RT = False  # --rt: the gateway under test runs SCHED_FIFO on its core (the kernel still keeps 5% for others)


def autogroup_nice(pid: int | str = "self", nice: int | None = None) -> None:
    """With the kernel's autogroup scheduling, niceness counts only inside a session: set the session's too."""
    nice = NICE if nice is None else nice
    if nice:
        try:
            with open(f"/proc/{pid}/autogroup", "w") as handle:
                handle.write(str(nice))
        except OSError:
            pass


def placed(argv: list[str], cpu: str | None, rt: bool = False, idle: bool = False) -> list[str]:
    """argv pinned to a core and niced (or real-time, or idle priority); taskset, chrt and nice exec, so the pid
    stays the program's own."""
    if rt and RT and shutil.which("chrt"):
        argv = ["chrt", "--fifo", "1", *argv]
    elif idle and shutil.which("chrt"):
        argv = ["chrt", "--idle", "0", *argv]
    elif NICE and shutil.which("nice"):
        argv = ["nice", "-n", str(NICE), *argv]
    if cpu is not None and PIN:
        argv = ["taskset", "-c", cpu, *argv]
    return argv


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- processes


class Processes:
    """Every process this run starts, each in its own session, stopped by its id at the end."""

    def __init__(self):
        self.items: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], *, cpu: str | None = None, env=None, cwd=ROOT, rt: bool = False,
              idle: bool = False) -> subprocess.Popen:
        argv = placed(argv, cpu, rt, idle)
        WORK.mkdir(parents=True, exist_ok=True)
        with open(WORK / f"{name}.log", "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd, start_new_session=True)
        autogroup_nice(proc.pid, 19 if idle else None)
        self.items.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # its own group: the process and the children it started
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        self.items = [(n, p) for n, p in self.items if p is not proc]

    def stop_all(self) -> None:
        for _, proc in reversed(list(self.items)):
            try:
                self.stop(proc, timeout=10)
            except Exception:
                pass


PROCS = Processes()
atexit.register(PROCS.stop_all)


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def log_tail(name: str, lines: int = 25) -> str:
    try:
        return "\n".join((WORK / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_port(port: int, proc: subprocess.Popen | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _process_tree(root: int) -> list[int]:
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    children[int(handle.read().rsplit(")", 1)[1].split()[1])].append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    tree, index = [root], 0
    while index < len(tree):
        tree.extend(children.get(tree[index], ()))
        index += 1
    return tree


def _task_runtime_ns(pid: int) -> int | None:
    """Nanoseconds on CPU of every thread of a process (schedstat), or None where schedstat is missing."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as handle:
                total += int(handle.read().split()[0])
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_seconds(root: int | None) -> float:
    """CPU time of a process and all its live descendants, all threads included.

    From /proc/<pid>/task/*/schedstat (nanoseconds) where the kernel has it, otherwise utime+stime
    from /proc/<pid>/stat (clock ticks, 10 ms).
    """
    if root is None:
        return 0.0
    seconds = 0.0
    for pid in _process_tree(root):
        runtime = _task_runtime_ns(pid) if SCHEDSTAT else None
        if runtime is not None:
            seconds += runtime / 1e9
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            seconds += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            continue
    return seconds


SCHEDSTAT = os.path.exists("/proc/self/schedstat")


def rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def core_busy(cpu: str) -> float:
    """Seconds core `cpu` spent busy since boot (everything but idle and iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith(f"cpu{cpu} "):
                    values = [int(v) for v in line.split()[1:9]]
                    return (sum(values) - values[3] - values[4]) / CLK_TCK
    except OSError:
        pass
    return 0.0


def _pct(part: float, whole: float) -> float:
    return round(max(0.0, part) / whole * 100, 1) if whole else 0.0


def wait_quiet(max_wait: float, threshold: float, notes: list[str]) -> float:
    """Wait (up to max_wait s) until the machine's other load is below threshold % of all cores; returns it."""
    cores = [str(c) for c in range(os.cpu_count() or 1)]
    deadline = time.monotonic() + max_wait
    waited = False
    while True:
        before, started = sum(core_busy(c) for c in cores), time.monotonic()
        time.sleep(3)
        load = _pct(sum(core_busy(c) for c in cores) - before, (time.monotonic() - started) * len(cores))
        if load < threshold or time.monotonic() >= deadline:
            break
        if not waited:
            log(f"the machine is busy ({load:.0f}% of all cores used by other processes); waiting up to {max_wait:.0f} s for it to calm down")
            waited = True
    if load >= threshold:
        notes.append(f"The machine was busy when the run started ({load:.0f}% of all cores used by other processes): "
                     "RPS and latency suffer; the 'other load' column shows how much of the gateway's core others took.")
    return load


def run_cmd(argv, *, timeout: float, env=None, cpu: str | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    argv = placed(argv, cpu)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- tools


def which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)


def ensure_tools(notes: list[str]) -> dict:
    missing = [name for name in ("nginx", "wrk") if which(name) is None]
    if missing and shutil.which("apt-get"):
        packages = [{"nginx": "nginx-light", "wrk": "wrk"}[m] for m in missing]
        log(f"installing {' '.join(packages)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            result = subprocess.run(["apt-get", "install", "-y", "-q", *packages], capture_output=True, text=True, timeout=300, env=env)
            if result.returncode != 0:
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300, env=env)
                result = subprocess.run(["apt-get", "install", "-y", "-q", *packages], capture_output=True, text=True, timeout=300, env=env)
            if result.returncode != 0 and "nginx-light" in packages:  # some releases have no nginx-light
                packages = ["nginx" if p == "nginx-light" else p for p in packages]
                subprocess.run(["apt-get", "install", "-y", "-q", *packages], capture_output=True, timeout=300, env=env)
        except (subprocess.TimeoutExpired, OSError) as exc:
            notes.append(f"apt-get failed ({exc.__class__.__name__})")
    tools = {"nginx": which("nginx"), "wrk": which("wrk")}
    if tools["nginx"] is None:
        notes.append("nginx is not installed (apt-get failed): the canned mock is the asyncio mock instead, and the nginx target is skipped.")
    if tools["wrk"] is None:
        notes.append("wrk is not installed (apt-get failed): the aiohttp client (stream_client.py) generates the load instead; its percentiles include Python client overhead.")
    return tools


def ensure_venv(venv: Path, requirement: str, probe: str, notes: list[str], timeout: float = 900) -> Path | None:
    """A separate virtual environment for a tool that must not touch the app's (LiteLLM, py-spy)."""
    binary = venv / "bin" / probe
    marker = venv / f".installed-{requirement.replace('/', '_')}"
    if binary.exists() and marker.exists():
        return binary
    log(f"installing {requirement} into {venv.relative_to(ROOT)} (once)")
    try:
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        result = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", requirement],
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode != 0:
            notes.append(f"could not install {requirement}: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'pip failed'}")
            return None
        marker.touch()
        return binary if binary.exists() else None
    except (subprocess.SubprocessError, OSError) as exc:
        notes.append(f"could not install {requirement} ({exc.__class__.__name__})")
        return None


# ---------------------------------------------------------------- mocks and gateways


def _nginx_common(name: str) -> str:
    tmp = WORK / f"{name}-tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    # As root, nginx's workers drop to `nobody`, which cannot read a checkout under a private folder
    # (a `mktemp -d` clone is 0700): the canned embeddings file then answers 403. Keep them root here.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""
{user}worker_processes 1;
daemon off;
pid {WORK / (name + '.pid')};
error_log {WORK / (name + '-error.log')} warn;
events {{ worker_connections 8192; multi_accept on; }}
"""


def _nginx_http_common(name: str) -> str:
    tmp = WORK / f"{name}-tmp"
    return f"""
    access_log off;
    client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000; keepalive_timeout 300s;
    client_body_buffer_size 64k;
"""


def nginx_quote(body: bytes) -> str:
    """A single-quoted nginx string: backslash and quote escaped, newlines as \\n; `$` would be a variable."""
    text = body.decode()
    assert "$" not in text, "nginx would read $ as a variable"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def write_mock_nginx() -> Path:
    """The canned upstream: fixed bodies for POST, keep-alive on, one worker."""
    static = WORK / "mock-static"
    static.mkdir(parents=True, exist_ok=True)
    # nginx refuses a config token over 4 KB, so the ~20 KB embedding is a file. The static module
    # answers POST with 405; error_page turns that into an internal GET of the file.
    (static / "embeddings.json").write_bytes(canned.EMBEDDINGS_RESPONSE)
    conf = WORK / "mock-nginx.conf"
    conf.write_text(_nginx_common("mock-nginx") + f"""
http {{
{_nginx_http_common("mock-nginx")}
    server {{
        listen 127.0.0.1:{PORTS['mock']} backlog=4096 reuseport;
        location = /v1/chat/completions {{ default_type application/json; return 200 {nginx_quote(canned.CHAT_RESPONSE)}; }}
        location = /v1/messages {{ default_type application/json; return 200 {nginx_quote(canned.MESSAGES_RESPONSE)}; }}
        location = /stream/v1/chat/completions {{ default_type text/event-stream; return 200 {nginx_quote(canned.STREAM_BODY)}; }}
        location = /v1/embeddings {{ error_page 405 =200 /embeddings.json; return 405; }}
        location = /embeddings.json {{ internal; root {static}; default_type application/json; etag off; }}
        location / {{ default_type application/json; return 404 {nginx_quote(canned.NOT_FOUND)}; }}
    }}
}}
""")
    return conf


def write_proxy_nginx() -> Path:
    """nginx as the compiled pass-through: proxy_pass with upstream keep-alive."""
    conf = WORK / "proxy-nginx.conf"
    conf.write_text(_nginx_common("proxy-nginx") + f"""
http {{
{_nginx_http_common("proxy-nginx")}
    upstream mock {{ server 127.0.0.1:{PORTS['mock']}; keepalive 256; keepalive_requests 10000000; }}
    upstream spaced {{ server 127.0.0.1:{PORTS['spaced']}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{PORTS['nginx']} backlog=4096 reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /spaced/ {{ proxy_pass http://spaced/; proxy_buffering off; }}
        location / {{ proxy_pass http://mock; }}
    }}
}}
""")
    return conf


def start_nginx(name: str, conf: Path, port: int, cpu: str) -> subprocess.Popen:
    proc = PROCS.start(name, [which("nginx"), "-c", str(conf), "-p", str(WORK)], cpu=cpu, rt=cpu == GATEWAY_CPU)
    if not wait_port(port, proc, 10):
        raise RuntimeError(f"{name} did not start:\n{log_tail(name)}\n{(WORK / (name + '-error.log')).read_text() if (WORK / (name + '-error.log')).exists() else ''}")
    return proc


def bench_secrets() -> dict:
    """Benchmark-only secrets, derived from fixed strings so the bench database stays decryptable across runs."""
    derive = lambda label: hashlib.sha256(f"tollgate-benchmark-{label}".encode()).digest()  # noqa: E731
    return {
        "DJANGO_SECRET_KEY": base64.urlsafe_b64encode(derive("secret") + derive("secret2")).decode().rstrip("="),
        "TOLLGATE_KEY_HASH_SECRET": derive("key-hash").hex(),
        "TOLLGATE_ENCRYPTION_KEYS": base64.urlsafe_b64encode(derive("fernet")).decode(),
    }


def tollgate_env() -> dict:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = f"{Path(PY).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(bench_secrets())
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
        "TOLLGATE_ACCEPT_VOLATILE_REDIS": "true",  # the benchmark machine's Redis runs without persistence
        "PYTEST_XDIST_WORKER": "",  # settings would move a test worker's Redis database
        "TOLLGATE_EGRESS_ALLOW_HOSTS": "127.0.0.1",
        "TOLLGATE_EGRESS_ALLOW_HTTP": "true",
        "TOLLGATE_DATA_DIR": str(WORK / "tollgate-data"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def prepare_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def flush_redis_db() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_timeout=5)
    client.flushdb()
    client.close()


class Tollgate:
    """PostgreSQL + Redis + migrate + setup through the services + uvicorn (one worker, pinned) + Celery."""

    gc_log = False
    gc_freeze = 0.0

    def __init__(self, notes: list[str], *, celery: bool = True):
        self.notes, self.celery = notes, celery
        self.proc = self.worker = None
        self.setup: dict = {}
        self.env = tollgate_env()

    def prepare(self) -> None:
        (WORK / "tollgate-data").mkdir(parents=True, exist_ok=True)
        prepare_database()
        flush_redis_db()
        result = run_cmd([PY, "manage.py", "migrate", "--noinput"], timeout=600, env=self.env)
        if result.returncode != 0:
            raise RuntimeError("manage.py migrate failed:\n" + (result.stdout + result.stderr)[-3000:])
        mock = f"http://127.0.0.1:{PORTS['mock']}"
        spaced = f"http://127.0.0.1:{PORTS['spaced']}"
        result = run_cmd([PY, str(HERE / "setup_tollgate.py"), "--mock", mock, "--spaced", spaced], timeout=120, env=self.env)
        line = next((l for l in result.stdout.splitlines() if l.startswith("SETUP ")), None)
        if result.returncode != 0 or line is None:
            raise RuntimeError("setup_tollgate.py failed:\n" + (result.stdout + result.stderr)[-3000:])
        self.setup = json.loads(line[6:])

    def start(self) -> None:
        if self.celery:
            argv = [PY, "-m", "celery", "-A", "config", "worker", "--concurrency", "1", "--beat",
                    "-s", str(WORK / "celerybeat-schedule"), "--loglevel", "WARNING", "-n", "bench@%h"]
            # Idle priority: the drain takes what the load core has to spare, so its bursts (a few thousand
            # records every 2 s) never hold up wrk or the mock; measured: c=1 p99 3.2-3.6 ms with the worker
            # at the load tools' priority, 0.9-1.1 ms with it out of the way (benchmarks/README.md).
            self.worker = PROCS.start("celery", argv, cpu=LOAD_CPU, env=self.env, idle=True)
        argv = [PY, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(PORTS["tollgate"]),
                "--workers", "1", "--loop", "uvloop", "--http", "relay.coalesce:HttpToolsProtocol", "--no-server-header", "--no-proxy-headers",
                "--no-access-log"]
        web_env = dict(self.env)
        if self.gc_log or self.gc_freeze:  # diagnostics only (benchmarks/diag/sitecustomize.py)
            web_env["PYTHONPATH"] = str(HERE / "diag")
            if self.gc_log:
                web_env["TOLLGATE_BENCH_GC_LOG"] = str(GC_LOG)
            if self.gc_freeze:
                web_env["TOLLGATE_BENCH_GC_FREEZE_AFTER"] = str(self.gc_freeze)
        self.proc = PROCS.start("tollgate", argv, cpu=GATEWAY_CPU, env=web_env, rt=True)
        if not wait_port(PORTS["tollgate"], self.proc, 60):
            raise RuntimeError("Tollgate (uvicorn) did not start:\n" + log_tail("tollgate"))

    def stop(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc, timeout=30)  # SIGTERM: lifespan shutdown flushes buffered usage records
            self.proc = None

    def stop_worker(self) -> None:
        if self.worker is not None:
            PROCS.stop(self.worker, timeout=20)
            self.worker = None

    def ledger(self, *args, timeout: float = 300, cpu: str | None = LOAD_CPU) -> dict:
        result = run_cmd([PY, str(HERE / "ledger_tool.py"), *args], timeout=timeout, env=self.env, cpu=cpu)
        tag = args[0].upper() + " "
        line = next((l for l in result.stdout.splitlines() if l.startswith(tag)), None)
        if line is None:
            raise RuntimeError(f"ledger_tool {args[0]} failed:\n" + (result.stdout + result.stderr)[-2000:])
        return json.loads(line[len(tag):])


def litellm_config() -> Path:
    mock, spaced = f"http://127.0.0.1:{PORTS['mock']}", f"http://127.0.0.1:{PORTS['spaced']}"
    models = [("bench", f"{mock}/v1"), ("bench-stream", f"{mock}/stream/v1"), ("bench-spaced", f"{spaced}/v1")]
    lines = ["model_list:"]
    for name, base in models:
        lines += [f"  - model_name: {name}", "    litellm_params:", "      model: openai/bench-upstream", f"      api_base: {base}", "      api_key: bench"]
    lines += ["general_settings:", f"  master_key: {LITELLM_MASTER_KEY}", "litellm_settings:", "  telemetry: false", ""]
    path = WORK / "litellm-config.yaml"
    path.write_text("\n".join(lines))
    return path


def start_litellm(binary: Path) -> subprocess.Popen:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR", "LITELLM_MODE": "PRODUCTION", "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true"})
    argv = [str(binary), "--config", str(litellm_config()), "--host", "127.0.0.1", "--port", str(PORTS["litellm"]), "--num_workers", "1"]
    proc = PROCS.start("litellm", argv, cpu=GATEWAY_CPU, env=env, rt=True)
    if not wait_port(PORTS["litellm"], proc, 180):
        raise RuntimeError("LiteLLM did not start:\n" + log_tail("litellm"))
    return proc


# ---------------------------------------------------------------- load


def target_routes(target: str, auth: str) -> dict:
    """Per scenario: (port, path, body) for one target."""
    if target in ("direct", "nginx"):
        port = PORTS["mock"] if target == "direct" else PORTS["nginx"]
        spaced_port, spaced_path = (PORTS["spaced"], "/v1/chat/completions") if target == "direct" else (PORTS["nginx"], "/spaced/v1/chat/completions")
        return {
            "auth": auth,
            "chat": (port, "/v1/chat/completions", canned.chat_request()),
            "stream": (port, "/stream/v1/chat/completions", canned.chat_request(stream=True)),
            "embeddings": (port, "/v1/embeddings", canned.embeddings_request()),
            "spaced": (spaced_port, spaced_path, canned.chat_request(stream=True)),
        }
    port = PORTS[target]
    return {
        "auth": auth,
        "chat": (port, "/v1/chat/completions", canned.chat_request(canned.MODEL)),
        "stream": (port, "/v1/chat/completions", canned.chat_request(canned.MODEL_STREAM, stream=True)),
        "embeddings": (port, "/v1/embeddings", canned.embeddings_request(canned.MODEL)),
        "spaced": (port, "/v1/chat/completions", canned.chat_request(canned.MODEL_SPACED, stream=True)),
        "messages": (port, "/v1/messages", canned.messages_request(canned.MODEL_MESSAGES)),
        "messages-translated": (port, "/v1/messages", canned.messages_request(canned.MODEL)),
        "responses": (port, "/v1/responses", canned.responses_request(canned.MODEL)),
    }


def probe(port: int, path: str, body: bytes, auth: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"content-type": "application/json", "authorization": auth})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_target(target: str, routes: dict, notes: list[str], *, wait: float = 0) -> dict[str, bool]:
    """One request per scenario before measuring; a scenario that does not answer 200 is skipped."""
    usable = {}
    for scenario in (*SCENARIOS, "spaced"):
        port, path, body = routes[scenario]
        deadline = time.monotonic() + wait
        while True:
            try:
                status, answer = probe(port, path, body, routes["auth"])
                ok = status == 200 and (b"data:" in answer if scenario in ("stream", "spaced") else answer.startswith(b"{"))
                detail = f"HTTP {status}: {answer[:200]!r}"
            except OSError as exc:
                ok, detail = False, f"{exc.__class__.__name__}: {exc}"
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(1)
        usable[scenario] = ok
        if not ok:
            notes.append(f"{target}/{scenario}: sanity request failed ({detail}); scenario skipped")
    return usable


WRK_LUA = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = [==[{auth}]==]
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d," ..
    "\\"status\\":%d,\\"timeout\\":%d,\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"max\\":%d,\\"mean\\":%.1f}}\\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


class Load:
    def __init__(self, tools: dict):
        self.wrk = tools.get("wrk")
        self.warmup_requests: dict[str, int] = defaultdict(int)  # per target: not measured, but relayed (and billed)

    def run(self, port: int, path: str, body: bytes, auth: str, concurrency: int, duration: float, pid: int | None) -> dict:
        """Fixed concurrency for `duration` seconds; the gateway's CPU sampled around it."""
        if self.wrk is None:
            return self.client(port, path, body, auth, concurrency, duration, pid, stream=False)
        script = WORK / "wrk.lua"
        script.write_text(WRK_LUA.format(body=body.decode(), auth=auth))
        argv = [self.wrk, "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(duration))}s", "--latency", "--timeout", "10s",
                "-s", str(script), f"http://127.0.0.1:{port}{path}"]
        argv = placed(argv, LOAD_CPU)
        cpu_before, core_before, wall_before, epoch = cpu_seconds(pid), core_busy(GATEWAY_CPU), time.monotonic(), time.time()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        time.sleep(0.25)  # buffered work of the last requests (usage flush every 0.2 s) belongs to this cell
        cpu_after, core_after, wall = cpu_seconds(pid), core_busy(GATEWAY_CPU), time.monotonic() - wall_before
        line = next((l for l in result.stdout.splitlines() if l.startswith("WRKJSON ")), None)
        if line is None:
            return {"error": (result.stdout + result.stderr)[-500:]}
        raw = json.loads(line[8:])
        elapsed = raw["duration_us"] / 1e6
        socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
        ok = raw["requests"] - raw["status"]
        return {
            "requests": raw["requests"], "ok": ok, "errors": raw["status"] + socket_errors,
            "error_detail": {k: raw[k] for k in ("status", "connect", "read", "write", "timeout")},
            "rps": raw["requests"] / elapsed if elapsed else 0,
            "p50_ms": raw["p50"] / 1000, "p90_ms": raw["p90"] / 1000, "p99_ms": raw["p99"] / 1000, "max_ms": raw["max"] / 1000,
            "cpu_s": cpu_after - cpu_before, "cpu_us_per_req": (cpu_after - cpu_before) * 1e6 / raw["requests"] if pid and raw["requests"] else None,
            "gateway_core_pct": _pct(cpu_after - cpu_before, wall) if pid else None,
            "foreign_core_pct": _pct(core_after - core_before - (cpu_after - cpu_before), wall),
            "tool": "wrk", "window": [epoch, time.time()],
        }

    def client(self, port, path, body, auth, concurrency, duration, pid, *, stream: bool, warmup: float = 0.5) -> dict:
        """stream_client.py (aiohttp): TTFT and total per request, CPU sampled between its START and RESULT lines."""
        body_file = WORK / "client-body.json"
        body_file.write_bytes(body)
        argv = [PY, str(HERE / "stream_client.py"), "--url", f"http://127.0.0.1:{port}{path}", "--body-file", str(body_file),
                "--auth", auth, "-c", str(concurrency), "-d", f"{duration:g}", "--warmup", f"{warmup:g}"]
        argv = placed(argv, LOAD_CPU)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        autogroup_nice(proc.pid)
        cpu_before = cpu_after = core_before = core_after = started = wall = None
        result = None
        deadline = time.monotonic() + duration + warmup + 90
        try:
            for line in proc.stdout:
                if line.startswith("START"):
                    cpu_before, core_before, started, epoch = cpu_seconds(pid), core_busy(GATEWAY_CPU), time.monotonic(), time.time()
                elif line.startswith("RESULT "):
                    time.sleep(0.25)
                    cpu_after, core_after = cpu_seconds(pid), core_busy(GATEWAY_CPU)
                    wall = time.monotonic() - started if started else None
                    result = json.loads(line[7:])
                if time.monotonic() > deadline:
                    break
        finally:
            if proc.poll() is None:
                proc.wait(10) if result is not None else os.killpg(proc.pid, signal.SIGKILL)
        if result is None:
            return {"error": (proc.stderr.read() if proc.stderr else "")[-500:]}
        result["cpu_s"] = (cpu_after - cpu_before) if cpu_before is not None else None
        result["cpu_us_per_req"] = result["cpu_s"] * 1e6 / result["requests"] if pid and result["requests"] and result["cpu_s"] is not None else None
        if wall and result["cpu_s"] is not None:
            result["gateway_core_pct"] = _pct(result["cpu_s"], wall) if pid else None
            result["foreign_core_pct"] = _pct(core_after - core_before - result["cpu_s"], wall)
        result["p50_ms"], result["p90_ms"], result["p99_ms"] = (result["total_ms"][k] for k in ("p50", "p90", "p99"))
        result["tool"] = "aiohttp"
        result["window"] = [epoch, time.time()] if cpu_before is not None else None
        return result


def idle_cpu(pid: int | None, seconds: float) -> float | None:
    """Share of a core the gateway uses with no traffic at all (background tasks, timers, polling)."""
    if pid is None:
        return None
    time.sleep(0.5)
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return round((cpu_seconds(pid) - before) / (time.monotonic() - started) * 100, 2)


def measure_target(target: str, routes: dict, pid: int | None, usable: dict, opts, load: Load, report: dict) -> list[dict]:
    cells = []
    if pid is not None:
        report.setdefault("idle_cpu_pct", {})[target] = idle_cpu(pid, 1 if opts.smoke else 3)
    for scenario in SCENARIOS:
        if not usable.get(scenario):
            continue
        port, path, body = routes[scenario]
        if opts.warmup > 0:
            warm = load.run(port, path, body, routes["auth"], 16, opts.warmup, None)
            load.warmup_requests[target] += warm.get("requests", 0)
        for concurrency in opts.concurrency:
            cell = load.run(port, path, body, routes["auth"], concurrency, opts.duration, pid)
            cell.update(target=target, scenario=scenario, concurrency=concurrency)
            if scenario == "stream" and cell.get("cpu_us_per_req") is not None:
                cell["cpu_us_per_chunk"] = cell["cpu_us_per_req"] / canned.STREAM_CHUNKS
            cells.append(cell)
            log(f"  {target:8} {scenario:10} c={concurrency:<3} " + _brief(cell))
    if usable.get("spaced"):
        port, path, body = routes["spaced"]
        for concurrency in opts.concurrency:
            cell = load.client(port, path, body, routes["auth"], concurrency, opts.spaced_duration, pid, stream=True, warmup=opts.spaced_warmup)
            load.warmup_requests[target] += cell.get("warmup_requests", 0)
            cell.update(target=target, scenario="spaced", concurrency=concurrency)
            if cell.get("cpu_us_per_req") is not None:
                cell["cpu_us_per_chunk"] = cell["cpu_us_per_req"] / canned.STREAM_CHUNKS
            cells.append(cell)
            log(f"  {target:8} {'spaced':10} c={concurrency:<3} " + _brief(cell))
    return cells


def _brief(cell: dict) -> str:
    if "error" in cell:
        return "FAILED " + cell["error"][:200].replace("\n", " ")
    text = f"{cell['rps']:.0f} req/s p50 {cell['p50_ms']:.2f} ms p99 {cell['p99_ms']:.2f} ms errors {cell['errors']}"
    if cell.get("ttft_ms"):
        text += f" ttft p50 {cell['ttft_ms']['p50']:.1f} ms"
    if cell.get("cpu_us_per_req") is not None:
        text += f" cpu {cell['cpu_us_per_req']:.0f} us/req"
    return text


# ---------------------------------------------------------------- the relay run


def start_mocks(tools: dict, notes: list[str]) -> None:
    for name, port in PORTS.items():
        if not port_free(port):
            raise RuntimeError(f"port {port} ({name}) is taken on 127.0.0.1: is another benchmark running?")
    if tools["nginx"]:
        start_nginx("mock-nginx", write_mock_nginx(), PORTS["mock"], LOAD_CPU)
    else:
        proc = PROCS.start("mock-asyncio", [PY, str(HERE / "mock_upstream.py"), "--port", str(PORTS["mock"])], cpu=LOAD_CPU)
        if not wait_port(PORTS["mock"], proc, 15):
            raise RuntimeError("asyncio mock did not start:\n" + log_tail("mock-asyncio"))
    proc = PROCS.start("mock-spaced", [PY, str(HERE / "mock_upstream.py"), "--port", str(PORTS["spaced"])], cpu=LOAD_CPU)
    if not wait_port(PORTS["spaced"], proc, 15):
        raise RuntimeError("spaced mock did not start:\n" + log_tail("mock-spaced"))


def start_tollgate(notes: list[str], opts, *, celery: bool = True) -> Tollgate:
    """Start Tollgate; a failure is retried (another engineer's edit in progress may break it for a while)."""
    attempts = opts.retries + 1
    for attempt in range(1, attempts + 1):
        gateway = Tollgate(notes, celery=celery)
        try:
            gateway.prepare()
            gateway.start()
            return gateway
        except Exception as exc:
            gateway.stop()
            gateway.stop_worker()
            if attempt == attempts:
                raise
            log(f"Tollgate failed to start ({str(exc).splitlines()[0][:200]}); retrying in {opts.retry_wait:g} s")
            time.sleep(opts.retry_wait)
    raise AssertionError("unreachable")


def relay_run(opts, tools: dict, notes: list[str], report: dict) -> bool:
    """Returns False when Tollgate was asked for and failed to serve."""
    tollgate_ok = True
    start_mocks(tools, notes)
    cells: list[dict] = []
    report["cells"] = cells
    load = Load(tools)
    for target in opts.only:
        log(f"target {target}")
        proc = None
        gateway = None
        try:
            if target == "direct":
                routes = target_routes("direct", "Bearer bench")
            elif target == "nginx":
                if not tools["nginx"]:
                    continue
                proc = start_nginx("proxy-nginx", write_proxy_nginx(), PORTS["nginx"], GATEWAY_CPU)
                routes = target_routes("nginx", "Bearer bench")
            elif target == "litellm":
                if opts.smoke:
                    notes.append("LiteLLM is skipped in --smoke mode (its install and start-up take minutes).")
                    continue
                binary = ensure_venv(LITELLM_VENV, f"litellm[proxy]=={LITELLM_VERSION}", "litellm", notes)
                if binary is None:
                    notes.append("LiteLLM could not be installed: skipped.")
                    continue
                proc = start_litellm(binary)
                routes = target_routes("litellm", f"Bearer {LITELLM_MASTER_KEY}")
            else:
                gateway = start_tollgate(notes, opts)
                proc = gateway.proc
                report["tollgate_setup"] = {k: v for k, v in gateway.setup.items() if k != "key"}
                routes = target_routes("tollgate", f"Bearer {gateway.setup['key']}")
            usable = check_target(target, routes, notes, wait=20 if target in ("litellm", "tollgate") else 2)
            if target == "tollgate" and not usable.get("chat"):
                tollgate_ok = False
                notes.append("Tollgate log tail:\n" + log_tail("tollgate"))
            target_cells = measure_target(target, routes, proc.pid if proc else None, usable, opts, load, report)
            cells.extend(target_cells)
            if proc is not None:
                report.setdefault("rss_mb", {})[target] = rss_mb(proc.pid)
            if target == "tollgate" and GC_LOG.exists():
                attach_gc_pauses(target_cells, report)
            if target == "tollgate":
                if not any(c.get("ok") for c in target_cells):
                    tollgate_ok = False
                report["usage"] = usage_check(gateway, target_cells, load.warmup_requests[target], opts, notes)
        except Exception as exc:
            notes.append(f"{target}: {str(exc)[:1500]}")
            log(f"{target} failed: {str(exc)[:1500]}")
            if target == "tollgate":
                tollgate_ok = False
        finally:
            if gateway is not None:
                gateway.stop()
                gateway.stop_worker()
            elif proc is not None:
                PROCS.stop(proc)
    return tollgate_ok


def attach_gc_pauses(cells: list[dict], report: dict) -> None:
    """--gc-log: full collections of the web process during each cell (count, longest and total pause)."""
    pauses = []
    for line in GC_LOG.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            pauses.append((float(parts[0]), float(parts[2])))
    for cell in cells:
        window = cell.get("window")
        if not window:
            continue
        inside = [ms for at, ms in pauses if window[0] <= at <= window[1]]
        cell["gc_full"] = {"count": len(inside), "max_ms": round(max(inside), 1) if inside else 0, "total_ms": round(sum(inside), 1)}
    report["gc_full_pauses"] = {"count": len(pauses), "max_ms": round(max((p for _, p in pauses), default=0), 1),
                                "mean_ms": round(sum(p for _, p in pauses) / len(pauses), 1) if pauses else 0}


def usage_check(gateway: Tollgate, cells: list[dict], warmups: int, opts, notes: list[str]) -> dict:
    """Stop the web process (it flushes its buffer), then see the usage rows land in the ledger."""
    gateway.stop()
    sent = sum(c.get("requests", 0) for c in cells)
    key_id = gateway.setup["key_id"]
    scheduled = gateway.setup.get("drain_scheduled") or []
    info = {"requests_measured": sent, "requests_warmup": warmups, "requests_completed": sent + warmups,
            "drain_tasks": gateway.setup.get("drain_tasks"), "drain_scheduled": scheduled}
    if scheduled:
        deadline = time.monotonic() + (20 if opts.smoke else 90)
        counted = gateway.ledger("count", "--key", str(key_id))
        while counted["stream_backlog"] and time.monotonic() < deadline:
            time.sleep(2)
            counted = gateway.ledger("count", "--key", str(key_id))
        info["drained_by"] = f"Celery ({', '.join(scheduled)})"
    else:
        counted = gateway.ledger("count", "--key", str(key_id))
        info["rows_before_manual_drain"] = counted["rows"]
        notes.append(
            "No Celery task drains the usage stream yet (config/celery.py's beat schedule has none): the Celery worker ran, "
            "and run.py drained the stream itself with billing.ledger.usage_drain to check the ledger."
        )
        drained = gateway.ledger("drain", timeout=600, cpu=GATEWAY_CPU)
        info["manual_drain"] = drained
        info["drained_by"] = "run.py (billing.ledger.usage_drain)"
        counted = gateway.ledger("count", "--key", str(key_id))
    info.update(rows=counted["rows"], rows_by_status=counted["by_status"], stream_backlog=counted["stream_backlog"])
    log(f"usage: {counted['rows']} ledger rows for the run's key; {sent + warmups} requests completed (measured {sent}, warm-up {warmups})")
    return info


# ---------------------------------------------------------------- ingest, memory, profile


def ingest_run(opts, notes: list[str], report: dict) -> None:
    gateway = Tollgate(notes, celery=False)
    gateway.prepare()
    log(f"ingest: {opts.ingest_records} synthetic usage records → Redis stream → billing.ledger.usage_drain (one process, pinned)")
    result = gateway.ledger("ingest", "--records", str(opts.ingest_records), "--organization", str(gateway.setup["organization_id"]),
                            "--key", str(gateway.setup["key_id"]), timeout=900, cpu=GATEWAY_CPU)
    report["ingest"] = result
    log(f"ingest: {result['rows']} rows in {result['drain_s']} s → {result['events_per_s']} events/s")


def memory_run(opts, tools: dict, notes: list[str], report: dict) -> bool:
    start_mocks(tools, notes)
    gateway = start_tollgate(notes, opts, celery=False)
    drainer = PROCS.start("drainer", [PY, "-c", DRAIN_LOOP], cpu=LOAD_CPU, env=gateway.env)
    load = Load(tools)
    routes = target_routes("tollgate", f"Bearer {gateway.setup['key']}")
    if not check_target("tollgate", routes, notes, wait=20).get("chat"):
        return False
    port, path, body = routes["chat"]
    checkpoints = opts.memory_checkpoints
    points, total = [], 0
    load.run(port, path, body, routes["auth"], 16, 2, None)
    points.append({"requests": 0, "rss_mb": rss_mb(gateway.proc.pid)})
    rate = None
    for checkpoint in checkpoints:
        while total < checkpoint:
            remaining = checkpoint - total
            seconds = min(30.0, max(1.0, remaining / rate * 1.02)) if rate else 3.0
            cell = load.run(port, path, body, routes["auth"], 16, seconds, gateway.proc.pid)
            if "error" in cell or not cell.get("ok"):
                notes.append(f"memory run: load failed ({cell.get('error', 'no successful response')[:200]})")
                return False
            total += cell["requests"]
            rate = cell["rps"]
            points.append({"requests": total, "rss_mb": rss_mb(gateway.proc.pid)})
            log(f"memory: {total} requests, RSS {points[-1]['rss_mb']:.1f} MB ({rate:.0f} req/s)")
    at = {c: next(p for p in points if p["requests"] >= c) for c in checkpoints}
    first, last = at[checkpoints[0]], at[checkpoints[-1]]
    report["memory"] = {
        "points": points, "checkpoints": {str(c): at[c] for c in checkpoints},
        "growth_pct": (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100,
    }
    PROCS.stop(drainer)
    gateway.stop()
    flush_redis_db()
    return True


DRAIN_LOOP = """
import os, sys, time
sys.path.insert(0, os.getcwd())
import django; django.setup()
import redis
from django.conf import settings
from billing.ledger import usage_drain
client = redis.Redis.from_url(settings.REDIS_URL)
while True:
    if usage_drain(client) == 0:
        time.sleep(0.5)
"""


def profile_run(opts, tools: dict, notes: list[str], report: dict) -> bool:
    pyspy = ensure_venv(TOOLS_VENV, f"py-spy=={PYSPY_VERSION}", "py-spy", notes)
    if pyspy is None:
        notes.append("py-spy could not be installed: no profile.")
        return False
    start_mocks(tools, notes)
    gateway = start_tollgate(notes, opts, celery=False)
    routes = target_routes("tollgate", f"Bearer {gateway.setup['key']}")
    if not check_target("tollgate", routes, notes, wait=20).get(opts.profile_scenario):
        return False
    port, path, body = routes[opts.profile_scenario]
    seconds = opts.profile_seconds
    load = Load(tools)
    load.run(port, path, body, routes["auth"], 16, 2, None)  # warm up
    raw = RESULTS / "profile-collapsed.txt"
    svg = RESULTS / "profile-flamegraph.svg"
    pid = str(gateway.proc.pid)
    common = ["--pid", pid, "--rate", str(opts.profile_rate), "--nonblocking", *([] if opts.profile_lines else ["--function"])]
    # The load runs in the background through both recordings: first the collapsed stacks (for the
    # table below), then a flame graph for people.
    wrk_proc = None
    if tools["wrk"]:
        script = WORK / "wrk.lua"
        script.write_text(WRK_LUA.format(body=body.decode(), auth=routes["auth"]))
        argv = [tools["wrk"], "-t", "1", "-c", "16", "-d", f"{round(2 * seconds + 6)}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}"]
        wrk_proc = PROCS.start("profile-wrk", argv, cpu=LOAD_CPU)
    else:
        notes.append("profile needs wrk for the background load")
        return False
    time.sleep(1)
    cpu_before, started = cpu_seconds(gateway.proc.pid), time.monotonic()
    result = run_cmd([str(pyspy), "record", *common, "--duration", f"{seconds:g}", "--format", "raw", "--output", str(raw)], timeout=seconds + 60, cpu=LOAD_CPU)
    cpu_used, wall = cpu_seconds(gateway.proc.pid) - cpu_before, time.monotonic() - started
    if result.returncode != 0 or not raw.exists():
        notes.append("py-spy record failed: " + (result.stdout + result.stderr)[-800:])
        return False
    run_cmd([str(pyspy), "record", *common, "--duration", f"{seconds:g}", "--format", "flamegraph", "--output", str(svg)], timeout=seconds + 60, cpu=LOAD_CPU)
    PROCS.stop(wrk_proc)
    report["profile"] = summarize_profile(raw, opts.top)
    report["profile"].update(scenario=opts.profile_scenario, seconds=seconds, rate=opts.profile_rate, gateway_cpu_share=cpu_used / wall if wall else None,
                             collapsed=str(raw.relative_to(ROOT)), flamegraph=str(svg.relative_to(ROOT)) if svg.exists() else None)
    gateway.stop()
    flush_redis_db()
    return True


def _frame_label(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"; paths shortened to the package or stdlib module.
    name, _, where = frame.partition(" (")
    path, _, line = where.rstrip(")").rpartition(":")
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        path = "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    else:
        path = path.replace(str(ROOT) + "/", "")
    return f"{name} ({path}:{line})" if line else f"{name} ({path or where})"


def _area(frame: str) -> str:
    label = _frame_label(frame)
    where = label.rsplit("(", 1)[-1]
    for prefix, area in (("relay/", "relay (Tollgate)"), ("accounts/", "accounts (Tollgate)"), ("keys/", "keys (Tollgate)"),
                         ("billing/", "billing (Tollgate)"), ("config/", "config (Tollgate)"), ("aiohttp/", "aiohttp"),
                         ("uvicorn/", "uvicorn"), ("redis/", "redis-py"), ("asyncio/", "asyncio"), ("stdlib", "stdlib"),
                         ("orjson", "orjson"), ("yarl/", "yarl/multidict"), ("multidict/", "yarl/multidict"), ("bpe_openai", "tokenizer")):
        if where.startswith(prefix) or f"/{prefix}" in where:
            return area
    return "other"


ENTRY_FRAMES = ("<frozen runpy>", "click/", "uvicorn/main.py", "uvicorn/_compat.py", "uvicorn/server.py", "uvicorn/__main__.py",
                "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py")
LOOP_LABEL = "(event loop: uvloop/httptools C code, no Python frame)"


def summarize_profile(path: Path, top: int) -> dict:
    self_counts, total_counts, area_self = defaultdict(int), defaultdict(int), defaultdict(int)
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += n
        leaf = _frame_label(frames[-1])
        if any(marker in leaf for marker in ("asyncio/runners.py", "asyncio/base_events.py")):
            leaf = LOOP_LABEL  # the loop is uvloop: time in its C code shows as the Python frame that called it
        self_counts[leaf] += n
        if leaf == LOOP_LABEL:
            total_counts[leaf] += n
        area_self["event loop (C)" if leaf == LOOP_LABEL else _area(frames[-1])] += n
        for label in {_frame_label(f) for f in frames}:
            if not any(marker in label for marker in ENTRY_FRAMES):
                total_counts[label] += n
    pct = lambda n: round(100 * n / samples, 1) if samples else 0  # noqa: E731
    return {
        "samples": samples,
        "top_self": [{"function": f, "self_pct": pct(n), "total_pct": pct(total_counts[f])} for f, n in sorted(self_counts.items(), key=lambda i: -i[1])[:top]],
        "top_total": [{"function": f, "total_pct": pct(n)} for f, n in sorted(total_counts.items(), key=lambda i: -i[1])[:top]],
        "areas": {a: pct(n) for a, n in sorted(area_self.items(), key=lambda i: -i[1])},
    }


# ---------------------------------------------------------------- report


def machine_info(tools: dict) -> dict:
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), None)

    def version(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    from importlib import metadata

    packages = {}
    for name in ("uvicorn", "uvloop", "httptools", "aiohttp", "orjson", "redis", "Django", "celery"):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_mb": mem, "kernel": platform.release(), "python": platform.python_version(),
        "nginx": version([tools["nginx"], "-v"]) if tools.get("nginx") else None, "wrk": version([tools["wrk"], "-v"]) if tools.get("wrk") else None,
        "litellm": LITELLM_VERSION, "packages": packages, "commit": commit, "dirty_files": len(dirty.splitlines()) if dirty else 0,
        "pinned": (f"gateway on CPU {GATEWAY_CPU}{' (SCHED_FIFO)' if RT else ''}, mocks and load on CPU {LOAD_CPU}" if PIN else "no pinning (fewer than 2 cores)")
                  + (f", benchmark processes at nice {NICE}" if NICE else ""),
        "loadavg_start": os.getloadavg(),
    }


def _f(value, digits=1, suffix=""):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value:,}{suffix}"


def _core(cell: dict) -> str:
    if cell["target"] == "direct":
        return "—"  # no gateway: the core is idle and others may use it
    return f"{_f(cell.get('gateway_core_pct'), 0)} / {_f(cell.get('foreign_core_pct'), 0)}"


def render(report: dict) -> str:
    out = []
    m = report["machine"]
    out.append(f"# Tollgate benchmark ({report['mode']}, {report['started']})\n")
    out.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mb']} MB, Linux {m['kernel']}, Python {m['python']}; {m['pinned']}. "
               f"{m.get('nginx') or 'no nginx'}; {m.get('wrk') or 'no wrk'}; LiteLLM {m['litellm']}; commit {m['commit']}"
               f"{' (+%d modified files)' % m['dirty_files'] if m['dirty_files'] else ''}. Load average at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}.\n")
    if report["command"] != "pages":
        out.append(f"Each cell: {report['settings']['duration']:g} s at fixed concurrency (wrk, 1 thread); streaming TTFT cells {report['settings']['spaced_duration']:g} s (aiohttp client).\n")
    cells = report.get("cells") or []
    base = {(c["scenario"], c["concurrency"]): c for c in cells if c["target"] == "direct" and "error" not in c}
    peer = {(c["scenario"], c["concurrency"]): c for c in cells if c["target"] == "litellm" and "error" not in c}
    order = {t: i for i, t in enumerate(TARGETS)}
    rows = sorted((c for c in cells if c["scenario"] in SCENARIOS), key=lambda c: (SCENARIOS.index(c["scenario"]), c["concurrency"], order[c["target"]]))
    if rows:
        out.append("## Relay: requests through each target\n")
        out.append("| scenario | c | target | RPS | p50 ms | p90 ms | p99 ms | errors | CPU µs/req | +p50 vs direct ms | +p99 vs direct ms | CPU: LiteLLM ÷ this | RPS: this ÷ LiteLLM | gw core: gateway / others % |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in rows:
            key = (c["scenario"], c["concurrency"])
            if "error" in c:
                out.append(f"| {c['scenario']} | {c['concurrency']} | {c['target']} | failed | | | | | | | | | | |")
                continue
            b, p = base.get(key), peer.get(key)
            over50 = c["p50_ms"] - b["p50_ms"] if b and c["target"] != "direct" else None
            over99 = c["p99_ms"] - b["p99_ms"] if b and c["target"] != "direct" else None
            cpu_ratio = p["cpu_us_per_req"] / c["cpu_us_per_req"] if p and p.get("cpu_us_per_req") and c.get("cpu_us_per_req") else None
            rps_ratio = c["rps"] / p["rps"] if p and p.get("rps") and c["target"] not in ("direct",) else None
            cpu = c.get("cpu_us_per_req")
            cpu_text = _f(cpu, 0) if cpu is not None else "—"
            if c["scenario"] == "stream" and c.get("cpu_us_per_chunk") is not None:
                cpu_text += f" ({c['cpu_us_per_chunk']:.0f}/chunk)"
            out.append(f"| {c['scenario']} | {c['concurrency']} | {c['target']} | {_f(c['rps'], 0)} | {_f(c['p50_ms'], 2)} | {_f(c['p90_ms'], 2)} | "
                       f"{_f(c['p99_ms'], 2)} | {c['errors']} | {cpu_text} | {_f(over50, 2)} | {_f(over99, 2)} | "
                       f"{_f(cpu_ratio, 1, '×') if c['target'] != 'litellm' else '1×'} | {_f(rps_ratio, 1, '×') if c['target'] != 'litellm' else '1×'} | "
                       f"{_core(c)} |")
        out.append(f"\n`stream`: the canned upstream answers {canned.STREAM_CHUNKS} SSE chunks (+[DONE]) in one write; CPU per chunk = CPU per request ÷ {canned.STREAM_CHUNKS}. "
                   "`embeddings`: a 1536-dimension answer (~18 KB). CPU: utime+stime of the gateway's processes (/proc), divided by requests completed; "
                   "direct has no gateway. Last column: share of the gateway's core used by the gateway, and by other processes "
                   "(the machine is shared; above a few % the RPS and latency of that row are depressed).\n")
    spaced = sorted((c for c in cells if c["scenario"] == "spaced"), key=lambda c: (c["concurrency"], order[c["target"]]))
    if spaced:
        sbase = {c["concurrency"]: c for c in spaced if c["target"] == "direct" and "error" not in c}
        out.append(f"## Streaming: time to first token (upstream: first event after {canned.SPACED_TTFT_MS} ms, then one every {canned.SPACED_GAP_MS} ms, {canned.STREAM_CHUNKS} chunks)\n")
        out.append("| c | target | streams/s | TTFT p50 ms | TTFT p99 ms | +TTFT p50 ms | +TTFT p99 ms | total p50 ms | total p99 ms | errors | CPU µs/stream | CPU µs/chunk | gw core: gateway / others % |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for c in spaced:
            if "error" in c:
                out.append(f"| {c['concurrency']} | {c['target']} | failed | | | | | | | | | | |")
                continue
            b = sbase.get(c["concurrency"])
            add50 = c["ttft_ms"]["p50"] - b["ttft_ms"]["p50"] if b and c["target"] != "direct" and c["ttft_ms"]["p50"] is not None else None
            add99 = c["ttft_ms"]["p99"] - b["ttft_ms"]["p99"] if b and c["target"] != "direct" and c["ttft_ms"]["p99"] is not None else None
            out.append(f"| {c['concurrency']} | {c['target']} | {_f(c['rps'], 1)} | {_f(c['ttft_ms']['p50'], 2)} | {_f(c['ttft_ms']['p99'], 2)} | "
                       f"{_f(add50, 2)} | {_f(add99, 2)} | {_f(c['total_ms']['p50'], 1)} | {_f(c['total_ms']['p99'], 1)} | {c['errors']} | "
                       f"{_f(c.get('cpu_us_per_req'), 0)} | {_f(c.get('cpu_us_per_chunk'), 1)} | {_core(c)} |")
        out.append("")
    if report.get("idle_cpu_pct"):
        out.append("Idle CPU (no traffic, % of one core): " + ", ".join(f"{t} {v}%" for t, v in report["idle_cpu_pct"].items())
                   + ". At low request rates this idle work is part of every request's CPU figure (see c=1 and the spaced streams).\n")
    if report.get("rss_mb"):
        out.append("RSS after the cells (MB): " + ", ".join(f"{t} {v:.0f}" for t, v in report["rss_mb"].items() if v) + ".\n")
    headline = headline_rows(report)
    if headline:
        out.append("## Against the targets (issue #7: one web process on one core, c=16, non-streaming)\n")
        out.append("| measure | target | measured | |")
        out.append("|---|---|---:|---|")
        out.extend(headline)
        out.append("")
    if report.get("gc_full_pauses"):
        g = report["gc_full_pauses"]
        per_cell = "; ".join(f"{c['scenario']} c={c['concurrency']}: {c['gc_full']['count']} (max {c['gc_full']['max_ms']} ms)"
                             for c in cells if c.get("gc_full"))
        out.append(f"Full (generation 2) garbage collections in the Tollgate web process (--gc-log): {g['count']} in all, "
                   f"mean pause {g['mean_ms']} ms, longest {g['max_ms']} ms. Per cell: {per_cell}.\n")
    if report.get("usage"):
        u = report["usage"]
        out.append(f"Usage ledger: **{u['rows']:,} rows** for the run's virtual key (by status {u['rows_by_status']}) for "
                   f"**{u['requests_completed']:,} requests completed** ({u['requests_measured']:,} measured, {u['requests_warmup']:,} warm-up); "
                   "requests cut off when a cell ends also make rows (499, or 200 when the gateway finished them). "
                   f"Drained into PostgreSQL by {u.get('drained_by')}; {u['stream_backlog']} records left in the stream.\n")
    if report.get("ingest"):
        i = report["ingest"]
        out.append(f"Usage ingestion: {i['rows']:,} records drained from the Redis stream into PostgreSQL by one process in {i['drain_s']} s: "
                   f"**{_f(i['events_per_s'], 0)} events/s** (billing.ledger.usage_drain, one stream entry per 500 records, 20 entries per transaction).\n")
    if report.get("memory"):
        mem = report["memory"]
        points = ", ".join(f"{int(k):,} → {v['rss_mb']:.1f} MB" for k, v in mem["checkpoints"].items())
        out.append(f"Memory (RSS of the uvicorn worker): {points}; growth {mem['growth_pct']:.1f}% between the checkpoints.\n")
    if report.get("profile"):
        p = report["profile"]
        out.append(f"## Profile (py-spy, {p['rate']} Hz, {p['seconds']:g} s, {p['scenario']} at c=16, {p['samples']:,} samples; gateway CPU busy {_f((p.get('gateway_cpu_share') or 0) * 100, 0)}%)\n")
        out.append("| function | self % | total % |")
        out.append("|---|---:|---:|")
        for row in p["top_self"]:
            out.append(f"| `{row['function']}` | {row['self_pct']} | {row['total_pct']} |")
        out.append("\nSelf time by area: " + ", ".join(f"{a} {v}%" for a, v in p["areas"].items()) + "\n")
        out.append("| function (inclusive) | total % |")
        out.append("|---|---:|")
        for row in p["top_total"]:
            out.append(f"| `{row['function']}` | {row['total_pct']} |")
        out.append("")
    out.extend(render_pages(report))
    if report.get("notes"):
        out.append("Notes:\n")
        out.extend(f"- {n}" for n in report["notes"])
        out.append("")
    return "\n".join(out)


def headline_rows(report: dict) -> list[str]:
    cells = [c for c in report.get("cells") or [] if "error" not in c]
    get = lambda t, s, c: next((x for x in cells if x["target"] == t and x["scenario"] == s and x["concurrency"] == c), None)  # noqa: E731
    rows = []
    tg, lt, ng = get("tollgate", "chat", 16), get("litellm", "chat", 16), get("nginx", "chat", 16)

    def mark(ok):
        return "met" if ok else "**missed**"

    if tg and tg.get("cpu_us_per_req") is not None:
        rows.append(f"| CPU per relayed request | ≤ 250 µs | {tg['cpu_us_per_req']:.0f} µs (nginx {_f(ng and ng.get('cpu_us_per_req'), 0)}, LiteLLM {_f(lt and lt.get('cpu_us_per_req'), 0)}) | {mark(tg['cpu_us_per_req'] <= 250)} |")
    if tg and lt:
        ratio = tg["rps"] / lt["rps"] if lt["rps"] else None
        rows.append(f"| throughput vs LiteLLM | ≥ 40× | {_f(ratio, 1, '×')} ({tg['rps']:.0f} vs {lt['rps']:.0f} req/s) | {mark(ratio and ratio >= 40)} |")
    t1, d1 = get("tollgate", "chat", 1), get("direct", "chat", 1)
    if t1 and d1:
        add50, add99 = t1["p50_ms"] - d1["p50_ms"], t1["p99_ms"] - d1["p99_ms"]
        rows.append(f"| added latency c=1, p50 | ≤ 0.5 ms | {add50:.2f} ms | {mark(add50 <= 0.5)} |")
        rows.append(f"| added latency c=1, p99 | ≤ 1.5 ms | {add99:.2f} ms | {mark(add99 <= 1.5)} |")
    ts, ds = get("tollgate", "spaced", 16), get("direct", "spaced", 16)
    if ts and ds and ts["ttft_ms"]["p50"] is not None:
        add = ts["ttft_ms"]["p50"] - ds["ttft_ms"]["p50"]
        rows.append(f"| added TTFT p50, c=16 | ≤ 1 ms | {add:.2f} ms | {mark(add <= 1)} |")
    burst = get("tollgate", "stream", 16)
    if ts and ts.get("cpu_us_per_chunk") is not None:
        also = f"; canned burst stream {burst['cpu_us_per_chunk']:.1f} µs" if burst and burst.get("cpu_us_per_chunk") is not None else ""
        nginx_spaced = get("nginx", "spaced", 16)
        peer = f"; nginx {nginx_spaced['cpu_us_per_chunk']:.1f} µs" if nginx_spaced and nginx_spaced.get("cpu_us_per_chunk") is not None else ""
        rows.append(f"| CPU per forwarded chunk (CPU per stream ÷ {canned.STREAM_CHUNKS}) | ≤ 40 µs | {ts['cpu_us_per_chunk']:.1f} µs (spaced stream, c=16{also}{peer}) | {mark(ts['cpu_us_per_chunk'] <= 40)} |")
    elif burst and burst.get("cpu_us_per_chunk") is not None:
        rows.append(f"| CPU per forwarded chunk | ≤ 40 µs | {burst['cpu_us_per_chunk']:.1f} µs (canned burst stream, c=16) | {mark(burst['cpu_us_per_chunk'] <= 40)} |")
    if report.get("ingest"):
        eps = report["ingest"]["events_per_s"] or 0
        rows.append(f"| usage ingestion, one worker | ≥ 20,000 events/s | {eps:,.0f} events/s | {mark(eps >= 20000)} |")
    if report.get("memory"):
        growth = report["memory"]["growth_pct"]
        rows.append(f"| RSS growth between checkpoints | < 10% | {growth:.1f}% | {mark(growth < 10)} |")
    return rows


# ---------------------------------------------------------------- dashboard pages

PAGES_DB = "tollgate_bench_pages"  # its own database: 10M rows are kept between runs (--quick: PAGES_DB + "_quick")
PAGES_REDIS_DB = 11
PAGES_PORT = 18086
PAGES_TARGET_MS = 100  # the issue: overview page p95 < 100 ms at 10M usage rows


def pages_run(opts, notes: list[str], report: dict) -> bool:
    """benchmarks/pages.py fills the ledger (once; kept between runs), then times the pages over HTTP against
    one production-style uvicorn worker pinned to its core, logged in through the login form."""
    import psycopg

    database = PAGES_DB + ("" if opts.mode == "full" else "_quick")
    env = tollgate_env()
    env.update({
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}", "REDIS_URL": f"redis://127.0.0.1:6379/{PAGES_REDIS_DB}",
        "TOLLGATE_DATA_DIR": str(WORK / "pages-data"),
    })
    (WORK / "pages-data").mkdir(parents=True, exist_ok=True)
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=5) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    result = run_cmd([PY, "manage.py", "migrate", "--noinput"], timeout=1800, env=env)
    if result.returncode != 0:
        raise RuntimeError("manage.py migrate failed:\n" + (result.stdout + result.stderr)[-3000:])
    result = run_cmd([PY, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"], timeout=600, env=env)  # as `make prod`
    if result.returncode != 0:
        raise RuntimeError("manage.py collectstatic failed:\n" + (result.stdout + result.stderr)[-3000:])
    tool = str(HERE / "pages.py")

    def step(tag: str, argv: list[str], timeout: float, cpu: str | None = None) -> dict:
        proc = subprocess.run(placed([PY, tool, *argv], cpu), stdout=subprocess.PIPE, text=True, timeout=timeout, env=env, cwd=ROOT,
                              stdin=subprocess.DEVNULL)  # progress goes to stderr, straight to the terminal
        line = next((l for l in proc.stdout.splitlines() if l.startswith(tag + " ")), None)
        if proc.returncode != 0 or line is None:
            raise RuntimeError(f"pages.py {argv[0]} failed:\n{proc.stdout[-2000:]}")
        return json.loads(line[len(tag) + 1:])

    log(f"pages: ledger of {opts.pages_rows:,} usage rows in {database} (generated once, then reused)")
    generated = step("GENERATE", ["generate", "--rows", str(opts.pages_rows), *(["--regenerate"] if opts.regenerate else [])], 4 * 3600)
    log("pages: " + (f"generated in {generated['total_s']} s" if generated["generated"] else f"reusing {generated['rows']:,} rows"))
    argv = [PY, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(PAGES_PORT),  # as the Procfile
            "--workers", "1", "--loop", "uvloop", "--http", "relay.coalesce:HttpToolsProtocol", "--no-server-header", "--no-proxy-headers", "--no-access-log"]
    web = PROCS.start("pages-web", argv, cpu=GATEWAY_CPU, env=env, rt=True)
    if not wait_port(PAGES_PORT, web, 60):
        raise RuntimeError("uvicorn did not start:\n" + log_tail("pages-web"))
    try:
        log(f"pages: {opts.pages_requests} requests per page after {opts.pages_warmup} warm-up, one at a time")
        measured = step("MEASURE", ["measure", "--url", f"http://127.0.0.1:{PAGES_PORT}", "--requests", str(opts.pages_requests),
                                    "--warmup", str(opts.pages_warmup)], 3600, cpu=LOAD_CPU)
    finally:
        PROCS.stop(web, timeout=30)
    report["pages"] = {"database": database, "generate": generated, **measured, "requests": opts.pages_requests, "warmup": opts.pages_warmup,
                       "server": "uvicorn config.asgi:application, 1 worker, DJANGO_DEBUG=false, PostgreSQL + Redis, pinned to CPU "
                                 f"{GATEWAY_CPU}" if PIN else "uvicorn config.asgi:application, 1 worker, DJANGO_DEBUG=false"}
    return all(set(p["statuses"]) == {200} for p in measured["pages"])


def render_pages(report: dict) -> list[str]:
    p = report.get("pages")
    if not p:
        return []
    g = p["generate"]
    made = (f"generated in {g['total_s']:g} s (events {g['events_s']:g} s, rollups {g['rollups_s']:g} s, indexes {g['indexes_s']:g} s, "
            f"vacuum/analyze {g['vacuum_s']:g} s; {g['hour_rollups']:,} hourly and {g['day_rollups']:,} daily rollup rows; "
            f"ledger {g['events_mb']:,} MB)") if g["generated"] else "reused from an earlier run"
    out = [f"## Dashboard pages ({g['rows']:,} usage rows over 90 days for the organization, {g['other_rows']:,} for a second one)\n",
           f"Ledger {made}. Server: {p['server']}. Client: {p['client']}; {p['requests']} timed requests per page after "
           f"{p['warmup']} warm-up, logged in through the login form.\n",
           "| page | p50 ms | p95 ms | max ms | HTTP | |", "|---|---:|---:|---:|---|---|"]
    for row in p["pages"]:
        mark = ""
        if row["page"] == "overview (admin)":
            mark = f"target p95 < {PAGES_TARGET_MS} ms: " + ("met" if row["p95_ms"] < PAGES_TARGET_MS else "**missed**")
        out.append(f"| {row['page']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['max_ms']:.1f} | {', '.join(map(str, row['statuses']))} | {mark} |")
    out.append("")
    return out


# ---------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Tollgate benchmark suite (benchmarks/README.md)")
    parser.add_argument("command", nargs="?", default="all", choices=("all", "relay", "ingest", "memory", "profile", "pages"))
    parser.add_argument("--smoke", action="store_true", help="seconds: c=16 only, 1 s cells, no LiteLLM; never fails on thresholds")
    parser.add_argument("--quick", action="store_true", help="3 s cells")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets: " + ",".join(TARGETS))
    parser.add_argument("--duration", type=float, help="seconds per cell (default 10; --quick 3; --smoke 1)")
    parser.add_argument("--concurrency", help="comma-separated (default 1,16,64; --smoke 16)")
    parser.add_argument("--ingest-records", type=int, help="default 100000 (--quick 20000, --smoke 2000)")
    parser.add_argument("--profile-seconds", type=float, help="default 15 (--quick 8)")
    parser.add_argument("--profile-scenario", default="chat", choices=(*SCENARIOS,))
    parser.add_argument("--profile-rate", type=int, default=250)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--profile-lines", action="store_true", help="profile by line instead of by function")
    parser.add_argument("--gc-log", action="store_true", help="diagnostic: log the Tollgate web process's full GC pauses per cell")
    parser.add_argument("--gc-freeze", type=float, default=0, help="experiment: gc.freeze() in the web process this many s after start")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help=f"Redis database the benchmark owns and flushes (default {REDIS_DB})")
    parser.add_argument("--rt", action=argparse.BooleanOptionalAction, default=None,
                        help="run the gateway under test SCHED_FIFO on its core (default: on, except --smoke; needs root)")
    parser.add_argument("--nice", type=int, default=-10, help="niceness of the benchmark's processes (0: leave as is)")
    parser.add_argument("--quiet-wait", type=float, help="seconds to wait for other load to calm down first (default 45; --smoke 0)")
    parser.add_argument("--retries", type=int, help="Tollgate start-up retries (default 3; --smoke 1)")
    parser.add_argument("--retry-wait", type=float, help="seconds between retries (default 60; --smoke 10)")
    parser.add_argument("--pages-rows", type=int, help="pages: usage rows of the organization (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--pages-requests", type=int, default=50, help="pages: timed requests per page")
    parser.add_argument("--regenerate", action="store_true", help="pages: generate the ledger again even when it is there")
    opts = parser.parse_args(argv)
    mode = "smoke" if opts.smoke else "quick" if opts.quick else "full"
    opts.pages_rows = opts.pages_rows or (10_000_000 if mode == "full" else 1_000_000)
    opts.pages_warmup = 5
    opts.mode = mode
    opts.duration = opts.duration or {"smoke": 1, "quick": 3, "full": 10}[mode]
    opts.concurrency = [int(c) for c in (opts.concurrency or ("16" if opts.smoke else "1,16,64")).split(",")]
    opts.warmup = {"smoke": 0.5, "quick": 1, "full": 1}[mode]
    opts.spaced_duration = min(opts.duration, 4)
    opts.spaced_warmup = 0.3 if opts.smoke else 0.5
    opts.ingest_records = opts.ingest_records or {"smoke": 2000, "quick": 20000, "full": 100_000}[mode]
    opts.memory_checkpoints = [10_000, 100_000] if mode != "full" else [100_000, 1_000_000]
    opts.profile_seconds = opts.profile_seconds or (8 if mode != "full" else 15)
    opts.retries = opts.retries if opts.retries is not None else (1 if opts.smoke else 3)
    opts.retry_wait = opts.retry_wait if opts.retry_wait is not None else (10 if opts.smoke else 60)
    opts.quiet_wait = opts.quiet_wait if opts.quiet_wait is not None else (0 if opts.smoke else 45)
    opts.only = [t.strip() for t in opts.only.split(",") if t.strip()]
    unknown = set(opts.only) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return opts


def main(argv=None) -> int:
    global NICE, RT, REDIS_DB
    opts = parse_args(argv)
    REDIS_DB = opts.redis_db
    RT = (opts.rt if opts.rt is not None else not opts.smoke) and os.geteuid() == 0 and PIN
    Tollgate.gc_log, Tollgate.gc_freeze = opts.gc_log, opts.gc_freeze
    NICE = opts.nice if os.geteuid() == 0 or opts.nice >= 0 else 0
    autogroup_nice()  # wrk and the helpers run in this script's session
    signal.signal(signal.SIGTERM, _on_signal)
    if PIN:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # this script and its helpers stay off the gateway's core
    RESULTS.mkdir(parents=True, exist_ok=True)
    if WORK.exists():
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    notes: list[str] = []
    started = time.time()
    tools = ensure_tools(notes)
    report = {
        "mode": opts.mode, "command": opts.command, "experiments": {"gc_log": opts.gc_log, "gc_freeze_after_s": opts.gc_freeze}, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "settings": {"duration": opts.duration, "concurrency": opts.concurrency, "spaced_duration": opts.spaced_duration,
                     "warmup": opts.warmup, "targets": opts.only},
        "machine": machine_info(tools), "notes": notes,
    }
    ok = True
    try:
        if opts.quiet_wait > 0:
            report["machine"]["other_load_pct_at_start"] = wait_quiet(opts.quiet_wait, 15, notes)
        if opts.command in ("all", "relay"):
            ok = relay_run(opts, tools, notes, report) and ok
        if opts.command in ("all", "ingest") and ("tollgate" in opts.only or opts.command == "ingest"):
            try:
                ingest_run(opts, notes, report)
            except Exception as exc:
                notes.append(f"ingest: {str(exc)[:1000]}")
                ok = ok and opts.command != "ingest"
        if opts.command == "memory":
            ok = memory_run(opts, tools, notes, report)
        if opts.command == "profile":
            ok = profile_run(opts, tools, notes, report)
        if opts.command == "pages":
            ok = pages_run(opts, notes, report)
    except KeyboardInterrupt:
        notes.append("interrupted")
        ok = False
        log("interrupted; stopping everything")
    except Exception as exc:
        notes.append(f"run failed: {str(exc)[:2000]}")
        log(f"run failed: {exc}")
        ok = False
    finally:
        PROCS.stop_all()
    report["elapsed_s"] = round(time.time() - started, 1)
    report["machine"]["loadavg_end"] = os.getloadavg()
    name = {"full": "latest", "quick": "latest-quick", "smoke": "latest-smoke"}[opts.mode]
    if opts.command != "all":
        name += f"-{opts.command}"
    if opts.command in ("all", "relay") and set(opts.only) != set(TARGETS):
        name += "-" + "+".join(opts.only)
    if "interrupted" in notes:
        name += "-interrupted"  # never overwrite a finished table with a cut-off one
    if opts.gc_freeze:
        name += "-gcfreeze"
    elif opts.gc_log:
        name += "-gclog"
    text = render(report) + f"\nTotal time {report['elapsed_s']:.0f} s.\n"
    (RESULTS / f"{name}.md").write_text(text)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
    print()
    print(text)
    log(f"wrote {(RESULTS / (name + '.md')).relative_to(ROOT)} and .json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
