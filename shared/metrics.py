"""Every Prometheus metric seqserve exports, declared once (low-cardinality labels only)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUEST_SECONDS = Histogram(
    "seqserve_http_request_seconds",
    "HTTP request latency by route template, method and status code.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
JOBS_SUBMITTED_TOTAL = Counter(
    "seqserve_jobs_submitted_total", "Jobs accepted by the API.", ["kind", "model"]
)
JOBS_FINISHED_TOTAL = Counter(
    "seqserve_jobs_finished_total", "Jobs that reached a final status.", ["kind", "model", "status"]
)
JOB_STAGE_SECONDS = Histogram(
    "seqserve_job_stage_seconds",
    "Worker time per stage (load, preprocess, infer, postprocess) by kind and model.",
    ["kind", "model", "stage"],
    buckets=LATENCY_BUCKETS,
)
JOB_END_TO_END_SECONDS = Histogram(
    "seqserve_job_end_to_end_seconds",
    "From submission to final status, by kind and model.",
    ["kind", "model"],
    buckets=LATENCY_BUCKETS,
)
