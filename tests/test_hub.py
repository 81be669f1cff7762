"""cfgexplorer.hub against the mock Hub in tests/hubmock.py (never the real one)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hubmock import GOOD_TOKEN, TINY_LLAMA_PARAMS, HubEnv, tiny_llama_config

from cfgexplorer.errors import (
    GatedModelError,
    HubUnavailableError,
    ModelConfigError,
    UnknownModelError,
)
from cfgexplorer.hub import HubFiles, fetch_hub_files

OFFLINE_SENTENCE = (
    "not in the bundled catalog and the Hub cannot be reached; "
    "pass a local config.json, or set HF_TOKEN and go online"
)


def _closed_loopback_port() -> int:
    """A loopback port nobody listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_line(message: str) -> bool:
    return "\n" not in message and message.endswith(".")


# --- success -------------------------------------------------------------------------------


def test_single_safetensors_repo_gives_config_and_params_per_dtype(hub_env: HubEnv) -> None:
    repo = hub_env.server.repos["tiny-org/tiny-llama"]

    files = fetch_hub_files("tiny-org/tiny-llama")

    assert isinstance(files, HubFiles)
    assert files.repo_id == "tiny-org/tiny-llama"
    assert files.revision == repo.sha
    assert files.config == tiny_llama_config()
    assert files.hf_quant_config is None
    assert files.safetensors_params == TINY_LLAMA_PARAMS
    assert files.gated is False
    assert files.from_cache is False
    assert files.endpoint == hub_env.server.url
    # The header was read with a range request, not by downloading the weights.
    ranges = [r.range for r in hub_env.server.requests if r.path.endswith("model.safetensors")]
    assert ranges == ["bytes=0-100000"]


def test_sharded_repo_sums_params_over_every_shard(hub_env: HubEnv) -> None:
    files = fetch_hub_files("tiny-org/tiny-sharded")

    assert files.safetensors_params == TINY_LLAMA_PARAMS
    requested = hub_env.server.paths("GET")
    assert any(p.endswith("model-00001-of-00002.safetensors") for p in requested)
    assert any(p.endswith("model-00002-of-00002.safetensors") for p in requested)


def test_mixed_case_query_returns_canonical_id_quant_config_and_info_params(
    hub_env: HubEnv,
) -> None:
    files = fetch_hub_files("redhatai/tiny-llama-fp8")

    assert files.repo_id == "RedHatAI/Tiny-Llama-FP8"
    assert files.config["quantization_config"]["quant_method"] == "modelopt"
    assert files.hf_quant_config is not None
    assert files.hf_quant_config["quantization"]["quant_algo"] == "FP8"
    assert files.safetensors_params == {"BF16": 8320, "F8_E4M3": 18464}
    # The Hub already counted the parameters: no safetensors header is fetched.
    assert not [p for p in hub_env.server.paths() if p.endswith(".safetensors")]
    # Files are read at the canonical id and the resolved commit.
    sha = hub_env.server.repos["redhatai/tiny-llama-fp8"].sha
    assert f"/RedHatAI/Tiny-Llama-FP8/resolve/{sha}/config.json" in hub_env.server.paths()


def test_model_info_asks_for_safetensors_field(hub_env: HubEnv) -> None:
    fetch_hub_files("tiny-org/tiny-llama")

    info = [r for r in hub_env.server.requests if r.path.startswith("/api/models/")]
    assert len(info) == 1
    assert "safetensors" in info[0].query["expand"]


def test_repo_without_safetensors_is_not_an_error(hub_env: HubEnv) -> None:
    files = fetch_hub_files("tiny-org/no-weights")

    assert files.safetensors_params is None
    assert files.config["model_type"] == "llama"
    assert any("no safetensors" in note for note in files.notes)


def test_explicit_revision_is_honoured(hub_env: HubEnv) -> None:
    sha = hub_env.server.repos["tiny-org/tiny-llama"].sha

    files = fetch_hub_files("tiny-org/tiny-llama", revision=sha)

    assert files.revision == sha
    assert f"/api/models/tiny-org/tiny-llama/revision/{sha}" in hub_env.server.paths()


# --- gated repos -----------------------------------------------------------------------------


def test_gated_repo_without_token_is_gated_error_401(hub_env: HubEnv) -> None:
    with pytest.raises(GatedModelError) as err:
        fetch_hub_files("gated-org/Gated-Llama")

    message = str(err.value)
    assert "gated-org/Gated-Llama is gated" in message
    assert "accept its licence on the Hub and pass a token (--hf-token or HF_TOKEN)" in message
    assert _one_line(message)
    resolves = [r for r in hub_env.server.requests if "/resolve/" in r.path]
    assert resolves
    assert all(r.authorization is None for r in resolves)


def test_gated_repo_with_token_lacking_access_is_gated_error_403(hub_env: HubEnv) -> None:
    with pytest.raises(GatedModelError, match="token given has no access"):
        fetch_hub_files("gated-org/Gated-Llama", token="hf_not_on_the_list")


def test_gated_repo_with_token_argument_succeeds(hub_env: HubEnv) -> None:
    files = fetch_hub_files("gated-org/gated-llama", token=GOOD_TOKEN)

    assert files.repo_id == "gated-org/Gated-Llama"
    assert files.gated == "manual"
    assert files.safetensors_params == TINY_LLAMA_PARAMS
    resolves = [r for r in hub_env.server.requests if "/resolve/" in r.path]
    assert {r.authorization for r in resolves} == {f"Bearer {GOOD_TOKEN}"}


def test_gated_repo_with_hf_token_variable_succeeds(
    hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)

    files = fetch_hub_files("gated-org/Gated-Llama")

    assert files.config == tiny_llama_config()


def test_token_never_reaches_the_log_or_the_cache(
    hub_env: HubEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    fetch_hub_files("gated-org/Gated-Llama", token=GOOD_TOKEN)
    with pytest.raises(GatedModelError) as err:
        fetch_hub_files("gated-org/Gated-Llama", token="hf_secret_but_wrong", revision="main")

    assert GOOD_TOKEN not in caplog.text
    assert "hf_secret_but_wrong" not in str(err.value)
    cached = "".join(p.read_text() for p in (hub_env.tmp / "cfgexplorer_cache").rglob("*.json"))
    assert cached
    assert GOOD_TOKEN not in cached


# --- missing things and bad files ------------------------------------------------------------


def test_missing_repo_is_unknown_model(hub_env: HubEnv) -> None:
    with pytest.raises(UnknownModelError) as err:
        fetch_hub_files("nobody/no-such-model")

    assert not isinstance(err.value, HubUnavailableError)
    assert "nobody/no-such-model is not a model on the Hub" in str(err.value)
    assert _one_line(str(err.value))


def test_missing_revision_is_unknown_model(hub_env: HubEnv) -> None:
    with pytest.raises(UnknownModelError, match="revision 'no-such-branch' of tiny-org/tiny"):
        fetch_hub_files("tiny-org/tiny-llama", revision="no-such-branch")


def test_malformed_repo_id_is_unknown_model(hub_env: HubEnv) -> None:
    with pytest.raises(UnknownModelError, match="not a valid Hub model id"):
        fetch_hub_files("too/many/slashes")


def test_repo_without_config_json_is_config_error(hub_env: HubEnv) -> None:
    with pytest.raises(ModelConfigError) as err:
        fetch_hub_files("tiny-org/no-config")

    assert "tiny-org/no-config on the Hub has no config.json" in str(err.value)
    assert _one_line(str(err.value))


def test_truncated_config_json_is_config_error(hub_env: HubEnv) -> None:
    with pytest.raises(ModelConfigError) as err:
        fetch_hub_files("tiny-org/truncated-config")

    message = str(err.value)
    assert "config.json of tiny-org/truncated-config is not valid JSON" in message
    assert "truncated?" in message
    assert _one_line(message)


def test_config_json_that_is_not_an_object_is_config_error(hub_env: HubEnv) -> None:
    with pytest.raises(ModelConfigError, match="holds a JSON list, not an object"):
        fetch_hub_files("tiny-org/list-config")


def test_malformed_quant_config_is_config_error(hub_env: HubEnv) -> None:
    with pytest.raises(ModelConfigError, match=r"hf_quant_config\.json of tiny-org/bad-quant"):
        fetch_hub_files("tiny-org/bad-quant-config")


def test_bad_files_are_not_cached(hub_env: HubEnv) -> None:
    with pytest.raises(ModelConfigError):
        fetch_hub_files("tiny-org/truncated-config")
    hub_env.set_offline()

    with pytest.raises(HubUnavailableError):
        fetch_hub_files("tiny-org/truncated-config")


# --- slow, offline and unreachable -----------------------------------------------------------


def test_slow_hub_gives_timeout_error_within_bound(hub_env: HubEnv) -> None:
    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as err:
        fetch_hub_files("tiny-org/slow-model", timeout_s=0.5)
    elapsed_s = time.monotonic() - start

    assert elapsed_s < 3.0  # the mock sleeps 5 s
    message = str(err.value)
    assert f"the Hub at {hub_env.server.url} did not answer within 0.5 s" in message
    assert isinstance(err.value, UnknownModelError)
    assert _one_line(message)


def test_cache_answers_with_hf_hub_offline_after_a_fetch(hub_env: HubEnv) -> None:
    fresh = fetch_hub_files("RedHatAI/Tiny-Llama-FP8")
    hub_env.set_offline()
    seen = len(hub_env.server.requests)

    cached = fetch_hub_files("redhatai/TINY-LLAMA-FP8")

    assert len(hub_env.server.requests) == seen  # the Hub was not asked
    assert cached.from_cache is True
    assert cached.repo_id == "RedHatAI/Tiny-Llama-FP8"
    assert cached.config == fresh.config
    assert cached.hf_quant_config == fresh.hf_quant_config
    assert cached.safetensors_params == fresh.safetensors_params
    assert cached.revision == fresh.revision
    assert cached.fetched_at == fresh.fetched_at
    assert any("local cache" in note for note in cached.notes)


def test_cache_answers_offline_by_commit_sha_too(hub_env: HubEnv) -> None:
    fresh = fetch_hub_files("tiny-org/tiny-llama")
    hub_env.set_offline()

    cached = fetch_hub_files("tiny-org/tiny-llama", revision=fresh.revision)

    assert cached.safetensors_params == TINY_LLAMA_PARAMS


def test_offline_only_in_the_environment_is_honoured(
    hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetch_hub_files("tiny-org/tiny-llama")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub.constants still says online
    seen = len(hub_env.server.requests)

    assert fetch_hub_files("tiny-org/tiny-llama").from_cache is True
    assert len(hub_env.server.requests) == seen


def test_offline_without_cache_says_so(hub_env: HubEnv) -> None:
    hub_env.set_offline()

    with pytest.raises(HubUnavailableError) as err:
        fetch_hub_files("tiny-org/tiny-llama")

    message = str(err.value)
    assert message.startswith("tiny-org/tiny-llama is not in the bundled catalog")
    assert "pass a local config.json, or set HF_TOKEN and go online" in message
    assert _one_line(message)
    assert hub_env.server.requests == []


def test_unreachable_hub_without_cache_says_so(hub_env: HubEnv) -> None:
    hub_env.set_endpoint(f"http://127.0.0.1:{_closed_loopback_port()}")

    start = time.monotonic()
    with pytest.raises(HubUnavailableError) as err:
        fetch_hub_files("tiny-org/tiny-llama")

    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert "tiny-org/tiny-llama is not in the bundled catalog and the Hub cannot be reached" in (
        message
    )
    assert "pass a local config.json, or set HF_TOKEN and go online" in message


def test_unreachable_hub_falls_back_to_cache(hub_env: HubEnv) -> None:
    fresh = fetch_hub_files("tiny-org/tiny-sharded")
    hub_env.set_endpoint(f"http://127.0.0.1:{_closed_loopback_port()}")

    cached = fetch_hub_files("tiny-org/tiny-sharded")

    assert cached.from_cache is True
    assert cached.safetensors_params == fresh.safetensors_params


def test_slow_hub_falls_back_to_cache(hub_env: HubEnv) -> None:
    fetch_hub_files("tiny-org/tiny-llama")
    hub_env.server.repos["tiny-org/tiny-llama"].delay_s = 5.0

    start = time.monotonic()
    cached = fetch_hub_files("tiny-org/tiny-llama", timeout_s=0.5)

    assert time.monotonic() - start < 3.0
    assert cached.from_cache is True


def test_unreadable_cache_file_is_ignored(hub_env: HubEnv) -> None:
    fetch_hub_files("tiny-org/tiny-llama")
    for path in (hub_env.tmp / "cfgexplorer_cache" / "hub").glob("*.json"):
        path.write_text('{"format": 1, "repo_id": ')
    hub_env.set_offline()

    with pytest.raises(HubUnavailableError):
        fetch_hub_files("tiny-org/tiny-llama")


def test_cache_file_is_plain_json_keyed_on_lower_case_id(hub_env: HubEnv) -> None:
    fetch_hub_files("RedHatAI/Tiny-Llama-FP8")

    names = sorted(p.name for p in (hub_env.tmp / "cfgexplorer_cache" / "hub").glob("*.json"))
    sha = hub_env.server.repos["redhatai/tiny-llama-fp8"].sha
    assert names == [f"redhatai--tiny-llama-fp8@{sha}.json", "redhatai--tiny-llama-fp8@main.json"]
    data = json.loads((hub_env.tmp / "cfgexplorer_cache" / "hub" / names[1]).read_text())
    assert data["repo_id"] == "RedHatAI/Tiny-Llama-FP8"


def test_hub_env_refuses_hosts_other_than_loopback(hub_env: HubEnv) -> None:
    with pytest.raises(OSError, match="only loopback is allowed"):
        socket.getaddrinfo("huggingface.co", 443)
    with socket.socket() as sock, pytest.raises(OSError, match="only loopback is allowed"):
        sock.connect(("192.0.2.1", 443))


# --- a fresh process, configured only by environment variables --------------------------------


def test_fresh_process_reads_hub_settings_from_the_environment(hub_env: HubEnv) -> None:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)  # HF_ENDPOINT, HF_HOME and CFGEXPLORER_CACHE set by hub_env
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    script = (
        "import json; from cfgexplorer.hub import fetch_hub_files; "
        "f = fetch_hub_files('redhatai/tiny-llama-fp8'); "
        "print(json.dumps([f.repo_id, f.safetensors_params]))"
    )

    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=hub_env.tmp,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert json.loads(out.stdout) == ["RedHatAI/Tiny-Llama-FP8", {"BF16": 8320, "F8_E4M3": 18464}]
    assert (Path(env["HF_HOME"]) / "hub").is_dir()
    assert any(p.startswith("/api/models/redhatai/") for p in hub_env.server.paths())


def test_a_hub_that_answers_info_but_stalls_on_files_is_cut_off(hub_env):
    started = time.monotonic()
    with pytest.raises(HubUnavailableError, match="did not finish answering"):
        fetch_hub_files("tiny-org/slow-files", timeout_s=0.5)
    # Without the overall deadline huggingface_hub would retry the file check for 60 s.
    assert time.monotonic() - started < 10
