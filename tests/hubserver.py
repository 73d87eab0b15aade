"""A loopback stand-in for the Hugging Face Hub's file protocol, and a way to run Hub clients against it.

:class:`HubServer` answers what ``huggingface_hub.hf_hub_download`` asks for:
``HEAD``/``GET {endpoint}/{org}/{name}/resolve/{revision}/{file}``, with ``X-Repo-Commit``, ``ETag``
and ``Content-Length``. Large files (``*.safetensors``, ``*.bin``) are answered as the Hub does:
a 302 to a second origin (the "CDN") with ``X-Linked-Etag`` (their sha256) and ``X-Linked-Size``.
Errors carry the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``).
No Xet headers are ever sent, so downloads stay plain HTTP.

Uploads (what ``HfApi.create_repo`` and ``HfApi.create_commit`` send): ``POST /api/repos/create``,
``POST /api/validate-yaml`` (always valid),
``POST /api/models/{org}/{name}/preupload/{revision}`` (every file answered as "regular", so its
bytes come base64 in the commit) and ``POST /api/models/{org}/{name}/commit/{revision}`` (NDJSON).
With ``token`` set, uploads without ``Authorization: Bearer <token>`` get a 401.

Faults: :meth:`HubServer.fail` makes a repo answer an HTTP status (e.g. 500); :meth:`HubServer.hostile`
makes one file announce a size and send another, or trickle its bytes, or never answer; :meth:`HubServer.stop`
or :func:`closed_endpoint` give a Hub that is down; a repo can hold any bytes (a tensor file that
differs from its card's sha256, or only ``pytorch_model.bin``).

:func:`run_client` runs ``hubclient.py`` in a fresh interpreter, because ``huggingface_hub`` reads
``HF_ENDPOINT``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` when it is imported.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

LFS_SUFFIXES = (".safetensors", ".bin")
CLIENT = Path(__file__).with_name("hubclient.py")


@dataclass
class Repo:
    """Commits (sha -> files) and refs (branch or tag -> sha) of one model repo."""

    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hostile:
    """A file served by a hostile Hub: ``announce`` bytes in the metadata, ``send`` bytes in the body
    (without a Content-Length: until the connection closes), one byte per ``byte_every`` seconds
    (0: at once); ``mute``: never answer at all (the connection is held open for ``mute`` seconds)."""

    announce: int = 0
    send: int = 0
    byte_every: float = 0.0
    mute: float = 0.0


@dataclass(frozen=True)
class Request:
    """One request the server answered."""

    method: str
    path: str
    status: int


class HubServer:
    """A threaded HTTP server on 127.0.0.1 serving in-memory model repos (use as a context manager).

    Args:
        lfs_delay: seconds the CDN waits before sending a file's bytes (makes concurrent downloads overlap).
    """

    def __init__(self, *, lfs_delay: float = 0.0, token: str | None = None) -> None:
        self.repos: dict[str, Repo] = {}
        self.token = token
        self.private: dict[str, bool] = {}
        self.faults: dict[str, int] = {}
        self.hostiles: dict[tuple[str, str], Hostile] = {}
        self.lfs_delay = lfs_delay
        self._blobs: dict[str, bytes] = {}
        self._log: list[Request] = []
        self._lock = threading.Lock()
        self._hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=False))
        self._cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, cdn=True))
        self._hub.daemon_threads = self._cdn.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._hub.server_address[1]}"
        self.cdn = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def __enter__(self) -> HubServer:
        for server in (self._hub, self._cdn):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Shut down both origins and close their ports (the Hub is then down)."""
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def commit(self, repo_id: str, files: Mapping[str, bytes], *, refs: tuple[str, ...] = ("main",)) -> str:
        """Add a commit holding exactly ``files``, point ``refs`` at it and return its 40-hex sha."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, Repo())
            seed = f"{repo_id}:{len(repo.commits)}:".encode() + b"".join(sorted(files.values()))
            sha = hashlib.sha1(seed).hexdigest()
            repo.commits[sha] = dict(files)
            repo.refs.update({ref: sha for ref in refs})
            for name, data in files.items():
                if name.endswith(LFS_SUFFIXES):
                    self._blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    def hostile(self, repo_id: str, filename: str, behaviour: Hostile) -> None:
        """Serve ``filename`` of ``repo_id`` (main) as ``behaviour`` says; the repo gets a commit holding it."""
        self.commit(repo_id, {filename: b""})
        self.hostiles[(repo_id, filename)] = behaviour

    def fail(self, repo_id: str, status: int) -> None:
        """Answer every request for ``repo_id`` with ``status``."""
        self.faults[repo_id] = status

    def requests(self, contains: str = "") -> list[Request]:
        """The requests answered so far whose path contains ``contains``."""
        with self._lock:
            return [r for r in self._log if contains in r.path]

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self._log.append(Request(method, path, status))

    def _upload(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of an upload API request (repo creation, preupload, commit)."""
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"X-Error-Message": "Invalid credentials in Authorization header"}, b'{"error": "unauthorized"}'
        parts = [unquote(p) for p in path.split("?")[0].strip("/").split("/")]
        if parts == ["api", "validate-yaml"]:  # create_commit checks a README's metadata header first
            return 200, {}, b'{"errors": [], "warnings": []}'
        if parts == ["api", "repos", "create"]:
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}"
            if repo_id in self.repos:
                return 409, {}, json.dumps({"error": "You already created this model repo", "url": f"{self.endpoint}/{repo_id}"}).encode()
            self.private[repo_id] = request.get("visibility") == "private" or bool(request.get("private"))
            self.commit(repo_id, {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"})
            return 200, {}, json.dumps({"url": f"{self.endpoint}/{repo_id}"}).encode()
        if len(parts) != 6 or parts[:2] != ["api", "models"] or parts[4] not in ("preupload", "commit"):
            return 404, {}, b"no such api"
        repo_id, action, revision = "/".join(parts[2:4]), parts[4], parts[5]
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        if revision not in repo.refs:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found"
        if action == "preupload":
            files = json.loads(body)["files"]
            answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            return 200, {}, json.dumps({"files": answer}).encode()
        files = dict(repo.commits[repo.refs[revision]])
        for line in body.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] != "header":
                return 400, {}, f"unsupported commit operation {item['key']}".encode()
        sha = self.commit(repo_id, files, refs=(revision,))
        return 200, {}, json.dumps({"commitUrl": f"{self.endpoint}/{repo_id}/commit/{sha}", "commitOid": sha}).encode()

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body of a ``resolve`` request on the Hub origin."""
        parts = [unquote(p) for p in path.split("?")[0].strip("/").split("/")]
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {}, b"not a resolve url"
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo_id in self.faults:
            return self.faults[repo_id], {}, b"injected fault"
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"Repository not found"
        sha = repo.refs.get(revision) or (revision if revision in repo.commits else None)
        if sha is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found"
        files = repo.commits[sha]
        if filename not in files:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, b"Entry not found"
        data = files[filename]
        headers = {"X-Repo-Commit": sha, "ETag": f'"{_git_blob_sha(data)}"'}
        if filename.endswith(LFS_SUFFIXES):
            digest = hashlib.sha256(data).hexdigest()
            headers.update({"Location": f"{self.cdn}/{digest}", "X-Linked-Etag": f'"{digest}"',
                            "X-Linked-Size": str(len(data))})
            return 302, headers, b""
        return 200, headers, data


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _handler(server: HubServer, *, cdn: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_HEAD(self) -> None:
            self._reply(body=False)

        def do_GET(self) -> None:
            self._reply(body=True)

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, payload = (404, {}, b"") if cdn else server._upload(self.path, self.headers, data)
            self._send(status, {"Content-Type": "application/json", **headers}, payload, body=True)

        def _reply(self, *, body: bool) -> None:
            parts = [unquote(p) for p in self.path.split("?")[0].strip("/").split("/")]
            hostile = None if cdn or len(parts) < 5 else server.hostiles.get(("/".join(parts[:2]), "/".join(parts[4:])))
            if hostile is not None:
                self._hostile(hostile, server.repos["/".join(parts[:2])].refs["main"], body=body)
                return
            if cdn:
                data = server._blobs.get(self.path.strip("/"))
                status, headers, payload = (200, {}, data) if data is not None else (404, {}, b"no such blob")
                if body and server.lfs_delay:
                    time.sleep(server.lfs_delay)
            else:
                status, headers, payload = server._answer(self.path)
            self._send(status, headers, payload, body=body)

        def _hostile(self, hostile: Hostile, sha: str, *, body: bool) -> None:
            server._record(self.command, self.path, 200)
            if hostile.mute:
                time.sleep(hostile.mute)
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", sha)
            self.send_header("ETag", f'"{hashlib.sha1(self.path.encode()).hexdigest()}"')
            if not body:
                self.send_header("Content-Length", str(hostile.announce))
                self.end_headers()
                return
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            chunk = 1 if hostile.byte_every else 1 << 16
            try:
                for start in range(0, hostile.send, chunk):
                    self.wfile.write(b" " * min(chunk, hostile.send - start))
                    self.wfile.flush()
                    time.sleep(hostile.byte_every)
            except OSError:  # the client hung up
                pass

        def _send(self, status: int, headers: dict[str, str], payload: bytes, *, body: bool) -> None:
            server._record(self.command, ("cdn:" if cdn else "") + self.path, status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if body:
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def closed_endpoint() -> str:
    """An http endpoint on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def client_env(endpoint: str, cache: Path, *, offline: bool = False) -> dict[str, str]:
    """The environment of a Hub client process: this endpoint and cache; no token, telemetry or Xet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_", "TRANSFORMERS_"))}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(cache.parent / "hf_home"),
        HF_HUB_CACHE=str(cache),
        HF_HUB_OFFLINE="1" if offline else "0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_ETAG_TIMEOUT="5",
        HF_HUB_DOWNLOAD_TIMEOUT="5",
        NO_PROXY="127.0.0.1",
        OMP_NUM_THREADS="1",  # tiny models; OpenMP threads spinning on a busy machine only slow them down
    )
    return env


def start_client(steps: list[dict[str, Any]], env: Mapping[str, str]) -> subprocess.Popen[str]:
    """Start ``hubclient.py`` on ``steps`` (see its docstring); collect it with :func:`finish_client`."""
    return subprocess.Popen([sys.executable, str(CLIENT), json.dumps(steps)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env))


def finish_client(proc: subprocess.Popen[str], timeout: float = 180) -> list[dict[str, Any]]:
    """Wait for a client started by :func:`start_client` and return one result per step."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"hub client exited with {proc.returncode}:\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_client(steps: list[dict[str, Any]], env: Mapping[str, str]) -> list[dict[str, Any]]:
    """Run ``hubclient.py`` on ``steps`` in a fresh interpreter and return one result per step."""
    return finish_client(start_client(steps, env))
