"""``python -m worker.providers.aws.demo [UP OPTIONS]`` (``make demo-aws``): see AWS collected and
cleaned without an AWS account.

Starts a moto server on a free loopback port, seeds the estate of :mod:`.estate` (2 accounts,
2 regions, every kind, expired, protected and default resources), then runs ``resoto-tasks up``
with the ``aws`` provider pointed at it; options after the command go to ``up`` (``--once`` runs
one hourly workflow and exits). moto is stopped when ``up`` ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

from worker.providers.aws import estate

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A moto server answering on ``port`` (about 1 s).

    Raises: RuntimeError if it does not answer within 30 s.
    """
    binary = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
    if binary is None:
        raise RuntimeError("moto_server not found: pip install 'moto[server]' (the dev extra has it)")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"moto_server did not start; see {log_path}")


def demo_env(endpoint_url: str) -> dict[str, str]:
    """The environment that points resoto-tasks at the demo estate."""
    return {
        "RESOTO_COLLECT_PROVIDERS": "aws",
        "RESOTO_AWS_ENDPOINT_URL": endpoint_url,
        "RESOTO_AWS_ACCOUNTS": ",".join(estate.ACCOUNTS),
        "RESOTO_AWS_ROLE_NAME": estate.ROLE_NAME,
        "RESOTO_AWS_REGIONS": ",".join(estate.REGIONS),
        "RESOTO_AWS_DELETE_POLL_S": "0.5",
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def main(argv: list[str] | None = None) -> int:
    up_args = sys.argv[1:] if argv is None else argv
    port = int(os.environ.get("RESOTO_DEMO_MOTO_PORT") or _free_port())
    endpoint = f"http://127.0.0.1:{port}"
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"resoto-demo-moto-{port}.log"
    print(f"starting moto on {endpoint} (log {log_path}) ...", flush=True)
    moto = start_moto(port, log_path)
    try:
        env = demo_env(endpoint)
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        manifest = estate.seed(endpoint)
        kinds = Counter(r.kind for r in manifest.resources)
        doomed = sum(r.expected_deleted for r in manifest.resources)
        print(
            f"seeded {len(manifest.resources)} resources in accounts {', '.join(estate.ACCOUNTS)} and regions "
            f"{', '.join(estate.REGIONS)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}), besides the "
            f"default VPCs AWS makes; {doomed} are expired and unprotected: the first run deletes them",
            flush=True,
        )
        print("environment of the stack:\n" + "".join(f"  {k}={v}\n" for k, v in env.items()), flush=True)
        up = subprocess.run([str(BIN / "resoto-tasks"), "up", *up_args], env={**os.environ, **env}, check=False)
        return up.returncode
    except KeyboardInterrupt:
        return 130
    finally:
        if moto.poll() is None:
            os.killpg(moto.pid, signal.SIGKILL)
            moto.wait()


if __name__ == "__main__":
    sys.exit(main())
