"""Where a study lives (directory, Optuna storage, MLflow tracking URI), and checks that each is usable.

The checks run before any compute: an unreachable database or server is a one-line error naming the
flag, not a traceback after the teacher has been loaded. Passwords in URLs are never printed.

An Optuna storage is a database URL (RDB storage: SQLite, PostgreSQL, MySQL) or the path of a journal
file (Optuna's ``JournalStorage``, which several processes on one machine share with no server). A study
in the default place is ``OUT/optuna.db`` (SQLite), or ``OUT/optuna.journal`` when it was started with
``--workers N``: SQLite takes one writer at a time, and Optuna's guide advises against it for parallel work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodistill.util.errors import first_line
from autodistill.util.files import writable


@dataclass
class Locations:
    """Where one study lives: its directory, Optuna storage, MLflow tracking URI and caches."""

    out: Path
    storage: str
    tracking_uri: str
    study_name: str
    cache_dir: Path
    artifact_root: str | None  # the URI under which a new experiment keeps its artifacts (None: the server's)
    storage_is_local: bool = True  # the default SQLite or journal file in the study's directory
    cache_dir_chosen: bool = False  # by --cache-dir or cache.dir; else a resumed study keeps its own

    @property
    def journal(self) -> bool:
        return is_journal(self.storage)

    @property
    def has_heartbeat(self) -> bool:
        """Whether Optuna records each running trial's heartbeat here: a database does; a journal file
        and the gRPC proxy's client do not (their dead workers are found by process id, on this host)."""
        return not (self.journal or is_grpc(self.storage))


def resolve_locations(
    space_path: Path,
    out: str | None,
    storage: str | None,
    tracking_uri: str | None,
    study_name: str | None,
    cache_dir: str | None = None,
    workers: int = 1,
    artifact_root: str | None = None,
) -> Locations:
    """Where the study lives; ``cache_dir`` is ``--cache-dir`` or the space's ``cache.dir`` (default OUT/cache);
    ``workers``: how many processes will share the study (``--workers``), which picks the default storage."""
    name = study_name or space_path.stem
    directory = Path(out) if out else Path("autodistill-runs") / name
    absolute = directory.resolve()
    return Locations(
        out=directory,
        storage=storage_argument(storage) if storage else default_storage(absolute, workers),
        tracking_uri=tracking_uri or f"sqlite:///{absolute / 'mlflow.db'}",
        study_name=name,
        cache_dir=Path(cache_dir) if cache_dir else directory / "cache",
        cache_dir_chosen=cache_dir is not None,
        artifact_root=artifact_location(tracking_uri, artifact_root, absolute),
        storage_is_local=storage is None,
    )


def artifact_location(tracking_uri: str | None, artifact_root: str | None, study_dir: Path) -> str | None:
    """Where MLflow keeps a new experiment's artifacts (reports, students), as a URI: ``--artifact-root``
    when given (a directory all workers see, or ``s3://…``); the server's choice with a tracking server;
    else the study's directory, on the machine that creates the experiment."""
    if artifact_root:
        return artifact_root.rstrip("/") if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    if is_tracking_server(tracking_uri or ""):
        return None
    return (study_dir / "mlartifacts").as_uri()


def is_tracking_server(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def is_database_server(url: str) -> bool:
    """A database other machines reach (not a SQLite file)."""
    return re.match(r"^(postgresql|mysql|mssql)", url) is not None


def check_artifact_root(artifact_root: str | None, tracking_uri: str) -> str | None:
    """A problem with ``--artifact-root``, or None."""
    if artifact_root is None:
        return None
    if is_tracking_server(tracking_uri):
        return (
            f"--artifact-root {artifact_root}: a tracking server chooses where artifacts go (its "
            "--artifacts-destination); drop --artifact-root"
        )
    if "://" not in artifact_root and not writable(Path(artifact_root)):
        return (
            f"--artifact-root {artifact_root}: cannot write there; choose a writable directory that every "
            "worker sees, or a URI such as s3://bucket/prefix"
        )
    return None


def artifacts_stay_here(loc: Locations, artifact_root: str | None) -> str | None:
    """A note when workers on other machines share this study's tracking database but its artifacts go to
    one machine's disk, or None."""
    if artifact_root or not is_database_server(loc.tracking_uri):
        return None
    return (
        f"note: MLflow artifacts (reports, students) go under {loc.artifact_root} on the machine that creates "
        "the experiment; with workers on several machines, give every worker --artifact-root on a shared "
        "disk (or s3://…), or track through an mlflow server (--tracking-uri http://…)"
    )


JOURNAL_FILE, SQLITE_FILE = "optuna.journal", "optuna.db"


def default_storage(directory: Path, workers: int = 1) -> str:
    """The study's storage when ``--storage`` is not given: a journal file already there, else SQLite for
    one worker and a journal file for several (a study is kept in the storage it was started in)."""
    journal, sqlite = directory / JOURNAL_FILE, directory / SQLITE_FILE
    if journal.is_file() or (workers > 1 and not sqlite.is_file()):
        return str(journal)
    return f"sqlite:///{sqlite}"


def is_journal(storage: str) -> bool:
    """Whether ``storage`` names a journal file (a path) rather than a database (a URL)."""
    return "://" not in storage


def is_grpc(storage: str) -> bool:
    """Whether ``storage`` names Optuna's gRPC storage proxy (``grpc://HOST:PORT``,
    ``autodistill storage-proxy``), which holds the database connections for every worker."""
    return storage.startswith("grpc://")


def grpc_address(storage: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` as (host, port).

    Raises:
        ValueError: not of that form.
    """
    match = re.fullmatch(r"grpc://([^:/]+):(\d+)/?", storage)
    if not match:
        raise ValueError(f"{storage}: give the storage proxy as grpc://HOST:PORT")
    return match.group(1), int(match.group(2))


# The most connections one worker holds to a database (Optuna's storage, MLflow's store): one for its
# trials and one for Optuna's heartbeat thread. SQLAlchemy's default pool lets each grow to 15, so a
# hundred workers could ask PostgreSQL (max_connections 100 by default) for more than it has.
WORKER_POOL = {"pool_size": 1, "max_overflow": 1}


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine settings for an Optuna database storage at ``url``: a bounded pool on a server
    (SQLite files are opened per process, and keep SQLAlchemy's own pool)."""
    return {} if url.startswith("sqlite") else dict(WORKER_POOL)


def bound_tracking_pool(tracking_uri: str) -> None:
    """Bound the pool of MLflow's database store the same way (MLflow reads it from the environment
    when it opens the store, once per process)."""
    import os

    if is_database_server(tracking_uri):
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", str(WORKER_POOL["pool_size"]))
        os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", str(WORKER_POOL["max_overflow"]))


def storage_argument(storage: str) -> str:
    """``--storage`` as kept: a URL as given; a journal file's path made absolute (workers may change
    directory)."""
    return storage if not is_journal(storage) else str(Path(storage).expanduser().resolve())


def optuna_storage(storage: str) -> Any:
    """What Optuna opens for ``storage``: a SQLite URL itself, a database server with a bounded pool,
    the gRPC proxy's client, or a ``JournalStorage`` on the journal file."""
    import optuna

    if is_grpc(storage):
        host, port = grpc_address(storage)
        return optuna.storages.GrpcStorageProxy(host=host, port=port)
    if is_journal(storage):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(storage))
    if storage.startswith("sqlite"):
        return storage
    return optuna.storages.RDBStorage(storage, engine_kwargs=engine_kwargs(storage))


def not_a_journal(path: Path) -> str | None:
    """Why an existing file is not an Optuna journal, or None. A path is read as a journal file, and
    Optuna would append its records to whatever file it is (a SQLite database given without its URL)."""
    with path.open("rb") as f:
        head = f.readline(1 << 16)
    if head.startswith(b"SQLite format 3\0"):
        return f"a SQLite database, not a journal file; give it as a URL: sqlite:///{path.resolve()}"
    if head and not head.lstrip().startswith(b"{"):  # each journal line is one JSON object
        return "not an Optuna journal file (its lines are JSON objects); give a new file or a database URL"
    return None


def check_workers(flag: str, storage: str, workers: int) -> str | None:
    """Why ``workers`` processes cannot share ``storage``, or None. SQLite takes one writer at a time."""
    if workers > 1 and re.match(r"sqlite[+:]", storage):
        return (
            f"--workers {workers}: the study's storage is SQLite ({redact(storage)}), which several processes "
            f"cannot share safely; run this study with one worker, or start one in a new --out directory (it "
            f"gets {JOURNAL_FILE}, a journal file they share), or give {flag} a PostgreSQL URL"
        )
    return None


RUNS_VIEW = "workflowType=machine_learning"


def experiment_url(tracking_uri: str, experiment_id: str) -> str:
    """The study's experiment in the MLflow UI: on the tracking server itself, or on the ``mlflow ui``
    that the printed command starts on a database or file store (its default address).

    The address opens the runs table in the "Model training" view: MLflow 3.17's UI opens on its GenAI
    view unless the URL's ``workflowType`` (or the browser's saved choice) says otherwise, whatever the
    experiment's kind tag (checked in headless Chromium).
    """
    server = is_tracking_server(tracking_uri)
    base = redact(tracking_uri.rstrip("/")) if server else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}/runs?{RUNS_VIEW}"


def redact(url: str) -> str:
    """A storage or tracking URL with any password replaced, fit to print or log."""
    return re.sub(r"(://[^:/@]+:).*@", r"\1***@", url)  # greedy: a password may itself hold '@'


def _first_line(exc: Exception) -> str:
    return redact(first_line(exc))


def check_grpc(flag: str, url: str) -> str | None:
    """A problem with a ``grpc://HOST:PORT`` storage proxy, or None when one answers there."""
    try:
        host, port = grpc_address(url)
    except ValueError as exc:
        return f"{flag} {exc}"
    try:
        import optuna

        optuna.storages.GrpcStorageProxy(host=host, port=port).wait_server_ready(timeout=5)
    except ImportError:
        return f"{flag} {url}: the gRPC proxy needs grpcio; pip install 'autodistill-search[grpc]'"
    except Exception as exc:
        return f"{flag} {url}: no storage proxy answers ({_first_line(exc)}); start autodistill storage-proxy"
    return None


def check_database(flag: str, url: str) -> str | None:
    """A problem with a SQLAlchemy database URL (SQLite file or a server), a journal file or a gRPC
    storage proxy, or None when it connects (or could be written)."""
    if is_grpc(url):
        return check_grpc(flag, url)
    if is_journal(url):
        path = Path(url)
        if path.exists() and not path.is_file():
            return f"{flag} {url}: not a file; give a journal file path or a database URL"
        if path.is_file() and (problem := not_a_journal(path)):
            return f"{flag} {url}: {problem}"
        return None if writable(path.parent) else f"{flag} {url}: cannot write to {path.parent}"
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return None if writable(path.parent) else f"{flag} {url}: cannot write to {path.parent}"
    try:
        import sqlalchemy

        args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
        engine = sqlalchemy.create_engine(url, connect_args=args)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # driver errors have many types; the user needs one line
        return (
            f"{flag} {redact(url)}: cannot connect ({_first_line(exc)}); check the server, user and database"
        )
    return None


def check_tracking(uri: str) -> str | None:
    """A problem with an MLflow tracking URI, or None: databases connect, servers answer /health."""
    if re.match(r"^(sqlite|postgresql|mysql|mssql)", uri):
        return check_database("--tracking-uri", uri)
    if is_tracking_server(uri):
        import urllib.request

        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5):
                return None
        except Exception as exc:
            return f"--tracking-uri {redact(uri)}: no MLflow server answers ({_first_line(exc)})"
    path = Path(uri.removeprefix("file://"))
    return None if writable(path) else f"--tracking-uri {uri}: cannot write there"
