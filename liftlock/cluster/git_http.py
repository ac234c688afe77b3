"""A git repository served read-only over smart HTTP on 127.0.0.1: what Flux's source-controller
clones. `git http-backend` (git's own CGI program) answers behind a small threading HTTP server;
only the fetch side is routed (`info/refs?service=git-upload-pack`, `git-upload-pack`), so a push
is refused with 403 whatever the repository's config says.

Run as a process of the embedded cluster (liftlock.cluster.flux starts it as a Component):
`python -m liftlock.cluster.git_http --git-dir PATH --port PORT`. The repository is reached at
`http://127.0.0.1:PORT/<REPO_PATH>`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

#: the URL path the repository is served at
REPO_PATH = "/liftlock.git"
FETCH_SERVICE = "git-upload-pack"
BACKEND_TIMEOUT = 300


def backend_path() -> str:
    """Where git keeps http-backend (`git --exec-path`)."""
    exec_path = subprocess.run(
        ["git", "--exec-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return str(Path(exec_path) / "git-http-backend")


def is_fetch(method: str, path: str, query: str) -> bool:
    """Only what a clone or fetch needs: the ref advertisement and upload-pack."""
    if not path.startswith(REPO_PATH + "/"):
        return False
    rest = path.removeprefix(REPO_PATH)
    if method == "GET":
        return rest == "/info/refs" and query == f"service={FETCH_SERVICE}"
    return method == "POST" and rest == f"/{FETCH_SERVICE}"


def cgi_response(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a CGI program's output."""
    head, _, body = output.partition(b"\r\n\r\n")
    if not _:
        head, _, body = output.partition(b"\n\n")
    status = 200
    headers = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers.append((name.strip(), value.strip()))
    return status, headers, body


def make_handler(git_dir: Path, backend: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self.answer()

        def do_POST(self) -> None:
            self.answer()

        def answer(self) -> None:
            url = urlsplit(self.path)
            if not is_fetch(self.command, url.path, url.query):
                self.send_error(403, "read-only: only git-upload-pack is served")
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(git_dir),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": url.path.removeprefix(REPO_PATH) or "/",
                "QUERY_STRING": url.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "GIT_CONFIG_NOSYSTEM": "1",
                # The checkout is root's; the backend runs as whoever started us.
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": "safe.directory",
                "GIT_CONFIG_VALUE_0": "*",
                "GIT_CONFIG_KEY_1": "http.receivepack",
                "GIT_CONFIG_VALUE_1": "false",
            }
            for header, variable in (
                ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ("Git-Protocol", "GIT_PROTOCOL"),
            ):
                if self.headers.get(header):
                    env[variable] = self.headers[header]
            try:
                done = subprocess.run(
                    [backend], input=body, capture_output=True, env=env, timeout=BACKEND_TIMEOUT
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                self.send_error(500, f"git http-backend: {error}")
                return
            status, headers, payload = cgi_response(done.stdout)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def serve(git_dir: Path, port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(git_dir, backend_path()))
    print(f"serving {git_dir} read-only at http://127.0.0.1:{port}{REPO_PATH}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--git-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    serve(arguments.git_dir.resolve(), arguments.port)


if __name__ == "__main__":
    main()
