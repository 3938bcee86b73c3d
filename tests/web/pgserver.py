"""A throw-away PostgreSQL server for the test run: initdb into a temp folder, pg_ctl start on a free port.

The server refuses to run as root, so as root (CI, this machine) every server command runs as the
`postgres` system user that Debian's package creates. fsync is off: this cluster dies with the run, and the
durability under test is SQLite's `synchronous=FULL` and the transactions' atomicity, not the disk's.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def find_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    root: Path
    port: int
    user: str = "postgres"
    run_as: str | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-F -p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        import psycopg2

        connection = psycopg2.connect(self.url("postgres"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                suffix = f" TEMPLATE {template}" if template else ""
                cursor.execute(f"CREATE DATABASE {name}{suffix}")
        finally:
            connection.close()
        return self.url(name)


def start_server() -> PostgresServer:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="credo-pg-"))
    if os.geteuid() == 0:
        run_as = "postgres"
        account = pwd.getpwnam(run_as)  # KeyError when the package did not create the account
        os.chown(root, account.pw_uid, account.pw_gid)
        root.chmod(0o700)
    server = PostgresServer(bin_dir, root, _free_port(), run_as=run_as)
    for attempt in range(3):
        try:
            server.start()
            return server
        except subprocess.CalledProcessError:
            # another process may have taken the port between the probe and the start: try a new one
            if attempt == 2:
                log = server.root / "server.log"
                raise RuntimeError(
                    "PostgreSQL did not start: " + (log.read_text()[-2000:] if log.exists() else "no log")
                ) from None
            if server.run_as:
                subprocess.run(["runuser", "-u", server.run_as, "--", "rm", "-rf", str(server.data)], check=False)
            else:
                shutil.rmtree(server.data, ignore_errors=True)
            server.port = _free_port()
            time.sleep(0.2)
    raise AssertionError("unreachable")
