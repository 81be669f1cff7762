"""llm-d-benchmark *benchmark reports*, versions 0.1, 0.2 and 0.2.1 (YAML or JSON).

Field map and pitfalls: FORMATS.md sections 3 to 8 in the shared reference.
Each report holds one operating point, so one row. Files are validated
against the bundled JSON schemas (v0.2 against the 0.2.1 schema, which is a
strict superset and accepts ``session_performance``, FORMATS.md P12).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from cfgexplorer.benchmarks.common import (
    Row,
    add_note,
    as_float,
    dig,
    epoch_seconds,
    finalize_row,
    is_known,
    iso_duration_seconds,
    latency_factor,
    put,
    put_gpu,
    put_stats,
    put_throughputs,
    scheduler_weights,
)
from cfgexplorer.errors import ReportFileError
from cfgexplorer.paths import data_dir

log = logging.getLogger(__name__)

FORMAT = "llm-d-report"
VERSIONS: tuple[str, ...] = ("0.1", "0.2", "0.2.1")

# Schema file checked for each version (0.2 uses 0.2.1's, see module docstring).
_SCHEMA_FOR_VERSION = {"0.1": "0.1", "0.2": "0.2.1", "0.2.1": "0.2.1"}

# Generators the shipped v0.1 schema's enum misses but real files carry (FORMATS.md P12).
_V01_EXTRA_GENERATORS = frozenset({"aiperf", "inferencemax", "fmperf"})

# Latency blocks -> our column stems.
_LATENCY_BLOCKS = {
    "time_to_first_token": "TTFT",
    "time_per_output_token": "TPOT",
    "inter_token_latency": "ITL",
    "normalized_time_per_output_token": "NTPOT",
    "request_latency": "E2EL",
}

# Relative tolerance when matching an inference-perf stage's rate and duration to the
# measured ones (assumption: Poisson arrivals stay within a few percent of the mean).
STAGE_MATCH_TOLERANCE = 0.05
# Achieved rate above the requested rate by more than this fraction means the stage
# index is wrong (FORMATS.md P2: achieved <= requested for open-loop loads).
ACHIEVED_OVER_REQUESTED = 1.10


def report_version(doc: Any) -> str | None:
    """The report version of a parsed document, or None if it is not a report."""
    if not isinstance(doc, Mapping) or "version" not in doc:
        return None
    version = doc["version"]
    text = str(version).strip()  # an unquoted YAML 0.2 is a float (FORMATS.md 1.1)
    if text not in VERSIONS:
        return None
    if text == "0.1" and ("metrics" in doc or "scenario" in doc):
        return text
    if text != "0.1" and ("results" in doc or "run" in doc):
        return text
    return None


def not_a_report_reason(doc: Mapping[str, Any]) -> str:
    """Why a document with a ``version`` key is not a report :func:`report_version` accepts."""
    text = str(doc["version"]).strip()
    if text not in VERSIONS:
        return (
            f"unknown format: report version {text!r} is not one of {', '.join(VERSIONS)}, "
            "and the file is no other known result format"
        )
    sections = "'metrics' or 'scenario'" if text == "0.1" else "'results' or 'run'"
    return (
        f"not a valid llm-d report: it says version {text} but has no {sections} section; "
        "check that the file is a complete benchmark report"
    )


@cache
def _validator(schema_version: str) -> Any:
    import jsonschema

    name = f"br_v{schema_version.replace('.', '_')}_json_schema.json"
    schema = json.loads((data_dir() / "schemas" / name).read_text())
    return jsonschema.Draft202012Validator(schema)


def _jsonable(node: Any) -> Any:
    """Datetimes (from unquoted YAML timestamps) to ISO strings, keys to strings."""
    if isinstance(node, Mapping):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_jsonable(v) for v in node]
    if isinstance(node, dt.date):
        return node.isoformat()
    return node


def validate(doc: Mapping[str, Any], version: str) -> None:
    """Raise :class:`ReportFileError` naming the first schema violation."""
    import jsonschema

    validator = _validator(_SCHEMA_FOR_VERSION[version])
    candidate = dict(_jsonable(doc))
    candidate["version"] = version
    errors = []
    for error in validator.iter_errors(candidate):
        where = "/".join(str(p) for p in error.path)
        lenient = version == "0.1" and where == "scenario/load/name"
        if not (lenient and str(error.instance) in _V01_EXTRA_GENERATORS):
            errors.append(error)
    if not errors:
        return
    best = jsonschema.exceptions.best_match(errors)
    where = "/".join(str(p) for p in best.absolute_path) or "(top level)"
    message = best.message
    if message.startswith(("{", "[")) or len(message) > 160:
        # The message would quote the whole offending block; name the rule instead.
        message = f"fails the schema's {best.validator!r} rule"
    raise ReportFileError(f"schema violation (v{version}) at {where}: {message}")


def import_report(doc: Mapping[str, Any], version: str) -> list[Row]:
    """One row from a validated report of the given version."""
    validate(doc, version)
    row: Row = {"Report_Version": version}
    if version == "0.1":
        _read_v01(doc, row)
    else:
        _read_v02(doc, row)
    return [finalize_row(row)]


# --------------------------------------------------------------------------- v0.1


def _read_v01(doc: Mapping[str, Any], row: Row) -> None:
    scenario = doc.get("scenario") or {}
    metrics = doc.get("metrics") or {}
    load = scenario.get("load") or {}
    generator = str(load.get("name") or "")
    if generator == "nop":
        raise ReportFileError("a 'nop' report measures model load time, not serving")
    if dig(load, "metadata", "file_type") == "session_lifecycle":
        raise ReportFileError("a session-lifecycle report has no request metrics")

    row["Workload_Generator"] = generator or None
    put(row, "Stage", as_float(dig(load, "metadata", "stage")))
    put(row, "Start", as_float(dig(metrics, "time", "start")))
    put(row, "Duration", as_float(dig(metrics, "time", "duration")))
    engine = dig(scenario, "platform", "engine", 0, "name")
    if engine:
        row["Platform"] = str(engine)

    args = load.get("args") or {}
    model = dig(scenario, "model", "name")
    if not model or str(model).lower() == "unknown":
        model = (
            dig(args, "server", "model_name")
            or dig(args, "tokenizer", "pretrained_model_name_or_path")
            or dig(args, "spec", "backend", "model")
            or (args.get("model") if isinstance(args, Mapping) else None)
        )
    if model and str(model).lower() != "unknown":
        row["Model"] = str(model)

    _v01_host(scenario, row)
    scheduler_weights(row, dig(scenario, "platform", "metadata", "inferenceScheduler"))
    _v01_results(metrics, row, generator)
    _v01_workload(args, generator, row)


def _parallelism(entry: Any) -> dict[str, float]:
    par = dig(entry, "parallelism") or {}
    return {k: as_float(par.get(k, 1)) for k in ("tp", "dp", "pp", "ep")}


def _entry_gpus(entry: Any) -> float:
    par = _parallelism(entry)
    count = as_float(dig(entry, "count"))
    product = par["tp"] * par["dp"] * par["pp"]
    known = [v for v in (count, product) if is_known(v) and v > 0]
    return max(known) if known else math.nan


def _put_parallelism(row: Row, prefix: str, entry: Any) -> None:
    for key, value in _parallelism(entry).items():
        put(row, f"{prefix}{key.upper()}", value)


def _v01_host(scenario: Mapping[str, Any], row: Row) -> None:
    types = dig(scenario, "host", "type") or []
    accelerators = dig(scenario, "host", "accelerator") or []
    if not types or not accelerators:
        return  # missing or empty host block: topology unknown (FORMATS.md P1)
    roles = [str(t).lower() for t in types]
    entries = list(zip(roles, accelerators, strict=False))
    put_gpu(row, dig(accelerators, 0, "model"))

    prefill = [a for r, a in entries if r == "prefill"]
    decode = [a for r, a in entries if r == "decode"]
    replica = [a for r, a in entries if r in ("replica", "aggregate")]
    if prefill and decode:
        row["Is_PD"] = True
        put(row, "P_Replicas", len(prefill))
        put(row, "D_Replicas", len(decode))
        _put_parallelism(row, "P_", prefill[0])
        _put_parallelism(row, "D_", decode[0])
    else:
        pool = replica or decode or prefill
        if decode and not replica:
            add_note(row, "decode-only host list read as aggregated serving")
        row["Is_PD"] = False
        put(row, "Replicas", len(pool))
        if pool:
            _put_parallelism(row, "", pool[0])

    per_entry = [_entry_gpus(a) for _, a in entries]
    if per_entry and all(is_known(g) for g in per_entry):
        row["Num_GPUs"] = float(sum(per_entry))


def _v01_results(metrics: Mapping[str, Any], row: Row, generator: str) -> None:
    requests = metrics.get("requests") or {}
    put(row, "Total_Requests", as_float(requests.get("total")))
    put(row, "Failures", as_float(requests.get("failures")))
    put(row, "ISL", as_float(dig(requests, "input_length", "mean")))
    put(row, "OSL", as_float(dig(requests, "output_length", "mean")))

    throughput = metrics.get("throughput") or {}
    put_throughputs(row, throughput)

    _latencies(metrics.get("latency") or {}, row, generator)
    zero_throughput = row.get("Total_Token_Throughput") == 0
    if zero_throughput and row.get("Mean_TTFT_ms", 0) in (0, None):
        raise ReportFileError("missing metrics: throughput and TTFT are zero (placeholder)")


def _latencies(latency: Mapping[str, Any], row: Row, generator: str) -> None:
    """Latency blocks with their own units; fixes the two known mislabels."""
    for block, metric in _LATENCY_BLOCKS.items():
        stats = latency.get(block)
        if not isinstance(stats, Mapping):
            continue
        factor = latency_factor(stats.get("units"), f"{block}")
        if generator == "fmperf" and factor == 1.0:
            factor = 1000.0  # FORMATS.md P17: fmperf-era reports hold seconds under "ms"
        put_stats(row, metric, stats, factor)
    if generator == "fmperf":
        add_note(row, "fmperf report: latencies labelled ms read as seconds")
    _fix_guidellm_e2e(row, generator)
    has_latency = any(is_known(row.get(f"Mean_{m}_ms")) for m in _LATENCY_BLOCKS.values())
    has_rate = any(
        is_known(row.get(c)) for c in ("Output_Token_Throughput", "Total_Token_Throughput")
    )
    if not has_latency and not has_rate:
        raise ReportFileError("missing metrics: no latency or throughput in the report")


def _fix_guidellm_e2e(row: Row, generator: str) -> None:
    """GuideLLM's E2E is in seconds even where a converter labelled it ms (FORMATS.md P3)."""
    if generator != "guidellm":
        return
    ttft, e2e = row.get("Mean_TTFT_ms"), row.get("Mean_E2EL_ms")
    if is_known(ttft) and is_known(e2e) and e2e < ttft:
        for column in [c for c in row if c.endswith("_E2EL_ms")]:
            row[column] *= 1000.0
        add_note(row, "GuideLLM E2E latency labelled ms was in seconds; converted")


def _v01_workload(args: Any, generator: str, row: Row) -> None:
    if not isinstance(args, Mapping):
        return
    if generator == "inference-perf":
        _inference_perf_args(args, row)
    elif generator in ("vllm-benchmark", "inferencemax"):
        put(row, "Max_QPS", as_float(args.get("request_rate")))
        if "max_concurrency" in args:
            limit = args.get("max_concurrency")
            put(row, "Max_Concurrency", math.inf if limit is None else as_float(limit))
        put(row, "Stage", 0.0)
    elif generator == "guidellm":
        _guidellm_args(args, row)
    elif generator == "aiperf":
        put(row, "Max_Concurrency", as_float(dig(args, "loadgen", "concurrency")))


def _inference_perf_args(args: Mapping[str, Any], row: Row) -> None:
    """Rate/concurrency from the stage list; prefix and lengths from the data config."""
    shared_prefix_data(dig(args, "data"), row)
    load = args.get("load") or {}
    load_type = str(load.get("type") or "")
    stages = load.get("stages") or []
    stage = row.get("Stage")
    if load.get("sweep") and not stages:
        add_note(row, "rate sweep: requested rate not recorded in a v0.1 report")
        return
    if not is_known(stage) or not stages:
        return
    index = int(stage)
    entry = stages[index] if 0 <= index < len(stages) else None
    if load_type == "concurrent" or dig(entry, "concurrency_level") is not None:
        put(row, "Max_Concurrency", as_float(dig(entry, "concurrency_level")))
        return
    rate = as_float(dig(entry, "rate"))
    achieved = row.get("Request_Throughput")
    if is_known(rate) and is_known(achieved) and achieved > rate * ACHIEVED_OVER_REQUESTED:
        rate = _stage_rate_matching_data(stages, row, index)
    put(row, "Max_QPS", rate)


def _stage_rate_matching_data(stages: list[Any], row: Row, index: int) -> float:
    """The rate of the one stage whose rate and duration match the measured ones (P2)."""
    total, duration = row.get("Total_Requests"), row.get("Duration")
    if not (is_known(total) and is_known(duration) and total > 0 and duration > 0):
        add_note(row, f"stage {index} contradicts the data; requested rate unknown")
        return math.nan
    offered = total / duration
    matches = []
    for i, entry in enumerate(stages):
        rate, length = as_float(dig(entry, "rate")), as_float(dig(entry, "duration"))
        if not (is_known(rate) and is_known(length) and rate > 0 and length > 0):
            continue
        if (
            abs(rate - offered) / rate <= STAGE_MATCH_TOLERANCE
            and abs(length - duration) / length <= STAGE_MATCH_TOLERANCE
        ):
            matches.append((i, rate))
    if len(matches) == 1:
        found, rate = matches[0]
        add_note(
            row,
            f"stage {index} contradicts the data (achieved rate above requested); rate taken "
            f"from stage {found}, whose rate and duration match the requests sent",
        )
        return rate
    add_note(row, f"stage {index} contradicts the data; requested rate unknown")
    return math.nan


def shared_prefix_data(data: Any, row: Row) -> None:
    """inference-perf ``data`` config -> target lengths and prefix-sharing columns."""
    if not isinstance(data, Mapping):
        return
    kind = str(data.get("type") or "")
    if kind == "shared_prefix":
        sp = data.get("shared_prefix") or {}
        system, question = as_float(sp.get("system_prompt_len")), as_float(sp.get("question_len"))
        put(row, "System_Prompt_Length", system)
        put(row, "Question_Length", question)
        put(row, "Groups", as_float(sp.get("num_groups", sp.get("num_unique_system_prompts"))))
        put(
            row,
            "Prompts_Per_Group",
            as_float(sp.get("num_prompts_per_group", sp.get("num_users_per_system_prompt"))),
        )
        put(row, "Target_OSL", as_float(sp.get("output_len")))
        if is_known(system) and is_known(question):
            row["Target_ISL"] = system + question
    else:
        put(row, "Target_ISL", as_float(dig(data, "input_distribution", "mean")))
        put(row, "Target_OSL", as_float(dig(data, "output_distribution", "mean")))


def _guidellm_args(args: Mapping[str, Any], row: Row) -> None:
    stage = row.get("Stage")
    if not is_known(stage):
        row["Stage"] = 0.0
        add_note(row, "GuideLLM benchmark index missing; assumed 0")
    index = int(row["Stage"])
    profile = dig(args, "spec", "profile") or args.get("profile")
    kind = str(dig(profile, "kind") or (profile if isinstance(profile, str) else ""))
    rates = dig(profile, "rate") if isinstance(profile, Mapping) else args.get("rate")
    streams = dig(profile, "streams")
    value = as_float(dig(rates, index)) if isinstance(rates, list) else math.nan
    if kind in ("constant", "poisson", "async"):
        put(row, "Max_QPS", value)
    elif kind == "concurrent":
        count = as_float(dig(streams, index)) if isinstance(streams, list) else value
        put(row, "Max_Concurrency", count)
    elif kind == "synchronous":
        put(row, "Max_Concurrency", 1.0)
    data = dig(args, "spec", "data", 0)
    if isinstance(data, Mapping):
        put(row, "Target_ISL", as_float(data.get("prompt_tokens")))
        put(row, "Target_OSL", as_float(data.get("output_tokens")))


# --------------------------------------------------------------------------- v0.2


def _v02_engines(stack: list[Any]) -> list[Mapping[str, Any]]:
    return [
        c["standardized"]
        for c in stack
        if isinstance(c, Mapping)
        and isinstance(c.get("standardized"), Mapping)
        and c["standardized"].get("kind") == "inference_engine"
    ]


def _v02_replica_gpus(engine: Mapping[str, Any], row: Row) -> float:
    """GPUs of one replica: max(count x workers, tp x dp x pp) (FORMATS.md 4.2)."""
    par = dig(engine, "accelerator", "parallelism") or {}
    tp, dp, pp = (as_float(par.get(k, 1)) for k in ("tp", "dp", "pp"))
    workers = as_float(par.get("workers", 1))
    count = as_float(dig(engine, "accelerator", "count"))
    replicas = as_float(engine.get("replicas", 1))
    product = tp * dp * pp
    if count == 0 and product == 1:
        return math.nan  # the run-only fallback writes count 0: unknown
    if replicas > 1 and count > product and count == replicas * product:
        add_note(row, "accelerator count looks like a total over replicas; divided")
        count = count / replicas
    candidates = [v for v in (count * workers, product) if is_known(v) and v > 0]
    return max(candidates) if candidates else math.nan


def _read_v02(doc: Mapping[str, Any], row: Row) -> None:
    run = doc.get("run") or {}
    scenario = doc.get("scenario") or {}
    results = doc.get("results") or {}
    if run.get("uid"):
        row["Run_UID"] = str(run["uid"])
    if run.get("eid"):
        row["Run_EID"] = str(run["eid"])
    put(row, "Start", epoch_seconds(dig(run, "time", "start")))
    put(row, "Duration", iso_duration_seconds(dig(run, "time", "duration")))

    stack = scenario.get("stack") or []
    engines = _v02_engines(stack if isinstance(stack, list) else [])
    _v02_stack(engines, row)
    for component in stack if isinstance(stack, list) else []:
        tool = str(dig(component, "standardized", "tool") or "").replace("-", "_")
        if dig(component, "standardized", "kind") == "generic" and "inference_scheduler" in tool:
            scheduler_weights(row, dig(component, "native", "config"))

    load = scenario.get("load") or {}
    _v02_load(load, row)

    aggregate = dig(results, "request_performance", "aggregate")
    if not isinstance(aggregate, Mapping):
        if dig(results, "session_performance"):
            raise ReportFileError("a session report carries no request metrics")
        raise ReportFileError("missing metrics: no results.request_performance.aggregate")
    _v02_results(aggregate, row)

    target = row.get("Target_ISL")
    if row.get("Workload_Generator") == "inference-perf" and is_known(target):
        measured = as_float(dig(aggregate, "requests", "input_length", "mean"))
        if is_known(measured) and abs(measured - target) < 1e-6:
            # The converter writes the measured mean when it has no config (FORMATS.md 4.3).
            del row["Target_ISL"]
            osl = as_float(dig(aggregate, "requests", "output_length", "mean"))
            if is_known(osl) and abs(osl - row.get("Target_OSL", math.nan)) < 1e-6:
                del row["Target_OSL"]


def _v02_stack(engines: list[Mapping[str, Any]], row: Row) -> None:
    if not engines:
        return  # no stack: model, GPU and topology unknown (FORMATS.md P1)
    models = {str(dig(e, "model", "name")) for e in engines if dig(e, "model", "name")}
    if len(models) > 1:
        raise ReportFileError(
            f"stack serves several models ({', '.join(sorted(models))}); split the report"
        )
    if models:
        row["Model"] = models.pop()
    if engines[0].get("tool_version"):
        row["Platform"] = str(engines[0]["tool_version"])
    put_gpu(row, dig(engines[0], "accelerator", "model"))

    def role(engine: Mapping[str, Any]) -> str:
        name = str(engine.get("role") or "replica").lower()
        return "replica" if name == "aggregate" else name

    prefill = [e for e in engines if role(e) == "prefill"]
    decode = [e for e in engines if role(e) == "decode"]
    replica = [e for e in engines if role(e) == "replica"]

    def fill(prefix: str, group: list[Mapping[str, Any]]) -> None:
        par = dig(group[0], "accelerator", "parallelism") or {}
        for key in ("tp", "dp", "pp", "ep"):
            put(row, f"{prefix}{key.upper()}", as_float(par.get(key, 1)))
        put(row, f"{prefix}Replicas", sum(as_float(e.get("replicas", 1)) for e in group))

    if prefill and decode:
        row["Is_PD"] = True
        fill("P_", prefill)
        fill("D_", decode)
    else:
        if decode and not replica:
            add_note(row, "decode-only stack read as aggregated serving")
        row["Is_PD"] = False
        fill("", replica or decode or prefill)

    totals = [as_float(e.get("replicas", 1)) * _v02_replica_gpus(e, row) for e in engines]
    if all(is_known(t) for t in totals):
        row["Num_GPUs"] = float(sum(totals))


def _v02_load(load: Mapping[str, Any], row: Row) -> None:
    std = load.get("standardized") or {}
    config = dig(load, "native", "config") or {}
    tool = std.get("tool")
    if tool:
        row["Workload_Generator"] = str(tool)
    if tool == "nop":
        raise ReportFileError("a 'nop' report measures model load time, not serving")
    put(row, "Stage", as_float(std.get("stage", 0)))

    concurrency = as_float(std.get("concurrency"))
    rate = as_float(std.get("rate_qps"))
    put(row, "Max_Concurrency", concurrency)
    closed_loop = is_known(concurrency) and math.isfinite(concurrency)
    if closed_loop and is_known(rate) and tool == "inference-perf":
        add_note(row, "rate_qps ignored: inference-perf writes the request count there")
    else:
        put(row, "Max_QPS", rate)

    put(row, "Target_ISL", as_float(dig(std, "input_seq_len", "value")))
    put(row, "Target_OSL", as_float(dig(std, "output_seq_len", "value")))
    prefix = std.get("prefix")
    if isinstance(prefix, Mapping):
        put(row, "System_Prompt_Length", as_float(dig(prefix, "prefix_len", "value")))
        put(row, "Groups", as_float(prefix.get("num_groups")))
        put(row, "Prompts_Per_Group", as_float(prefix.get("num_users_per_group")))
        put(row, "Question_Length", as_float(dig(config, "data", "shared_prefix", "question_len")))

    if "Model" not in row:
        model = (
            dig(config, "server", "model_name")
            or dig(config, "spec", "backend", "model")
            or dig(load, "native", "args", "model")
        )
        if model:
            row["Model"] = str(model)


def _rate(stats: Any, what: str) -> float:
    if not isinstance(stats, Mapping):
        return as_float(stats)
    return as_float(stats.get("mean"))


def _v02_results(aggregate: Mapping[str, Any], row: Row) -> None:
    requests = aggregate.get("requests") or {}
    put(row, "Total_Requests", as_float(requests.get("total")))
    put(row, "Failures", as_float(requests.get("failures")))
    put(row, "ISL", as_float(dig(requests, "input_length", "mean")))
    put(row, "OSL", as_float(dig(requests, "output_length", "mean")))

    throughput = aggregate.get("throughput") or {}
    for key, column in (
        ("request_rate", "Request_Throughput"),
        ("output_token_rate", "Output_Token_Throughput"),
        ("total_token_rate", "Total_Token_Throughput"),
        ("input_token_rate", "Input_Token_Throughput"),
    ):
        put(row, column, _rate(throughput.get(key), key))

    _latencies(aggregate.get("latency") or {}, row, str(row.get("Workload_Generator") or ""))
