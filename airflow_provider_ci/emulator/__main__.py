"""``python -m airflow_provider_ci.emulator``: serve until SIGINT/SIGTERM, then exit cleanly."""

from __future__ import annotations

import argparse
import gc
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .config import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY
from .control import Emulator
from .throttle import DEFAULT_QPS_LIMIT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_ci.emulator",
        description="Local Tencent Cloud Infinite (CI) PicProcess job service with COS object storage.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port (default %(default)s)")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding one sub-folder per bucket")
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID, help="SecretId to accept (default: test id)")
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY, help="SecretKey to accept (default: test key)")
    parser.add_argument("--token", help="require this STS session token on every request")
    parser.add_argument(
        "--bucket", action="append", default=[], metavar="NAME", help="create bucket NAME-APPID (repeatable)"
    )
    parser.add_argument("--queue-delay", type=float, default=0.2, help="seconds a job stays Submitted")
    parser.add_argument("--run-time", type=float, default=0.3, help="minimum seconds a job stays Running")
    parser.add_argument("--workers", type=int, default=10, help="jobs that may run at once")
    parser.add_argument(
        "--qps-limit",
        type=int,
        default=DEFAULT_QPS_LIMIT,
        metavar="N",
        help="CI requests per second per account (SecretId), sliding 1 s window; over it 503 SlowDown "
        "(default %(default)s, the service's; 0 = no limit)",
    )
    parser.add_argument(
        "--max-ids-per-get",
        type=int,
        default=0,
        metavar="N",
        help="most job ids one GET /jobs/<ids> may name, 400 InvalidArgument beyond (default 0 = no cap)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        emulator = Emulator(
            args.data_dir,
            host=args.host,
            port=args.port,
            secret_id=args.secret_id,
            secret_key=args.secret_key,
            token=args.token,
            queue_delay=args.queue_delay,
            run_time=args.run_time,
            workers=args.workers,
            buckets=args.bucket,
            qps_limit=args.qps_limit,
            max_ids_per_get=args.max_ids_per_get,
        ).start()
    except (ValueError, OSError) as exc:  # a bad bucket name or setting, a port in use
        parser.error(str(exc))
    # What start-up built (aiohttp, Pillow, lxml) lives as long as the server: freeze it, so a
    # full garbage collection scans only jobs and requests. A 30 ms collection held requests in
    # the socket, then stamped them all at once: arrivals bunched that the client had spaced,
    # and the per-account limit refused some (bench B2).
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    buckets = ", ".join(emulator.stats()["buckets"]) or "(none: use --bucket NAME or mkdir DATA_DIR/NAME)"
    print(
        f"Tencent CI emulator listening on {emulator.url}\n"
        f"  data dir:  {args.data_dir.resolve()}\n"
        f"  buckets:   {buckets}\n"
        f"  SecretId:  {emulator.secret_id}\n"
        f"  SecretKey: {emulator.secret_key}\n"
        f"  token:     {emulator.token or '(none)'}\n"
        f"  limit:     {emulator.qps_limit or 'none'} requests/s per account\n"
        "  send requests to that URL with Host <bucket>.ci.<region>.myqcloud.com (jobs) or\n"
        "  <bucket>.cos.<region>.myqcloud.com (objects); control API under /_emulator/",
        flush=True,
    )
    while not stop.wait(0.5):
        pass
    emulator.stop()
    print("Tencent CI emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
