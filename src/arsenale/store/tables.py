"""The relational schema, as SQLAlchemy Core tables.

Core tables (not ORM classes) because the hot paths are bulk inserts and
set-based queries; domain objects live in each component's `models.py`.
Times are integer milliseconds since the epoch, as in MLflow's data model.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# Limits users hit as clear errors rather than database truncation.
MAX_NAME = 256
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_PATH = 1000

experiments = Table(
    "experiments",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False, unique=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
           primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
           nullable=False),
    Column("name", String(MAX_NAME), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", String(32), nullable=True),
    Column("user_id", String(MAX_NAME), nullable=True),
    Column("lifecycle_stage", String(32), nullable=False, server_default="active"),
    Index("ix_runs_parent", "parent_run_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", String(MAX_PARAM_VALUE), nullable=False),
    Index("ix_params_key_value", "key", "value"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

# Metric points, stored as chunks: one row holds a batch of one metric's points as
# little-endian int64/float64 arrays. A tracking store lives by how fast it takes and
# returns points; a row per point costs an index entry per point, a chunk costs one
# per batch. NaN and ±inf are kept as they are (a diverging loss is information).
metric_chunks = Table(
    "metric_chunks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("key", String(MAX_KEY), nullable=False),
    Column("n", Integer, nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
    Index("ix_metric_chunks_run_key", "run_id", "key", "id"),
)

# The last point of each metric (highest step, then latest timestamp): what
# search filters and ordering compare against, without scanning history.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", Float(precision=53), nullable=True),
    Column("is_nan", Boolean, nullable=False, server_default="0"),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),
)

# A run's artifact tree: path → content digest in the content-addressed store.
# A row appears only after its blob is fully stored, so a killed upload leaves
# nothing visible.
artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(MAX_PATH), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Append-only, hash-chained: each entry carries the hash of the one before.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("actor", String(MAX_NAME), nullable=False),
    Column("action", String(128), nullable=False),
    Column("entity_type", String(64), nullable=False),
    Column("entity_id", String(MAX_NAME), nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("hash"),
    Index("ix_audit_entity", "entity_type", "entity_id"),
)

# The default search order (newest first, run_id breaking ties) read straight off an index, so a page of
# search results walks the index instead of sorting every matching run; lifecycle_stage rides along so the
# rows an OFFSET skips are judged from the index alone.
Index("ix_runs_experiment_order", runs.c.experiment_id, runs.c.start_time.desc(), runs.c.run_id,
      runs.c.lifecycle_stage)

# ---- model registry ------------------------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("next_version", Integer, nullable=False, server_default="1"),
)

registered_model_tags = Table(
    "registered_model_tags",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

# A version row appears only after every file of the model is in the blob store, in the
# same transaction that allocates its number; `files` is the manifest (path → digest).
model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("run_id", String(32), nullable=True),
    Column("source", String(MAX_PATH), nullable=False),
    Column("status", String(32), nullable=False),
    Column("stage", String(32), nullable=False, server_default="None"),
    Column("description", Text, nullable=True),
    Column("flavor", String(64), nullable=False),
    Column("flavor_meta", Text, nullable=False),
    Column("files", Text, nullable=False),
    Column("contract", Text, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Index("ix_model_versions_run", "run_id"),
    Index("ix_model_versions_stage", "name", "stage"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", String(MAX_NAME), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("key", String(MAX_KEY), primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(MAX_KEY), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Who moved what, when and why: the registry's own history, which `--undo` and the
# dashboard read (the audit chain holds the same decisions, tamper-evident).
model_events = Table(
    "model_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("version", Integer, nullable=True),
    Column("alias", String(MAX_KEY), nullable=True),
    Column("from_version", Integer, nullable=True),
    Column("from_stage", String(32), nullable=True),
    Column("to_stage", String(32), nullable=True),
    Column("actor", String(MAX_NAME), nullable=False),
    Column("reason", Text, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_model_events_name", "name", "id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(32), primary_key=True),
    Column("url", Text, nullable=False),  # ciphertext ("enc:v1:…", security.secrets); plain in rows before 0015
    Column("events", Text, nullable=False),
    Column("model_name", String(MAX_NAME), nullable=True),
    Column("secret", Text, nullable=False),  # ciphertext too
    Column("active", Boolean, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("response_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_webhook_deliveries_hook", "webhook_id", "id"),
)

# ---- datasets ------------------------------------------------------------------------------

datasets = Table(
    "datasets",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("next_version", Integer, nullable=False, server_default="1"),
)

# One row per registered version, written in the transaction that allocates its number and
# only after its Parquet blob(s) are stored. `digest` is the content digest of the data (what
# deduplicates re-registration); `files` the manifest (path, digest, size); `validation` the
# report; a "rejected" version is kept for the record but never resolved as "latest".
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("datasets.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("format", String(32), nullable=False),
    Column("files", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("columns", Integer, nullable=False),
    Column("schema", Text, nullable=False),
    Column("profile", Text, nullable=False),
    Column("validation", Text, nullable=True),
    Column("status", String(32), nullable=False),
    Column("source", String(MAX_PATH), nullable=True),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Index("ix_dataset_versions_digest", "name", "digest"),
)

# Lineage: which dataset versions a run read.
run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Index("ix_run_inputs_dataset", "name", "version"),
)

# ---- pipelines -----------------------------------------------------------------------------

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("pipeline_run_id", String(32), primary_key=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("ref", String(MAX_PATH), nullable=False),
    Column("executor", String(MAX_NAME), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("trigger", String(MAX_PATH), nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Index("ix_pipeline_runs_name_start", "name", "start_time"),
    Index("ix_pipeline_runs_start", "start_time"),
)

# One row per step of a pipeline run. A row with status succeeded and an output digest is also the
# step cache's entry for its cache_key; failed attempts never carry an output, so they cannot poison it.
step_runs = Table(
    "step_runs",
    metadata,
    Column("pipeline_run_id", String(32), ForeignKey("pipeline_runs.pipeline_run_id", ondelete="CASCADE"),
           primary_key=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("step_ref", String(MAX_PATH), nullable=False),
    Column("status", String(16), nullable=False),
    Column("layer", Integer, nullable=False),
    Column("upstream", Text, nullable=False),
    Column("cache_key", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=True),
    Column("output_digest", String(64), nullable=True),
    Column("output_format", String(32), nullable=True),
    Column("output_size", BigInteger, nullable=True),
    Column("error", Text, nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("cached_from", String(32), nullable=True),
    Index("ix_step_runs_cache", "cache_key", "status"),
)

# Cron and dataset-version triggers. A scheduler claims a due schedule by moving next_run_time (or
# last_dataset_version) forward and taking the lease in one conditional UPDATE, so a tick runs once.
schedules = Table(
    "schedules",
    metadata,
    Column("schedule_id", String(32), primary_key=True),
    Column("pipeline_ref", String(MAX_PATH), nullable=False),
    Column("cron", String(MAX_NAME), nullable=True),
    Column("params", Text, nullable=False),
    Column("executor", String(MAX_NAME), nullable=False),
    Column("trigger_dataset", String(MAX_NAME), nullable=True),
    Column("last_dataset_version", Integer, nullable=True),
    Column("next_run_time", BigInteger, nullable=True),
    Column("last_run_time", BigInteger, nullable=True),
    Column("last_pipeline_run_id", String(32), nullable=True),
    Column("lease_owner", String(MAX_NAME), nullable=True),
    Column("lease_until", BigInteger, nullable=False, server_default="0"),
    Column("enabled", Boolean, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Index("ix_schedules_due", "enabled", "next_run_time"),
)

# ---------------------------------------------------------------- serving

deployments = Table(
    "deployments",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("policy", Text, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("controller_owner", String(MAX_NAME), nullable=True),
    Column("controller_until", BigInteger, nullable=False, server_default="0"),
    Column("creation_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
)

deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("deployment", String(MAX_NAME), ForeignKey("deployments.name", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, primary_key=True),
    Column("action", String(64), nullable=False),
    Column("policy", Text, nullable=False),
    Column("actor", String(MAX_NAME), nullable=False),
    Column("reason", Text, nullable=True),
    Column("timestamp", BigInteger, nullable=False),
)

deployment_decisions = Table(
    "deployment_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(MAX_NAME), ForeignKey("deployments.name", ondelete="CASCADE"), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("action", String(32), nullable=False),
    Column("step", Float, nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Index("ix_deployment_decisions_deployment_time", "deployment", "timestamp"),
)

deployment_stats = Table(
    "deployment_stats",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(MAX_NAME), ForeignKey("deployments.name", ondelete="CASCADE"), nullable=False),
    Column("replica", String(MAX_NAME), nullable=False),
    Column("model", String(MAX_NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("latency_counts", Text, nullable=False),
    Column("latency_sum_ms", Float, nullable=False),
    Index("ix_deployment_stats_deployment_window", "deployment", "window_start"),
)

# ---------------------------------------------------------------- monitoring

monitors = Table(
    "monitors",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("deployment", String(MAX_NAME), nullable=False),
    Column("reference", String(MAX_NAME), nullable=False),
    Column("window_s", Integer, nullable=False),
    Column("schedule", String(MAX_NAME), nullable=True),
    Column("settings", Text, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    # The scheduler's claim, as for pipeline schedules: one conditional UPDATE moves next_run_time to the next
    # cron tick and takes the lease, so of several schedulers exactly one evaluates a given tick.
    Column("next_run_time", BigInteger, nullable=True),
    Column("lease_owner", String(MAX_NAME), nullable=True),
    Column("lease_expires", BigInteger, nullable=True),
    Index("ix_monitors_due", "next_run_time"),
)

monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("monitor", String(MAX_NAME), ForeignKey("monitors.name", ondelete="CASCADE"), nullable=False),
    Column("window_start", BigInteger, nullable=False),
    Column("window_end", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("model", String(MAX_NAME), nullable=True),
    Column("version", Integer, nullable=True),
    Column("values", Text, nullable=False),
    Column("report", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_monitor_runs_monitor_end", "monitor", "window_end"),
)

# Alert rules over a monitor's values. `state` is the evaluator's JSON state (consecutive breaching windows,
# firing or not, the last window seen), advanced under a row lock in the transaction that records the alert,
# so a window is counted once however many processes evaluate it.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("monitor", String(MAX_NAME), ForeignKey("monitors.name", ondelete="CASCADE"), nullable=False),
    Column("expression", Text, nullable=False),
    Column("notify", Text, nullable=False),
    Column("trigger_pipeline", String(MAX_PATH), nullable=True),
    Column("severity", String(16), nullable=False),
    Column("state", Text, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    UniqueConstraint("monitor", "name", name="uq_alert_rules_monitor_name"),
)

# One row per episode of a rule: inserted "firing" by the window that fired it, set "resolved" by the window
# that resolved it. `deliveries` records every notification (pending, then delivered or failed) and
# `evidence` the firing window's values, which is also what a triggered pipeline receives.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("monitor", String(MAX_NAME), nullable=False),
    Column("status", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Text, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("run_id", Integer, nullable=False),
    Column("resolved_run_id", Integer, nullable=True),
    Column("evidence", Text, nullable=False),
    Column("pipeline_run_id", String(32), nullable=True),
    Column("pipeline_error", Text, nullable=True),
    Column("deliveries", Text, nullable=False),
    Index("ix_alerts_rule_status", "rule_id", "status"),
    Index("ix_alerts_monitor_id", "monitor", "id"),
)

# ---------------------------------------------------------------- feature store

# Every definition (entity, feature view, on-demand feature, feature service) is versioned the same way:
# a new fingerprint of what changes values is a new version; re-applying an identical definition is a no-op.
feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("spec", Text, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    UniqueConstraint("kind", "name", "fingerprint", name="uq_feature_definitions_fingerprint"),
)

# One row per materialization of a view version into an online store: what range it covered, how many
# entity rows it wrote, and the source data it read; the newest finished row is the view's freshness.
feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("view", String(MAX_NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("online_store", String(MAX_PATH), nullable=False),
    Column("start_time", BigInteger, nullable=True),
    Column("end_time", BigInteger, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("source", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("started", BigInteger, nullable=False),
    Column("finished", BigInteger, nullable=True),
    Column("created_by", String(MAX_NAME), nullable=False),
    Index("ix_feature_materializations_view", "view", "version", "id"),
)

# One row per gate run: the candidate version it judged, the champion it was compared with, the data, the
# policy as written, every check's result (JSON) and what a pass did (an alias set, a canary started).
gate_runs = Table(
    "gate_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("dataset", String(MAX_PATH), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("results", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("promotion", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Index("ix_gate_runs_version", "name", "version", "id"),
)

# ---- LLMOps: prompts -------------------------------------------------------------------------------------
# A prompt is a name; each version is an immutable template with the model and parameters it was written for;
# a label (production, staging, …) points at one version and moves with an audit entry.
prompts = Table(
    "prompts",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("prompts.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("template", Text, nullable=False),
    Column("model", String(MAX_NAME), nullable=True),
    Column("params", Text, nullable=False),
    Column("variables", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("description", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("prompts.name", ondelete="CASCADE"), primary_key=True),
    Column("label", String(MAX_NAME), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("updated_by", String(MAX_NAME), nullable=False),
)

# ---- LLMOps: traces --------------------------------------------------------------------------------------
# Shaped like OpenTelemetry: a trace (32 hex digits) holds spans (16 hex digits) with a parent, attributes and
# events; times are nanoseconds since the epoch, as OTLP sends them. A trace row is the roll-up its spans
# update (times, tokens, cost, status), so listing and searching traces never scans spans.
llm_traces = Table(
    "llm_traces",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("trace_id", String(32), primary_key=True),
    Column("name", String(MAX_NAME), nullable=True),
    Column("session", String(MAX_NAME), nullable=True),
    Column("user_id", String(MAX_NAME), nullable=True),
    Column("start_ns", BigInteger, nullable=True),
    Column("end_ns", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("spans", Integer, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost", Float, nullable=True),
    Column("prompt", String(MAX_NAME), nullable=True),
    Column("attributes", Text, nullable=False),
    Index("ix_llm_traces_start", "start_ns"),
    Index("ix_llm_traces_session", "session", "start_ns"),
)

llm_spans = Table(
    "llm_spans",
    metadata,
    Column("trace_id", String(32), ForeignKey("llm_traces.trace_id", ondelete="CASCADE"), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=True),
    Column("status", String(16), nullable=False),
    Column("status_message", Text, nullable=True),
    Column("model", String(MAX_NAME), nullable=True),
    Column("input_tokens", BigInteger, nullable=True),
    Column("output_tokens", BigInteger, nullable=True),
    Column("cost", Float, nullable=True),
    Column("attributes", Text, nullable=False),
    Column("events", Text, nullable=False),
)

llm_scores = Table(
    "llm_scores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), ForeignKey("llm_traces.trace_id", ondelete="CASCADE"), nullable=False),
    Column("span_id", String(16), nullable=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("value", Float, nullable=True),
    Column("comment", Text, nullable=True),
    Column("source", String(16), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Index("ix_llm_scores_trace", "trace_id"),
)

# The price of a model's tokens, per million, editable; a span's cost is computed when it is stored.
llm_prices = Table(
    "llm_prices",
    metadata,
    Column("model", String(MAX_NAME), primary_key=True),
    Column("input_per_million", Float, nullable=False),
    Column("output_per_million", Float, nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("updated_by", String(MAX_NAME), nullable=False),
)

# ---- LLMOps: vector indexes --------------------------------------------------------------------------------
# An index is a name with a dimension and a metric; each version is an immutable snapshot (ids, texts, metadata
# as Parquet and the vectors as float32 .npy in the artifact store), so a trace's retrieved chunks can name the
# exact version they came from.
vector_indexes = Table(
    "vector_indexes",
    metadata,
    Column("project", String(128), nullable=False, server_default="default", index=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("metric", String(16), nullable=False),
    Column("embedder", Text, nullable=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
)

vector_index_versions = Table(
    "vector_index_versions",
    metadata,
    Column("name", String(MAX_NAME), ForeignKey("vector_indexes.name", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("parent_version", Integer, nullable=True),
    Column("count", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("files", Text, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
)

# ---- security: API tokens ------------------------------------------------------------------------------------
# A token is shown once; only a salted SHA-256 of its secret is kept (the secret is 256 random bits, so a slow
# password hash would add latency to every request and no protection). `project` "*" is every project.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("project", String(MAX_NAME), nullable=False),
    Column("role", String(16), nullable=False),
    Column("salt", String(32), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
)

# ---- security: named secrets ---------------------------------------------------------------------------------
# A secret's value is only ever stored as ciphertext (arsenale.security.secrets.SecretBox); `project` "*" is a
# secret every project may use. No API returns the value: it is resolved in-process where it is needed.
secrets = Table(
    "secrets",
    metadata,
    Column("project", String(MAX_NAME), primary_key=True),
    Column("name", String(MAX_NAME), primary_key=True),
    Column("ciphertext", Text, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("updated_by", String(MAX_NAME), nullable=False),
)

# ---- security: retention and legal holds ---------------------------------------------------------------------
# One policy per (project, kind); `project` "*" is every project (until resources carry a project, a named project
# also applies to everything). The lease columns let one applier at a time work a policy.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("project", String(MAX_NAME), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("max_age_seconds", BigInteger, nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("update_time", BigInteger, nullable=False),
    Column("updated_by", String(MAX_NAME), nullable=False),
    Column("last_applied_at", BigInteger, nullable=True),
    Column("lease_owner", String(MAX_NAME), nullable=True),
    Column("lease_until", BigInteger, nullable=True),
)

# When retention first saw a run deleted: runs carry no deletion time, so its age is counted from here.
retention_deleted_runs = Table(
    "retention_deleted_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seen_at", BigInteger, nullable=False),
)

# A hold is active while released_at is null; released holds stay as history.
legal_holds = Table(
    "legal_holds",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(MAX_NAME), nullable=False),
    Column("creation_time", BigInteger, nullable=False),
    Column("released_at", BigInteger, nullable=True),
    Column("released_by", String(MAX_NAME), nullable=True),
    Index("ix_legal_holds_version", "name", "version"),
)
