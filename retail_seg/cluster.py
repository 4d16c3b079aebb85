"""The distributed profile on one host: Redis, Postgres and N Celery workers, from the machine's packages.

`python -m retail_seg cluster up --workers 2` starts them under `data/.cluster/` and writes `env`, the
settings that select the profile (source it, then `python -m retail_seg run`, `make ui`); `cluster down`
stops them. On several hosts, point every host's settings at one broker and one Postgres instead (README,
"Past one machine"); the code is the same. Postgres refuses to run as root, so as root its data belongs to
the `postgres` user, who runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retail_seg import settings

DISTRIBUTED_INSTANCE = settings.DISTRIBUTED_INSTANCE_SETTINGS
POSTGRES_URL = settings.POSTGRES_URL.variable  # read by the instance settings (dagster.distributed.yaml)
POSTGRES_USER = "dagster"


class ServerMissing(RuntimeError):
    """A server program the profile needs is not installed."""


def _program(name: str, *elsewhere: str) -> str:
    for candidate in (shutil.which(name), *elsewhere):
        if candidate and Path(candidate).is_file():
            return candidate
    raise ServerMissing(f"{name} is not installed (Debian: apt-get install redis-server postgresql)")


def postgres_bin(name: str) -> str:
    return _program(name, *sorted(str(p) for p in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerExited(RuntimeError):
    """A server stopped before it listened: its own last words say why (a port taken, a bad setting)."""


@dataclass(frozen=True)
class _Started:
    """A server process just started, with where it writes and how much was written there before it."""

    process: subprocess.Popen
    what: str
    log: Path
    since: int

    @classmethod
    def launch(cls, what: str, command: list[str], log: Path) -> _Started:
        """Start `command` in a session of its own, its output appended to `log`."""
        since = log.stat().st_size if log.exists() else 0
        with log.open("ab") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(process, what, log, since)

    def last_words(self, lines: int = 3) -> str:
        """The last lines this process wrote (not an earlier run's, in the same log)."""
        with self.log.open("rb") as handle:
            handle.seek(self.since)
            said = handle.read().decode(errors="replace").strip().splitlines()
        return " / ".join(line.strip() for line in said[-lines:]) or "(it wrote nothing)"

    def ready(self, port: int, ours: Callable[[], bool]) -> subprocess.Popen:
        """The process once it listens (`listening`); stopped, not left running unowned, when waiting for
        it fails."""
        try:
            return self.listening(port, ours)
        except BaseException:
            stop(self.process)
            raise

    def listening(self, port: int, ours: Callable[[], bool], timeout: float = 30.0) -> subprocess.Popen:
        """The process once `port` answers and `ours()` says it is this process that answers there (a
        port another program took answers too); at once, with its last words, if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerExited(
                    f"{self.what} exited with code {self.process.returncode} before it listened on "
                    f"127.0.0.1:{port}: {self.last_words()} (log: {self.log})"
                )
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0 and ours():
                    return self.process
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s (log: {self.log})"
        )


def _redis_process_id(port: int) -> int | None:
    """The process id the Redis answering on `port` reports (`INFO server`); None when what answers is not
    a Redis."""
    said = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(b"INFO server\r\n")
            while not re.search(rb"process_id:\d+\r\n", said):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                said += chunk
    except OSError:
        return None
    found = re.search(rb"process_id:(\d+)\r\n", said)
    return int(found.group(1)) if found else None


def _as_postgres(command: list[str]) -> list[str]:
    """`command` as the `postgres` user when we are root (Postgres will not run as root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Servers:
    """What `up` started: the processes, their ports, and the settings that select the profile."""

    folder: Path
    redis_port: int
    postgres_port: int
    processes: dict[str, subprocess.Popen]

    @property
    def postgres_url(self) -> str:
        return f"postgresql+psycopg2://{POSTGRES_USER}@127.0.0.1:{self.postgres_port}/postgres"

    def environment(self) -> dict[str, str]:
        """The settings of the profile: Celery for loads, the instance on Postgres."""
        return {
            settings.EXECUTOR.variable: "celery",
            settings.CELERY_BROKER.variable: f"redis://127.0.0.1:{self.redis_port}/0",
            settings.CELERY_BACKEND.variable: f"redis://127.0.0.1:{self.redis_port}/1",
            POSTGRES_URL: self.postgres_url,
            settings.DAGSTER_HOME.variable: str(self.folder / "dagster_home"),
        }


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    """A Redis on loopback that keeps nothing on disk (a broker's queue, not a database)."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [_program("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(folder)]
    started = _Started.launch("redis-server", command, folder / "redis.log")
    return started.ready(port, lambda: _redis_process_id(port) == started.process.pid)


def start_postgres(folder: Path, port: int) -> subprocess.Popen:
    """A Postgres on loopback with a superuser `dagster` (trusted on loopback only), made on first use."""
    data = folder / "data"
    if not (data / "PG_VERSION").exists():
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        initdb = [postgres_bin("initdb"), "-D", str(data), "-U", POSTGRES_USER, "-A", "trust", "-E", "UTF8"]
        made = subprocess.run(_as_postgres(initdb), capture_output=True, text=True)
        if made.returncode != 0:
            said = " / ".join((made.stderr or made.stdout).strip().splitlines()[-3:])
            raise ServerExited(f"initdb exited with code {made.returncode} making {data}: {said}")
    command = [postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
    command += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"]
    started = _Started.launch("postgres", _as_postgres(command), folder / "postgres.log")
    # Its own socket in its own folder: the one answering on the port is this Postgres, not another's.
    socket_file = folder / f".s.PGSQL.{port}"
    return started.ready(port, socket_file.exists)


def start_worker(environment: dict[str, str], name: str, log: Path) -> subprocess.Popen:
    """One Celery worker process that executes Dagster steps, one at a time (`--pool solo`: the step runs in
    the worker's own process, so killing the worker kills its step)."""
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "retail_seg.defs.distributed",
        "worker",
        "-Q",
        "dagster",
        "--pool",
        "solo",
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for_workers(environment: dict[str, str], names: list[str], timeout: float = 60.0) -> None:
    """Until every worker in `names` answers a ping on the broker."""
    from retail_seg.defs import distributed

    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        app = distributed.worker_app()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = {name.split("@")[0] for reply in app.control.ping(timeout=1.0) or [] for name in reply}
            if set(names) <= answered:
                return
            time.sleep(0.5)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        distributed.worker_app.cache_clear()
    raise TimeoutError(f"workers {', '.join(names)} did not answer within {timeout:.0f} s")


def instance_home(folder: Path) -> Path:
    """A DAGSTER_HOME with the distributed instance settings."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(DISTRIBUTED_INSTANCE, home / "dagster.yaml")
    return home


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a server or worker and everything it started: politely (SIGINT: a worker's warm shutdown,
    Postgres' fast one), then for good."""
    if process.poll() is not None:
        return
    with _gone():
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with _gone():
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


class _gone:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is ProcessLookupError


def up(folder: Path, workers: int) -> Servers:
    """Start Redis, Postgres and `workers` Celery workers; write `folder/env` with the profile's settings.
    Each process is recorded in `folder/pids` as it starts, so `down` stops whatever did start; when one
    fails to start, `up` itself stops what it started (and only that: `pids` may list another profile's)."""
    folder = folder.absolute()
    instance_home(folder)
    pids = folder / "pids"
    processes: dict[str, subprocess.Popen] = {}

    def started(name: str, process: subprocess.Popen) -> None:
        processes[name] = process
        with pids.open("a") as handle:
            handle.write(f"{name} {process.pid}\n")

    redis_port, postgres_port = free_port(), free_port()
    try:
        started("redis", start_redis(folder / "redis", redis_port))
        started("postgres", start_postgres(folder / "postgres", postgres_port))
        servers = Servers(folder, redis_port, postgres_port, processes)
        environment = {**os.environ, **servers.environment()}
        names = [f"worker{n}" for n in range(1, workers + 1)]
        for name in names:
            started(name, start_worker(environment, name, folder / f"{name}.log"))
        wait_for_workers(environment, names)
    except BaseException:  # half a profile is no use: what this call started is stopped, and only that
        for process in reversed(processes.values()):
            stop(process)
        _forget(pids, [process.pid for process in processes.values()])
        raise
    lines = [f"export {key}={shlex.quote(value)}" for key, value in servers.environment().items()]
    (folder / "env").write_text("\n".join(lines) + "\n")
    return servers


def _forget(pids: Path, stopped: list[int]) -> None:
    """`pids` without the processes `stopped`; gone when nothing is left in it."""
    if not pids.exists():
        return
    kept = [
        line for line in pids.read_text().splitlines() if line.strip() and int(line.split()[1]) not in stopped
    ]
    if kept:
        pids.write_text("\n".join(kept) + "\n")
    else:
        pids.unlink()


def down(folder: Path, timeout: float = 30.0) -> list[str]:
    """Stop what `up` started in `folder`, workers first, then the servers, each waited for; the names
    stopped. SIGINT: Postgres' fast shutdown (SIGTERM would wait for every client to leave)."""
    pids = folder.absolute() / "pids"
    stopped = []
    if pids.exists():
        entries = [line.split() for line in pids.read_text().splitlines() if line.strip()]
        for name, pid in sorted(entries, key=lambda e: e[0] in ("redis", "postgres")):
            with _gone():
                os.killpg(int(pid), signal.SIGINT)
                _wait_gone(int(pid), timeout)
                stopped.append(name)
        pids.unlink()
    return stopped


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return  # ended, not yet reaped by its parent
        time.sleep(0.1)
    with _gone():
        os.killpg(pid, signal.SIGKILL)
