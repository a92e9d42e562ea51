"""``python -m bench [NAME...] [options]``: run benchmarks against a private Redis and workers.

The private ``redis-server`` starts first; :func:`bench.infra.export_env` points ``RESOTO_*`` at
it and resets :mod:`resoto_tasks.runtime`, so the app and the engine compose against it on first
use (importing the benchmark modules reads no settings).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time

from bench import aws, brokers, cleanup, failover, framework, infra, ingest, metrics, orchestration, planning, web

MODULES = [orchestration, brokers, failover, ingest, planning, metrics, cleanup, aws, web]
"""One module per benchmark; each registers itself with :func:`bench.framework.benchmark`."""


def parse(argv: list[str]) -> tuple[list[str], framework.Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: every one that can run)")
    parser.add_argument("--runs", type=int, default=30, help="measured workflows per side (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up workflows per side (default 3)")
    parser.add_argument("--bursts", type=int, default=3, help="measured bursts per side (default 3)")
    parser.add_argument("--burst-size", type=int, default=20, help="workflows per burst (default 20)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker (default 2)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiling phase")
    parser.add_argument("--plain", action="store_true", help="plain-text tables instead of rich")
    parser.add_argument(
        "--store-size", type=int, default=1_000_000, help="resources for ingest and planning (default 1,000,000)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 if any target is missed")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    options = framework.Options(
        runs=args.runs,
        warmup=args.warmup,
        bursts=args.bursts,
        burst_size=args.burst_size,
        concurrency=args.concurrency,
        profile=not args.no_profile,
        plain=args.plain,
        strict=args.strict,
        store_size=args.store_size,
    )
    return (["--list"] if args.list else args.names), options


def main(argv: list[str] | None = None) -> int:
    names, options = parse(sys.argv[1:] if argv is None else argv)
    for old_log in (infra.RESULTS / "logs").glob("*.log"):
        old_log.unlink()
    server = infra.private_redis()
    try:
        infra.export_env(server.url)
        registry = framework.REGISTRY
        if names == ["--list"]:
            for bench in registry.values():
                reason = bench.unavailable()
                print(f"{bench.name:14} {bench.doc}" + (f"  [unavailable: {reason}]" if reason else ""))
            return 0
        unknown = [n for n in names if n not in registry]
        if unknown:
            print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}", file=sys.stderr)
            return 2
        missed = 0
        for name in names or list(registry):
            bench = registry[name]
            reason = bench.unavailable()
            if reason:
                print(f"skipping {name}: {reason}")
                continue
            print(f"running {name} (redis {server.url}) ...", flush=True)
            t0 = time.monotonic()
            ctx = framework.Context(redis_url=server.url, options=options)
            records = bench.run(ctx)
            framework.print_table(f"{name} ({time.monotonic() - t0:.0f} s)", records, plain=options.plain)
            for note in ctx.notes:
                print(f"  note: {note}")
            report = getattr(importlib.import_module(f"bench.{name}"), "report", None)
            if report is not None:
                print(report(ctx))
            print(f"  results: {framework.write_results(name, records, ctx)}")
            missed += sum(1 for r in records if r.target_met is False)
        return 1 if missed and options.strict else 0
    finally:
        gc.collect()  # finalize Celery results while their Redis is still there
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
