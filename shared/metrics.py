"""Every Prometheus metric seqserve exports, declared once (low-cardinality labels only:
kind, model name, version, status, queue; never job ids).

Worker processes fork, so the worker runs prometheus_client in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `seqserve worker` before this module is imported).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# API
HTTP_REQUEST_SECONDS = Histogram(
    "seqserve_http_request_seconds", "HTTP request latency by route template, method and status code.",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS,
)
JOBS_SUBMITTED_TOTAL = Counter("seqserve_jobs_submitted_total", "Jobs accepted by the API.", ["kind", "model"])
JOBS_REJECTED_TOTAL = Counter(
    "seqserve_jobs_rejected_total", "Job submissions refused, by reason code.", ["reason"]
)

# Worker: job life cycle
JOBS_FINISHED_TOTAL = Counter(
    "seqserve_jobs_finished_total", "Jobs that reached a final status.", ["kind", "model", "status"]
)
JOB_END_TO_END_SECONDS = Histogram(
    "seqserve_job_end_to_end_seconds", "From submission to final status.", ["kind", "model"],
    buckets=LATENCY_BUCKETS,
)
JOB_QUEUE_WAIT_SECONDS = Histogram(
    "seqserve_job_queue_wait_seconds", "From submission to the start of the attempt that ran it.",
    ["kind", "model"], buckets=LATENCY_BUCKETS,
)

# Worker: batching and compute
BATCH_WAIT_SECONDS = Histogram(
    "seqserve_batch_wait_seconds", "Time a batch waited for companions (max_delay_ms).", ["kind", "model"],
    buckets=LATENCY_BUCKETS,
)
BATCH_COMPUTE_SECONDS = Histogram(
    "seqserve_batch_compute_seconds", "Handler time of one batch: preprocess, forward, postprocess.",
    ["kind", "model"], buckets=LATENCY_BUCKETS,
)
BATCH_INPUTS = Histogram(
    "seqserve_batch_inputs", "Inputs in one batch.", ["kind", "model"], buckets=SIZE_BUCKETS,
)
BATCH_JOBS = Histogram("seqserve_batch_jobs", "Jobs joined into one batch.", ["kind", "model"], buckets=SIZE_BUCKETS)
# One handler stage (preprocess, infer, postprocess) of one batch. Finer buckets at the low
# end than LATENCY_BUCKETS: the pre- and postprocessing of a small batch take well under 1 ms.
HANDLER_STAGE_SECONDS = Histogram(
    "seqserve_handler_stage_seconds", "Seconds one handler stage took for one batch.", ["kind", "stage"],
    buckets=(0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS),
)

# Worker: models
MODEL_LOAD_SECONDS = Histogram(
    "seqserve_model_load_seconds", "Checkpoint load and verification time.", ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
MODEL_LOAD_ERRORS_TOTAL = Counter(
    "seqserve_model_load_errors_total", "Checkpoints that failed to load (missing, sha256 mismatch).",
    ["model", "version"],
)
MODELS_LOADED = Gauge(
    "seqserve_models_loaded", "Model versions held in inference process caches.", multiprocess_mode="livesum"
)

# Worker: webhooks and maintenance
WEBHOOK_DELIVERIES_TOTAL = Counter(
    "seqserve_webhook_deliveries_total", "Webhook POST attempts by outcome.", ["outcome"]
)
JOBS_REQUEUED_TOTAL = Counter(
    "seqserve_jobs_requeued_total", "Jobs the reconciler published again.", ["reason"]
)
RECONCILE_LAST_RUN = Gauge(
    "seqserve_reconcile_last_run_timestamp_seconds", "When the reconciler last ran (proves beat is alive).",
    multiprocess_mode="max",
)

# Worker (beat's sweep): deadlines and retention (seqserve.shared.jobs.lifecycle)
JOBS_EXPIRED_TOTAL = Counter("seqserve_jobs_expired_total", "Queued jobs that passed their deadline.", ["kind"])
JOBS_PURGED_TOTAL = Counter(
    "seqserve_jobs_purged_total", "Finished jobs whose inputs and results retention purged."
)

# Worker: drift per model version, over a rolling window of served inputs (seqserve.shared.drift;
# each inference process keeps its own window, the most recent write is exported).
INPUT_OOV_RATIO = Gauge(
    "seqserve_input_oov_ratio", "Share of served tokens outside the version's vocabulary.", ["model", "version"],
    multiprocess_mode="livemostrecent",
)
REFERENCE_OOV_RATIO = Gauge(
    "seqserve_reference_oov_ratio", "The same share on the version's dev set, at training time.", ["model", "version"],
    multiprocess_mode="livemostrecent",
)
PREDICTION_SHARE = Gauge(
    "seqserve_prediction_share", "Share of recent predictions per label (classify labels, tags).",
    ["model", "version", "label"], multiprocess_mode="livemostrecent",
)
DRIFT_SCORE = Gauge(
    "seqserve_drift_score", "Population stability index of recent inputs or predictions vs the dev reference "
    "(aspect: lengths, chars, predictions).", ["model", "version", "aspect"], multiprocess_mode="livemostrecent",
)
DRIFT_REFERENCE_PRESENT = Gauge(
    "seqserve_drift_reference_present", "1 if the version recorded dev statistics at training time, else 0.",
    ["model", "version"], multiprocess_mode="livemostrecent",
)
INPUT_TOKENS = Histogram(
    "seqserve_input_tokens", "Tokens per served input.", ["model", "version"], buckets=(2, 4, 8, 16, 32, 64, 128),
)
# Worker: corpus batches (counted when a batch ends; status: completed, failed, malformed,
# expired, cancelled). "corpus": seqserve_batch_inputs is the histogram of forward-pass sizes.
BATCH_INPUTS_TOTAL = Counter(
    "seqserve_corpus_batch_inputs_total", "Inputs of ended corpus batches, by outcome.", ["status"]
)
for _outcome in ("completed", "failed", "malformed", "expired", "cancelled"):
    BATCH_INPUTS_TOTAL.labels(_outcome)  # every outcome a series from the start: rate() is 0, not absent


# Trainer
TRAINING_RUNS_TOTAL = Counter("seqserve_training_runs_total", "Training runs that ended, by task.", ["task", "status"])

# Registry, run and queue state: computed from the database at scrape time by the API's
# collector (services/api/health/scrape.py), with zeros for every known label pair.
TRAINING_RUN_STATES = "seqserve_registry_training_runs"
ALIAS_VERSION = "seqserve_model_alias_version"
VERSION_COUNT = "seqserve_model_versions"
VERSION_METRIC = "seqserve_model_version_metric"
QUEUE_LAST_CONSUMED = "seqserve_queue_last_consumed_timestamp_seconds"
# Messages in each broker queue. With coalesced triggers one message can stand for many jobs:
# the backlog is JOBS_QUEUED (job rows waiting, per priority queue).
QUEUE_DEPTH = "seqserve_queue_depth"
# Workers that vouched within SEQSERVE_CONSUMER_WINDOW_SECONDS for consuming each inference
# queue (seqserve.shared.consumers): 0 means nobody consumes it.
QUEUE_CONSUMERS = "seqserve_queue_consumers"
JOBS_QUEUED = "seqserve_jobs_queued"
CORPUS_BATCHES = "seqserve_corpus_batches"  # corpus batches per status


# Rollouts: shadow agreement (agree: true / false / error, per input) and outcomes per version
SHADOW_INPUTS_TOTAL = Counter(
    "seqserve_shadow_inputs_total", "Shadowed inputs compared with production, by agreement.",
    ["model", "alias", "agree"],
)
VERSION_JOBS_FINISHED_TOTAL = Counter(
    "seqserve_version_jobs_finished_total", "Jobs finished per model version (canary arms; shadow jobs excluded).",
    ["model", "version", "status"],
)
VERSION_JOB_SECONDS = Histogram(
    "seqserve_version_job_seconds", "Submission to final status per model version (shadow jobs excluded).",
    ["model", "version"], buckets=LATENCY_BUCKETS,
)
