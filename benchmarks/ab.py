"""A/B of Tollgate's web process variants, side by side: the same mocks, key and load, cells alternating
A, B, A, B… so a noisy machine weighs on both alike. Prints one line per cell and the medians.

    python benchmarks/ab.py                                  # httptools vs coalesce, chat c=16, 3 rounds
    python benchmarks/ab.py --variants coalesce --drain load,idle --concurrency 1
    python benchmarks/ab.py --variants coalesce --drain none --scenario chat,messages,messages-translated,responses

Variants: `httptools` (uvicorn's own protocol), `coalesce` (relay.coalesce, what the Procfile runs),
`nometrics` (coalesce with the Prometheus metrics off: `--variants coalesce,nometrics` prices them),
`traces` (coalesce exporting OpenTelemetry traces to a local OTLP sink that discards them:
`--variants coalesce,traces` prices tracing),
`cached` (coalesce with the key's response cache on at any temperature: after the warm-up's first
request every request is a cache hit, so `--variants coalesce,cached` compares the hit path with the
relayed one; README "Response cache"),
`granian` (the Granian server instead of uvicorn, one worker on uvloop; installed by hand for the
comparison: `--variants coalesce,granian`), `baseline` (the Procfile's process served from another checkout,
`--baseline-tree`, on the same database: `--variants baseline,coalesce --drain none` compares a change with
the commit before it; the tree's code must read the current schema).
`--drain`: where the Celery worker that drains usage runs: `idle` (core 0 at idle priority, as run.py
does), `load` (core 0 at the load tools' priority) or `none` (no worker; usage waits in the stream).
`--scenario`: one or several, comma-separated, measured one after the other on the same web process in
every cell (side by side): run.py's `chat`, `stream`, `embeddings`, `spaced`, and the gateway-only
`messages` (/v1/messages to an Anthropic-format deployment: passed through), `messages-translated`
(/v1/messages to an OpenAI-format deployment: translated to chat and back) and `responses` (/v1/responses
to an OpenAI-format deployment); all with chat's conversation and the same canned answer's text and usage.
Uses run.py's machinery with its own ports, database (`tollgate_bench_ab`) and Redis database (9).
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

run.BENCH_DB, run.REDIS_DB = "tollgate_bench_ab", 9
run.WORK = run.RESULTS / "work-ab"
run.PORTS.update({name: port + 1000 for name, port in run.PORTS.items()})

UVICORN = [run.PY, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--workers", "1", "--loop", "uvloop",
           "--no-access-log", "--no-server-header", "--no-proxy-headers"]
VARIANTS = {"httptools": ["--http", "httptools"], "coalesce": ["--http", "relay.coalesce:HttpToolsProtocol"]}
VARIANTS["nometrics"] = VARIANTS["coalesce"]  # the Procfile's process with TOLLGATE_METRICS=false
VARIANTS["traces"] = VARIANTS["coalesce"]  # with TOLLGATE_OTLP_ENDPOINT set (relay/tracing.py)
VARIANT_ENV = {"nometrics": {"TOLLGATE_METRICS": "false"}}
VARIANTS["cached"] = VARIANTS["coalesce"]  # the Procfile's process, the key's response cache on
VARIANTS["baseline"] = VARIANTS["coalesce"]  # the Procfile's process from --baseline-tree (an earlier commit)
# Granian (a Rust HTTP server) in place of uvicorn, one worker on uvloop: not a dependency of Tollgate,
# install it to compare (`.venv/bin/pip install granian==2.8.7`).
GRANIAN = [str(Path(run.PY).parent / "granian"), "--interface", "asgi", "config.asgi:application", "--host", "127.0.0.1",
           "--workers", "1", "--loop", "uvloop", "--runtime-mode", "st", "--no-ws", "--log-level", "warning"]


def server_argv(variant: str, port: int) -> list[str]:
    if variant == "granian":
        if not Path(GRANIAN[0]).exists():
            raise SystemExit("the granian variant needs granian: .venv/bin/pip install granian==2.8.7")
        return [*GRANIAN, "--port", str(port)]
    return [*UVICORN, "--port", str(port), *VARIANTS[variant]]
SCENARIOS = (*run.SCENARIOS, "spaced", *run.GATEWAY_SCENARIOS)


def set_key_cache(gateway, on: bool) -> None:
    """Turn the benchmark key's response cache on or off (read by the web process at its start)."""
    code = (f"from keys.models import VirtualKey; VirtualKey.objects.filter(pk={gateway.setup['key_id']})"
            f".update(response_cache={on}, cache_any_temperature={on})")
    result = run.run_cmd([run.PY, "manage.py", "shell", "-c", code], timeout=120, env=gateway.env)
    if result.returncode:
        raise RuntimeError(result.stdout + result.stderr)


def otlp_sink() -> str:
    """An OTLP/HTTP endpoint on loopback that accepts every export and keeps nothing (for `traces`)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def check(routes: dict, scenario: str) -> None:
    """One request before measuring: a scenario the gateway refuses fails the run with its answer."""
    port, path, body = routes[scenario]
    status, answer = run.probe(port, path, body, routes["auth"])
    if status != 200:
        raise RuntimeError(f"{scenario}: HTTP {status} from {path}: {answer[:300]!r}")


def measure(load: run.Load, routes: dict, opts, scenario: str, pid: int) -> dict:
    port, path, body = routes[scenario]
    if scenario == "spaced":
        cell = load.client(port, path, body, routes["auth"], opts.concurrency, opts.seconds, pid, stream=True, warmup=1)
        cell["ttft_p50_ms"] = cell["ttft_ms"]["p50"]
        return cell
    load.run(port, path, body, routes["auth"], opts.concurrency, 2, None)  # warm-up
    return load.run(port, path, body, routes["auth"], opts.concurrency, opts.seconds, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="httptools,coalesce")
    parser.add_argument("--drain", default="idle", help="comma-separated: idle, load, none")
    parser.add_argument("--scenario", default="chat", help="comma-separated: " + ", ".join(SCENARIOS))
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared", action="store_true", help="a machine others use: no real-time priority, no nice boost")
    parser.add_argument("--baseline-tree", type=Path, help="for the `baseline` variant: a checkout of an earlier commit "
                        "(git worktree add /tmp/base <commit>), served as the Procfile does, from that tree")
    opts = parser.parse_args()
    scenarios = [s.strip() for s in opts.scenario.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if "baseline" in opts.variants.split(",") and not (opts.baseline_tree and (opts.baseline_tree / "manage.py").exists()):
        parser.error("the baseline variant needs --baseline-tree, a checkout of the commit to compare with")
    if unknown or not scenarios:
        parser.error(f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}")
    run.RT = os.geteuid() == 0 and run.PIN and not opts.shared
    run.NICE = -10 if os.geteuid() == 0 and not opts.shared else 0
    if run.PIN:
        os.sched_setaffinity(0, {int(run.LOAD_CPU)})
    run.WORK.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    tools = run.ensure_tools(notes)
    cases = [(variant, drain) for variant in opts.variants.split(",") for drain in opts.drain.split(",")]
    if any(variant == "traces" for variant, _ in cases):
        VARIANT_ENV["traces"] = {"TOLLGATE_OTLP_ENDPOINT": otlp_sink()}
    try:
        run.start_mocks(tools, notes)
        gateway = run.Tollgate(notes, celery=False)
        gateway.prepare()
        routes = run.target_routes("tollgate", f"Bearer {gateway.setup['key']}")
        load = run.Load(tools)
        seen: dict[tuple, list[dict]] = {(*case, scenario): [] for case in cases for scenario in scenarios}
        for round_ in range(opts.rounds):
            for variant, drain in cases:
                worker = None
                if drain != "none":
                    argv = [run.PY, "-m", "celery", "-A", "config", "worker", "--concurrency", "1", "--beat",
                            "-s", str(run.WORK / "celerybeat-schedule"), "--loglevel", "WARNING", "-n", "ab@%h"]
                    worker = run.PROCS.start("ab-celery", argv, cpu=run.LOAD_CPU, env=gateway.env, idle=drain == "idle")
                set_key_cache(gateway, variant == "cached")
                argv = server_argv(variant, run.PORTS["tollgate"])
                env = {**gateway.env, **VARIANT_ENV.get(variant, {})}
                cwd = opts.baseline_tree if variant == "baseline" else run.ROOT
                web = run.PROCS.start(f"ab-{variant}", argv, cpu=run.GATEWAY_CPU, env=env, cwd=cwd, rt=True)
                if not run.wait_port(run.PORTS["tollgate"], web, 60):
                    raise RuntimeError(run.log_tail(f"ab-{variant}"))
                for scenario in scenarios:
                    if round_ == 0:
                        check(routes, scenario)
                    cell = measure(load, routes, opts, scenario, web.pid)
                    seen[(variant, drain, scenario)].append(cell)
                    extra = f" ttft p50 {cell['ttft_p50_ms']:.2f} ms" if "ttft_p50_ms" in cell else ""
                    run.log(f"round {round_ + 1} {variant:9} drain={drain:4} {scenario:19} {run._brief(cell)}{extra}")
                run.PROCS.stop(web, timeout=30)
                if worker is not None:
                    run.PROCS.stop(worker, timeout=20)
        print(f"\nmedians over {opts.rounds} rounds, c={opts.concurrency}, {opts.seconds:g} s cells:")
        for (variant, drain, scenario), cells in seen.items():
            median = lambda key: statistics.median(c[key] for c in cells if c.get(key) is not None)  # noqa: E731
            print(f"  {variant:9} drain={drain:4} {scenario:19} RPS {median('rps'):,.0f}  CPU {median('cpu_us_per_req'):,.0f} µs/req  "
                  f"p50 {median('p50_ms'):.2f} ms  p99 {median('p99_ms'):.2f} ms")
    finally:
        run.PROCS.stop_all()


if __name__ == "__main__":
    main()
