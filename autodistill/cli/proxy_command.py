"""``autodistill storage-proxy``: Optuna's gRPC storage proxy in front of the study's database.

Each worker that opens a PostgreSQL study holds its own connections (two at most: see
``store/locations.py``), so a hundred workers need two hundred, above PostgreSQL's default
``max_connections`` of 100. Through the proxy, workers hold none: they send their storage calls to it
(``--storage grpc://HOST:PORT``), and it alone talks to the database through at most ``--threads``
connections. Optuna ships the server as a function (``optuna.storages.run_grpc_proxy_server``), not as a
command; this is that command.
"""

from __future__ import annotations

import argparse
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from autodistill.cli.common import fail, quiet_libraries


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "storage-proxy",
        help="serve one Optuna database to many workers through few connections (Optuna's gRPC proxy)",
        description="Serve the Optuna database --storage to every worker as grpc://HOST:PORT (give that to "
        "their --storage), holding at most --threads database connections whatever the number of "
        "workers. Runs until Ctrl-C (or SIGTERM). Needs grpcio: pip install 'autodistill-search[grpc]'.",
    )
    p.add_argument(
        "--storage", required=True, help="the study's database URL, e.g. postgresql://user:pass@db/optuna"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 for workers elsewhere: "
        "the proxy has no authentication, so keep it on a private network)",
    )
    p.add_argument("--port", type=int, default=13000, help="port to listen on (default 13000)")
    p.add_argument(
        "--threads",
        type=int,
        default=10,
        help="storage calls served at once, and the most database connections held (default 10)",
    )


def problems_with(args: argparse.Namespace) -> list[str]:
    from autodistill.store.locations import check_database, is_grpc, is_journal, redact

    problems = []
    if not 0 < args.port < 65536:
        problems.append(f"--port {args.port}: give a port between 1 and 65535")
    if args.threads < 1:
        problems.append(f"--threads {args.threads}: must be at least 1")
    if is_journal(args.storage) or is_grpc(args.storage):
        problems.append(
            f"--storage {redact(args.storage)}: the proxy serves a database (Optuna's proxy does not take a "
            "journal file); give its URL, e.g. postgresql://user:pass@db-host/optuna"
        )
    else:
        problems += [p for p in [check_database("--storage", args.storage)] if p]
    try:
        import grpc  # noqa: F401
    except ImportError:
        problems.append("storage-proxy needs grpcio: pip install 'autodistill-search[grpc]'")
    return problems


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def cmd_storage_proxy(args: argparse.Namespace) -> int:
    problems = problems_with(args)
    if problems:
        return fail(problems)
    quiet_libraries()
    import optuna

    from autodistill.store.locations import redact

    database = optuna.storages.RDBStorage(
        args.storage, engine_kwargs={"pool_size": args.threads, "max_overflow": 0}
    )
    # get_storage adds Optuna's cache of finished trials, which its guide asks for in front of the proxy
    storage = optuna.storages.get_storage(database)
    address = f"grpc://{args.host}:{args.port}"
    print(
        f"storage proxy: {redact(args.storage)} served at {address}, through at most {args.threads} "
        f"connection(s); give workers --storage {address}. Ctrl-C stops it.",
        flush=True,
    )
    # A service manager (systemd, docker stop) stops it with SIGTERM: as cleanly as Ctrl-C
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        optuna.storages.run_grpc_proxy_server(
            storage, host=args.host, port=args.port, thread_pool=ThreadPoolExecutor(args.threads)
        )
    except KeyboardInterrupt:
        print("storage proxy stopped", flush=True)
    return 0
