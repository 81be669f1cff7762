"""A stand-in for the Hugging Face Hub on 127.0.0.1, and the fixtures that point at it.

It speaks the few endpoints ``huggingface_hub`` uses to read a model:

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}`` (model info;
  ``expand``/``securityStatus``/``blobs`` query parameters are accepted and ignored: the
  whole record is always returned, which ``ModelInfo`` tolerates);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{filename}`` with ``X-Repo-Commit``, ``ETag``,
  ``Content-Length`` and ``Accept-Ranges``, and ``Range: bytes=a-b`` answered with 206
  (safetensors headers are read that way);
- ``GET /api/agent-harnesses`` (``huggingface_hub`` builds its user agent from it), answered
  with an empty registry.

Errors carry the ``X-Error-Code`` header ``huggingface_hub`` maps to its exception classes
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo``). Repos are looked up
case-insensitively and answer with their canonical id, as the Hub does.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

GOOD_TOKEN = "hf_mock_token_with_access"  # the only token the gated mock repo accepts
SLOW_DELAY_S = 5.0  # how long the slow repo sleeps before answering any request

_ITEM_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "I8": 1, "U8": 1}


@dataclass
class MockRepo:
    """One model repository as the mock serves it."""

    repo_id: str  # canonical spelling
    files: dict[str, bytes]
    sha: str
    gated: bool | str = False  # False, "auto" or "manual", as the Hub reports it
    safetensors_info: dict[str, Any] | None = None  # the model-info "safetensors" field
    delay_s: float = 0.0  # sleep before answering anything about this repo
    file_delay_s: float = 0.0  # sleep before answering file requests only


@dataclass
class RequestRecord:
    """What the mock saw of one request (tests assert on it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    range: str | None


# ---------------------------------------------------------------------------------------------
# Building a tiny but real checkpoint


def safetensors_file(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """Return a valid safetensors file (zero-filled data) for ``name -> (dtype, shape)``."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _ITEM_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to a multiple of 8 bytes
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def tiny_llama_config(**overrides: Any) -> dict[str, Any]:
    """A Llama-shaped config small enough to serve as a real checkpoint."""
    config: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 128,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    config.update(overrides)
    return config


def tiny_llama_tensors(layers: range | None = None, ends: bool = True) -> dict:
    """Tensors of the tiny Llama: BF16 matrices, F32 norms.

    ``layers`` picks decoder layers and ``ends`` adds embeddings, final norm and LM head, so
    that shards can be cut from the same model.
    """
    vocab, hidden, inter, kv = 128, 32, 64, 16
    tensors: dict[str, tuple[str, list[int]]] = {}
    if ends:
        tensors["model.embed_tokens.weight"] = ("BF16", [vocab, hidden])
    for i in layers if layers is not None else range(2):
        p = f"model.layers.{i}"
        tensors[f"{p}.self_attn.q_proj.weight"] = ("BF16", [hidden, hidden])
        tensors[f"{p}.self_attn.k_proj.weight"] = ("BF16", [kv, hidden])
        tensors[f"{p}.self_attn.v_proj.weight"] = ("BF16", [kv, hidden])
        tensors[f"{p}.self_attn.o_proj.weight"] = ("BF16", [hidden, hidden])
        tensors[f"{p}.mlp.gate_proj.weight"] = ("BF16", [inter, hidden])
        tensors[f"{p}.mlp.up_proj.weight"] = ("BF16", [inter, hidden])
        tensors[f"{p}.mlp.down_proj.weight"] = ("BF16", [hidden, inter])
        tensors[f"{p}.input_layernorm.weight"] = ("F32", [hidden])
        tensors[f"{p}.post_attention_layernorm.weight"] = ("F32", [hidden])
    if ends:
        tensors["model.norm.weight"] = ("F32", [hidden])
        tensors["lm_head.weight"] = ("BF16", [vocab, hidden])
    return tensors


# Parameter counts of the tiny Llama per dtype:
# BF16 = 2 x 128 x 32 (embeddings, LM head) + 2 layers x (2 x 32x32 + 2 x 16x32 + 3 x 64x32)
# F32  = 2 layers x 2 x 32 + 32 (final norm)
TINY_LLAMA_PARAMS = {"BF16": 26624, "F32": 160}


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=2).encode()


def _sha(label: str) -> str:
    """A stable 40-hex commit id per repo."""
    return hashlib.sha1(label.encode()).hexdigest()


def default_repos() -> dict[str, MockRepo]:
    """The repos every test can rely on, keyed by lower-cased id."""
    single = safetensors_file(tiny_llama_tensors())
    shard_1 = safetensors_file(tiny_llama_tensors(range(1), ends=False))
    shard_2 = safetensors_file(tiny_llama_tensors(range(1, 2), ends=True))
    shard_names = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
    weight_map = dict.fromkeys(tiny_llama_tensors(range(1), ends=False), shard_names[0])
    weight_map |= dict.fromkeys(tiny_llama_tensors(range(1, 2), ends=True), shard_names[1])
    index = {"metadata": {"total_size": len(shard_1) + len(shard_2)}, "weight_map": weight_map}
    config = _json_bytes(tiny_llama_config())

    fp8_config = tiny_llama_config(
        quantization_config={"quant_method": "modelopt", "quant_algo": "FP8"},
    )
    quant = {
        "producer": {"name": "modelopt", "version": "0.0.0"},
        "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"},
    }

    repos = [
        MockRepo("tiny-org/tiny-llama", {"config.json": config, "model.safetensors": single}, ""),
        MockRepo(
            "tiny-org/tiny-sharded",
            {
                "config.json": config,
                "model.safetensors.index.json": _json_bytes(index),
                shard_names[0]: shard_1,
                shard_names[1]: shard_2,
            },
            "",
        ),
        MockRepo(
            "RedHatAI/Tiny-Llama-FP8",
            {
                "config.json": _json_bytes(fp8_config),
                "hf_quant_config.json": _json_bytes(quant),
                "model.safetensors": b"weights are described by the model info",
            },
            "",
            safetensors_info={"parameters": {"BF16": 8320, "F8_E4M3": 18464}, "total": 26784},
        ),
        MockRepo(
            "gated-org/Gated-Llama",
            {"config.json": config, "model.safetensors": single},
            "",
            gated="manual",
        ),
        MockRepo("tiny-org/no-config", {"README.md": b"# weights only\n"}, ""),
        MockRepo("tiny-org/no-weights", {"config.json": config}, ""),
        MockRepo(
            "tiny-org/truncated-config",
            {"config.json": config[: len(config) // 2], "model.safetensors": single},
            "",
        ),
        MockRepo("tiny-org/list-config", {"config.json": b"[1, 2, 3]\n"}, ""),
        MockRepo(
            "tiny-org/bad-quant-config",
            {"config.json": config, "hf_quant_config.json": b'{"quantization": '},
            "",
        ),
        MockRepo("tiny-org/slow-model", {"config.json": config}, "", delay_s=SLOW_DELAY_S),
        MockRepo("tiny-org/slow-files", {"config.json": config}, "", file_delay_s=SLOW_DELAY_S),
    ]
    for repo in repos:
        repo.sha = _sha(repo.repo_id)
    return {repo.repo_id.lower(): repo for repo in repos}


# ---------------------------------------------------------------------------------------------
# The server


_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)??)(?:/revision/(?P<rev>[^/]+))?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's client expects
    server: _MockServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def _dispatch(self, body: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        self.server.hub.requests.append(
            RequestRecord(
                method=self.command,
                path=path,
                query=parse_qs(parts.query),
                authorization=self.headers.get("Authorization"),
                range=self.headers.get("Range"),
            )
        )
        if path == "/api/agent-harnesses":
            self._send_json(HTTPStatus.OK, {"standardEnvVars": [], "harnesses": {}}, body)
        elif match := _INFO.match(path):
            self._model_info(match["repo"], match["rev"], body)
        elif match := _RESOLVE.match(path):
            self._resolve(match["repo"], match["rev"], match["file"], body)
        else:
            self._send_error(HTTPStatus.NOT_FOUND, None, "Not found", body)

    def _lookup(self, repo_id: str, body: bool) -> MockRepo | None:
        repo = self.server.hub.repos.get(repo_id.lower())
        if repo is None:
            self._send_error(HTTPStatus.NOT_FOUND, "RepoNotFound", "Repository not found", body)
            return None
        if repo.delay_s and self.server.hub.stopping.wait(repo.delay_s):
            return None  # the server is shutting down
        return repo

    def _check_revision(self, repo: MockRepo, rev: str | None, body: bool) -> bool:
        if rev in (None, "main", repo.sha):
            return True
        self._send_error(
            HTTPStatus.NOT_FOUND, "RevisionNotFound", f"Invalid rev id: {rev}", body, repo
        )
        return False

    def _model_info(self, repo_id: str, rev: str | None, body: bool) -> None:
        repo = self._lookup(repo_id, body)
        if repo is None or not self._check_revision(repo, rev, body):
            return
        info: dict[str, Any] = {
            "_id": repo.sha[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.sha,
            "private": False,
            "disabled": False,
            "gated": repo.gated,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "tags": ["safetensors"] if repo.safetensors_info else [],
            "siblings": [{"rfilename": name} for name in sorted(repo.files)],
        }
        if repo.safetensors_info is not None:
            info["safetensors"] = repo.safetensors_info
        self._send_json(HTTPStatus.OK, info, body)

    def _resolve(self, repo_id: str, rev: str, filename: str, body: bool) -> None:
        repo = self._lookup(repo_id, body)
        if repo is None or not self._check_revision(repo, rev, body):
            return
        if repo.file_delay_s and self.server.hub.stopping.wait(repo.file_delay_s):
            return
        if repo.gated and not self._authorised(repo, body):
            return
        content = repo.files.get(filename)
        if content is None:
            self._send_error(
                HTTPStatus.NOT_FOUND, "EntryNotFound", f"{filename} does not exist", body, repo
            )
            return

        status, start, end = HTTPStatus.OK, 0, len(content) - 1
        wanted = _RANGE.match(self.headers.get("Range", ""))
        if wanted:
            start = int(wanted[1])
            end = min(int(wanted[2]) if wanted[2] else len(content) - 1, len(content) - 1)
            status = HTTPStatus.PARTIAL_CONTENT
        chunk = content[start : end + 1]

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        self.send_header("X-Repo-Commit", repo.sha)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(content)}")
        self.end_headers()
        if body:
            self.wfile.write(chunk)

    def _authorised(self, repo: MockRepo, body: bool) -> bool:
        """Answer as the Hub does for a gated repo: 401 without a token, 403 with a bad one."""
        auth = self.headers.get("Authorization")
        if auth == f"Bearer {GOOD_TOKEN}":
            return True
        if auth is None:
            status = HTTPStatus.UNAUTHORIZED
            message = f"Access to model {repo.repo_id} is restricted. You must be authenticated."
        else:
            status = HTTPStatus.FORBIDDEN
            message = f"Access to model {repo.repo_id} is restricted; you are not in the list."
        self._send_error(status, "GatedRepo", message, body, repo)
        return False

    def _send_json(self, status: HTTPStatus, data: Any, body: bool) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)

    def _send_error(
        self,
        status: HTTPStatus,
        code: str | None,
        message: str,
        body: bool,
        repo: MockRepo | None = None,
    ) -> None:
        payload = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if repo is not None:
            self.send_header("X-Repo-Commit", repo.sha)
        self.end_headers()
        if body:
            self.wfile.write(payload)


class _MockServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler asleep in the slow repo must not hold up teardown
    hub: HubMock

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client hung up on a slow answer (it timed out: that is the test)."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class HubMock:
    """A running mock Hub: its base ``url``, the ``repos`` it serves and the ``requests`` seen."""

    repos: dict[str, MockRepo] = field(default_factory=default_repos)
    requests: list[RequestRecord] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _server: _MockServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the mock Hub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubMock:
        server = _MockServer(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free one
        server.hub = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="hubmock", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def paths(self, method: str | None = None) -> list[str]:
        """Paths requested so far, optionally only those of one HTTP method."""
        return [r.path for r in self.requests if method is None or r.method == method]


# ---------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def hub_server() -> Iterator[HubMock]:
    """A mock Hub on 127.0.0.1, stopped at teardown."""
    hub = HubMock().start()
    try:
        yield hub
    finally:
        hub.stop()


@dataclass
class HubEnv:
    """The environment of one test talking to the mock Hub."""

    server: HubMock
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def set_offline(self, offline: bool = True) -> None:
        """Switch ``HF_HUB_OFFLINE`` as huggingface_hub sees it (env var and constant)."""
        from huggingface_hub import constants

        if offline:
            self.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        else:
            self.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        self.monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)

    def set_endpoint(self, endpoint: str) -> None:
        """Point ``HF_ENDPOINT`` (env var and constants) somewhere on loopback."""
        from huggingface_hub import constants

        assert endpoint.startswith(("http://127.0.0.1:", "http://localhost:")), endpoint
        self.monkeypatch.setenv("HF_ENDPOINT", endpoint)
        self.monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        self.monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _guard_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to resolve or connect to a host other than loopback fail loudly."""
    import socket

    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK and host not in (b"127.0.0.1", b"localhost"):
            raise OSError(f"test tried to resolve {host!r}; only loopback is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise OSError(f"test tried to connect to {address!r}; only loopback is allowed")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


_CLEARED_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_OIDC_RESOURCE",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "XDG_CACHE_HOME",
)


@pytest.fixture
def hub_env(hub_server: HubMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    """Point huggingface_hub and cfgexplorer at the mock Hub and at empty temporary caches.

    huggingface_hub reads most of its settings once, at import, into
    ``huggingface_hub.constants``; the environment variables are set for child processes and
    for code that reads them late, and the constants are patched (and restored by
    ``monkeypatch``) for this process. Connections to anything but loopback fail.
    """
    from huggingface_hub import constants

    _guard_loopback_only(monkeypatch)
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    for name in _CLEARED_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("CFGEXPLORER_CACHE", str(tmp_path / "cfgexplorer_cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    patched = {
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "AGENT_HARNESSES_PATH": str(hf_home / ".agent_harnesses.json"),
        "HF_HUB_ETAG_TIMEOUT": constants.DEFAULT_ETAG_TIMEOUT,
        "HF_HUB_DOWNLOAD_TIMEOUT": constants.DEFAULT_DOWNLOAD_TIMEOUT,
        "HF_HUB_DISABLE_TELEMETRY": True,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value, raising=hasattr(constants, name))

    env = HubEnv(server=hub_server, tmp=tmp_path, monkeypatch=monkeypatch)
    env.set_endpoint(hub_server.url)
    env.set_offline(False)
    return env
