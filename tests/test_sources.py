"""Where a model comes from: local folders, the catalog and the (mock) Hub, and bad input."""

from __future__ import annotations

import json

import pytest
from hubmock import GOOD_TOKEN, safetensors_file, tiny_llama_config, tiny_llama_tensors

from cfgexplorer import load_model
from cfgexplorer.errors import GatedModelError, ModelConfigError, UnknownModelError
from cfgexplorer.sources import fill_defaults


def test_local_config_json_file(tmp_path):
    cfg = tiny_llama_config()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path / "config.json"))
    assert spec.source == "local"
    assert spec.num_layers == cfg["num_hidden_layers"]
    assert spec.hidden_size == cfg["hidden_size"]


def test_local_folder_reads_safetensors_headers_and_modelopt_config(tmp_path):
    cfg = tiny_llama_config()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "model.safetensors").write_bytes(safetensors_file(tiny_llama_tensors()))
    (tmp_path / "hf_quant_config.json").write_text(
        json.dumps({"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}})
    )
    spec = load_model(str(tmp_path))
    assert spec.safetensors_params is not None
    assert sum(spec.safetensors_params.values()) > 0
    assert spec.quant.method == "modelopt-fp8"
    assert spec.quant.kv_cache_dtype == "fp8"


def test_truncated_config_is_one_clear_sentence(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 40')
    with pytest.raises(ModelConfigError, match=r"not valid JSON \(line 1.*truncated"):
        load_model(str(path))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelConfigError, match=r"has no config\.json"):
        load_model(str(tmp_path))


def test_missing_path_says_so():
    with pytest.raises(UnknownModelError, match="does not exist"):
        load_model("./no/such/model/config.json")


def test_garbage_reference_is_refused_without_touching_the_hub():
    with pytest.raises(UnknownModelError, match="neither a catalog model"):
        load_model("not a model id")
    with pytest.raises(UnknownModelError, match="no model given"):
        load_model("   ")


def test_model_type_unknown_to_transformers_is_read_as_plain_json(tmp_path):
    cfg = tiny_llama_config(model_type="brand_new_arch_2027", architectures=["BrandNewForCausalLM"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path))
    assert spec.model_type == "brand_new_arch_2027"
    assert spec.params_total > 0


def test_hub_model_is_fetched_and_cached_for_offline_use(hub_env):
    spec = load_model("TINY-ORG/tiny-llama")
    assert spec.source == "hub"
    assert spec.model_id == "tiny-org/tiny-llama"
    assert spec.revision
    assert spec.safetensors_params
    hub_env.set_offline()
    again = load_model("tiny-org/tiny-llama")
    assert again.params_total == spec.params_total


def test_gated_hub_model_needs_a_token(hub_env):
    with pytest.raises(GatedModelError, match="gated"):
        load_model("gated-org/Gated-Llama")
    assert load_model("gated-org/Gated-Llama", token=GOOD_TOKEN).source == "hub"


def test_unknown_hub_model_and_offline_without_cache(hub_env):
    with pytest.raises(UnknownModelError):
        load_model("nobody/nothing-here")
    hub_env.set_offline()
    with pytest.raises(UnknownModelError, match="cannot be reached"):
        load_model("nobody/never-seen")


def test_hub_repo_without_config_or_with_malformed_config(hub_env):
    with pytest.raises(ModelConfigError, match=r"config\.json"):
        load_model("tiny-org/no-config")
    with pytest.raises(ModelConfigError, match="JSON"):
        load_model("tiny-org/truncated-config")


def test_missing_shape_keys_are_named_not_filled_with_defaults(tmp_path):
    cfg = tiny_llama_config()
    del cfg["hidden_size"]
    del cfg["num_hidden_layers"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelConfigError, match="lacks hidden_size and num_hidden_layers"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("num_hidden_layers", 10**12, "outside"),
        ("hidden_size", "lots", "not a whole number"),
        ("max_position_embeddings", "lots", "not a whole number"),
        ("num_key_value_heads", True, "not a whole number"),
        ("num_attention_heads", 32.5, "not a whole number"),
        ("vocab_size", -5, "outside"),
    ],
)
def test_implausible_or_mistyped_sizes_are_one_sentence(tmp_path, key, value, fragment):
    cfg = tiny_llama_config()
    cfg[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelConfigError, match=fragment):
        load_model(str(tmp_path))


def test_nan_in_config_is_a_config_error(tmp_path):
    text = json.dumps(tiny_llama_config()).replace('"hidden_size": ', '"hidden_size": NaN, "x": ')
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ModelConfigError, match="hidden_size=nan"):
        load_model(str(tmp_path))


def test_unknown_architecture_plans_with_a_note(tmp_path):
    cfg = tiny_llama_config(model_type="brand_new_arch_2027")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path))
    assert any("unknown to the installed transformers" in n for n in spec.notes)


def test_non_string_reference_is_refused():
    with pytest.raises(UnknownModelError, match="must be a string"):
        load_model(123)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model_type", ["qwen3", "gemma3_text"])
def test_huge_layer_count_is_refused_before_transformers_builds_per_layer_lists(
    tmp_path, model_type
):
    # These configs make transformers build a list entry per layer: 10**12 entries would
    # run until memory is gone, so the size check must come first.
    cfg = tiny_llama_config(model_type=model_type)
    cfg["num_hidden_layers"] = 10**12
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelConfigError, match="num_hidden_layers=1000000000000, outside"):
        load_model(str(tmp_path))
    with pytest.raises(ModelConfigError, match=r"outside 0\.\.10,000"):
        fill_defaults(cfg)


def test_a_local_config_is_named_by_its_folder_and_served_from_its_absolute_path(
    tmp_path, monkeypatch
):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(tiny_llama_config()))
    monkeypatch.chdir(folder)
    spec = load_model("config.json")
    assert spec.model_id == "my-model"  # not "."
    assert spec.local_path == str(folder.resolve())
    assert spec.serve_target == str(folder.resolve())


def test_an_uploaded_config_is_served_from_a_placeholder_folder():
    from cfgexplorer.spec import spec_from_config

    named = spec_from_config(tiny_llama_config(), model_id="acme/chat-7b", source="upload")
    assert named.serve_target == "/path/to/chat-7b"
    bare = spec_from_config(tiny_llama_config(), model_id="config.json", source="upload")
    assert bare.serve_target == "/path/to/model"


def test_unreadable_safetensors_header_is_noted_and_the_config_counts(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(tiny_llama_config()))
    (tmp_path / "model.safetensors").write_bytes(b"\x05\x00")  # shorter than a header
    spec = load_model(str(tmp_path))
    assert spec.safetensors_params is None
    assert spec.params_total == spec.params.total
    assert any("safetensors headers in" in n and "could not be read" in n for n in spec.notes)


def test_safetensors_counts_that_cannot_be_this_model_are_ignored_with_a_note():
    from cfgexplorer.spec import spec_from_config

    computed = spec_from_config(tiny_llama_config(), model_id="x/y", source="hub").params.total
    for counts, why in (
        ({"BF16": -5}, "negative or empty counts (BF16)"),
        ({"BF16": 10**20}, f"they count {10**20:,} parameters, the architecture {computed:,}"),
    ):
        spec = spec_from_config(
            tiny_llama_config(), model_id="x/y", source="hub", safetensors_params=counts
        )
        assert spec.safetensors_params is None
        assert spec.params_total == computed
        assert any(why in n for n in spec.notes)
    exact = spec_from_config(
        tiny_llama_config(), model_id="x/y", source="hub", safetensors_params={"BF16": computed}
    )
    assert exact.safetensors_params == {"BF16": computed}
    assert not any("safetensors" in n for n in exact.notes)


def test_empty_config_is_called_empty(tmp_path):
    (tmp_path / "config.json").write_text("  \n")
    with pytest.raises(ModelConfigError, match=r"config\.json is empty; download"):
        load_model(str(tmp_path))


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("vocab_size", None, "sets vocab_size to null"),
        ("num_attention_heads", None, "sets num_attention_heads to null"),
        ("hidden_size", None, "lacks hidden_size"),
        ("head_dim", 0, "has head_dim 0"),
    ],
)
def test_null_or_zero_sizes_are_not_filled_with_defaults(tmp_path, key, value, fragment):
    cfg = tiny_llama_config(model_type="qwen3")
    cfg[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelConfigError, match=fragment):
        load_model(str(tmp_path))


def test_null_head_dim_means_hidden_over_heads(tmp_path):
    cfg = tiny_llama_config(model_type="qwen3")
    cfg["head_dim"] = None
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = load_model(str(tmp_path))
    assert spec.head_dim == cfg["hidden_size"] // cfg["num_attention_heads"]


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [("a" * 300, "is neither a catalog model nor a Hub id"), ("a/" * 3000, "6,000 characters")],
)
def test_overlong_model_references_are_one_sentence(ref, fragment):
    with pytest.raises(UnknownModelError, match=fragment):
        load_model(ref)
