"""The one settings object. Every URL and limit comes from here (env prefix SEQSERVE_).

The defaults are the embedded ones: SQLite and a filesystem broker under `var_dir`, so that
seqserve runs with nothing installed but Python. Point SEQSERVE_DATABASE_URL and
SEQSERVE_BROKER_URL at Postgres and Redis to run the same code on them.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from seqserve.shared.tasks import (
    JOB_KINDS,
    TaskName,
    default_batch_chunk_inputs,
    default_batch_max_inputs,
    default_cpu_chunk_rows,
    default_model_names,
)

# Where the data lives on a machine that carries the datasets beside the checkout.
_DATA_DIR_CANDIDATES = (Path("../shared/datasets"), Path("data"))


class RetrainEntry(BaseModel):
    """One scheduled retraining: `cron` is five fields (minute hour day-of-month month day-of-week)."""

    task: TaskName
    preset: Literal["quick", "full"] = "quick"
    cron: str = Field("0 3 * * *", pattern=r"^\S+ \S+ \S+ \S+ \S+$")
    model_name: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    # Instead of `cron`: every this many seconds (tests and demos; a day is 86400).
    every_seconds: float | None = Field(None, gt=0, le=31 * 86400)


def _every_kind(value: float) -> dict[str, float]:
    return dict.fromkeys(JOB_KINDS, value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEQSERVE_", extra="ignore")

    var_dir: Path = Field(Path("var"), description="Working directory of the embedded default.")
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in var_dir.")
    broker_url: str = Field("", description="Celery broker URL; default filesystem in var_dir.")
    broker_poll_seconds: float = Field(0.05, gt=0, le=5, description="Filesystem broker: how often a consumer looks for "
                                       "messages (kombu's default 1 s was most of a job's wait: docs/benchmarks/embedded.md).")
    data_dir: Path | None = Field(None, description="Datasets; default ../shared/datasets or ./data.")
    artifact_dir: Path | None = Field(None, description="Checkpoints; default var_dir/artifacts.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0: auto (shared/threads.py).")
    inference_backend: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="auto: per task what measured fastest on CPU (docs/benchmarks/backends.md); torch; "
        "onnxruntime: the checkpoint's ONNX graphs on the CPU provider. CUDA always runs torch.")
    onnx_cache_dir: Path | None = Field(None, description="Exported ONNX graphs; default beside each checkpoint.")
    torch_processes: int = Field(0, ge=0, description="Processes sharing the cores in the auto thread rule; "
                                 "0: this service's own count (`seqserve up` sets it for what it starts).")
    cgroup_dir: Path = Field(Path("/sys/fs/cgroup"), description="Where the auto thread rule reads the CPU quota.")
    load_aware_threads: bool = Field(True, description="The auto thread rule counts the 1-minute load average "
                                     "as busy cores.")
    api_checks_training_data: bool = Field(
        True, description="POST /v1/training-runs refuses a run whose data files are missing from data_dir; "
        "false where the API does not mount the datasets (the trainer then fails the run, naming the file).")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = Field(1, ge=1, description="API processes sharing the port (uvicorn workers).")
    submit_group_commit: bool = Field(
        True, description="Concurrent job submissions in one API process share one INSERT and one wake-up per "
        "batch group (each answered once its row is committed); false: one INSERT and one wake-up per job.")
    api_access_log: bool = Field(False, description="uvicorn's per-request log line (the request metrics cover it).")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every process (a command's --loglevel overrides it). At INFO a worker "
        "logs two lines per message (received, succeeded); job rows and metrics record every job either way.")

    max_inputs_per_job: int = Field(256, ge=1)
    max_input_chars: int = Field(2000, ge=1)
    max_inputs_total_chars: int = Field(200_000, ge=1)

    worker_concurrency: int = Field(1, ge=1, description="Inference processes per worker.")
    worker_pool: Literal["prefork", "solo"] = Field(
        "prefork",
        description="prefork: jobs run in forked child processes (a killed child is replaced and its job "
        "redelivered at once). solo: jobs run in the consuming process itself, one at a time, without the "
        "parent-to-child hop (concurrency is then 1, and a killed worker's job comes back through the "
        "broker's visibility timeout or the reconciler).",
    )
    worker_queues: str = "inference.high,inference.normal,inference.low,webhooks,maintenance"
    worker_nice: int = Field(
        0, ge=0, le=19,
        description="CPU niceness a worker process (and its pool children) adds to itself at start: a worker that "
        "runs corpus batches can give way on a shared host to the processes of interactive jobs (the API, an "
        "interactive worker). 0: unchanged.",
    )
    default_model: str = Field(
        default_factory=lambda: default_model_names()["classify"], description="Model `seqserve up` trains if absent."
    )
    first_run_budget_minutes: float = Field(
        2.0, ge=0.0, le=24 * 60.0,
        description="`seqserve up`'s first-run training of the default model: an epoch starts only if it should "
        "end within this many minutes, the best dev epoch is kept (0: the quick preset's every epoch). On an idle "
        "2-core machine all 3 epochs fit; on a busy one the run stops after 1-2 (79-82% SST-2 dev against 83%).",
    )
    promotion_margin: float = Field(0.0, description="Dev metric gain a version needs to be promoted.")

    # Dynamic batching: queued jobs of one batch group (model version, kind, params) run as one
    # forward pass, up to the kind's input limit. Jobs that arrive while a batch computes are
    # joined into the next one; a job that finds no companions waits its kind's
    # batch_max_delay_ms for some. A bare number applies to every kind. 0 everywhere: on CPU,
    # waiting added latency for classify and bought no throughput for translate (a burst of
    # resubmissions takes longer to arrive than the delay is worth); a GPU worker may differ.
    batch_max_delay_ms: dict[str, float] = Field(default_factory=lambda: _every_kind(0.0))
    # Inputs per forward pass, per kind; a kind not named keeps its default from the task registry.
    batch_max_inputs: dict[str, int] = Field(default_factory=default_batch_max_inputs)
    # On a CPU, rows per forward pass of classify, tag and translate: the handler runs a batch's
    # length-sorted rows in chunks this big (each pads only to its own longest; measured faster
    # per sentence: docs/benchmarks/cpu_chunks.md). Other devices take up to batch_max_inputs.
    cpu_chunk_rows: dict[str, int] = Field(default_factory=default_cpu_chunk_rows)

    worker_write_behind: bool = Field(
        False, description="Write a pass's results on a thread of its own while the next pass of the same wake-up "
        "is claimed and computed (Postgres only; SQLite writes inline): a corpus runs faster, but the write's "
        "CPU (and Postgres's) then overlaps the compute, so leave it off where interactive processes share the "
        "worker's CPUs; on by default in deploy/k8s/worker.yaml, whose pod has its own.")
    wakeup_drain_seconds: float = Field(
        1.0, ge=0, description="How long one wake-up drains its batch group before queueing a new wake-up for "
        "the rest, so that other groups and higher priorities get the worker in between.")
    job_lease_seconds: float = Field(
        10.0, gt=0, description="A claim's lease: the worker renews it while the job runs (several times per "
        "lease), so a job whose worker died (a SIGKILLed child or a whole worker) is taken over this long after "
        "its last renewal, however long jobs take.")
    alias_cache_seconds: float = Field(1.0, ge=0, description="How long the API reuses a resolved model reference.")
    rollout_warmup_timeout_seconds: float = Field(
        30.0, ge=0, description="A promotion waits this long for warm workers, then moves anyway (audited).")
    rollout_warmup_poll_seconds: float = Field(1.0, gt=0, description="How often a worker looks for versions to warm.")
    max_queue_depth: int = Field(
        10_000, ge=1, description="Past this many queued jobs of one priority, POST answers 503."
    )
    max_wait_seconds: float = Field(60.0, ge=0, description="Upper bound of `Prefer: wait=N`.")
    # Job event streams (GET /v1/jobs/{id}/events; seqserve.shared.events): per job, the newest this many events.
    job_events_maxlen: int = Field(1000, ge=10, le=100_000, description="Events a job's stream keeps (oldest dropped).")
    job_events_ttl_seconds: int = Field(3600, ge=10, description="How long a job's event stream outlives its last event.")
    job_stream_max_seconds: float = Field(
        900.0, gt=0, description="An SSE response ends after this long (an `error` event, code stream_timeout); "
        "the client resumes with Last-Event-ID.")
    # The reconciler also takes over the running jobs of a whole worker that died (their
    # leases lapsed), so a worker's loss costs at most a lease plus this.
    reconcile_interval_seconds: float = Field(10.0, gt=0)
    requeue_after_seconds: float = Field(120.0, gt=0, description="Re-publish a job queued this long.")
    readiness_window_seconds: float = Field(
        30.0, gt=0, description="A queue's canary counts if it ran this recently (GET /v1/queues); canaries expire "
        "after this long."
    )
    canary_interval_seconds: float = Field(5.0, gt=0)
    worker_metrics_port: int = Field(9101, ge=0, description="Worker /metrics and /livez port; 0 disables them.")
    worker_liveness_seconds: float = Field(
        120.0, gt=0, description="A worker whose queues held messages this long while no task started or ended "
        "in it fails /livez (keep it above the longest batch).")
    consumer_window_seconds: float = Field(
        30.0, gt=0, description="A worker counts as a queue's consumer (GET /v1/queues, seqserve_queue_consumers) "
        "if it vouched for itself this recently; live workers do every 5 s at most.")
    trainer_metrics_port: int = Field(9102, ge=0, description="Trainer /metrics port; 0 disables it.")

    retrain_schedule: list[RetrainEntry] = Field(
        default_factory=list,
        description='Beat retraining entries, e.g. [{"task": "classify", "preset": "quick", "cron": "0 3 * * *"}].',
    )

    # Job deadlines and retention (seqserve.shared.jobs.lifecycle), swept from beat.
    max_queue_seconds: float = Field(7 * 86400, gt=0, description="Longest deadline a job may ask for.")
    retention_days: float = Field(30.0, gt=0, description="Finished jobs' inputs and results are purged after this.")
    retention_team_days: dict[str, float] = Field(default_factory=dict, description='Per team, e.g. {"ml": 7}.')
    job_sweep_interval_seconds: float = Field(10.0, gt=0, description="Beat's expiry and retention sweep.")
    job_sweep_batch: int = Field(500, ge=1, le=100_000, description="Jobs one sweep step expires or purges.")

    auth: Literal["on", "off"] = Field(
        "on", description="off: every request is served as an admin of the default team (logged as a WARNING "
        "at every API start); for a closed network only.")
    auth_cache_seconds: float = Field(
        10.0, ge=0, description="How long an API process reuses a verified key: a key revoked through another "
        "process (or the CLI) still works there this long; through this process it stops at once.")
    metrics_auth: Literal["open", "bearer"] = Field(
        "open", description="bearer: /metrics needs a key with metrics:read (Prometheus: authorization.credentials_file).")
    docs: bool = Field(True, description="Serve /docs and /openapi.json (they describe the API, hold no data).")

    # Per-key limits (shared/auth/limits.py): these apply to keys without their own; 0 is unlimited.
    rate_limit_default: str = Field("0", description="Job submissions per key and window: N/s, N/min or 0.")
    rate_limit_inputs_per_minute: int = Field(0, ge=0, le=1_000_000_000, description="Inputs per key and minute.")
    rate_limit_max_priority: str = Field("high", description="Highest priority a key may submit: low, normal, high.")
    rate_limit_redis_url: str = Field("", description="Redis of the counters; default the broker's (or, with the "
                                      "filesystem broker, counters in each API process).")
    rate_limit_prefix: str = Field("seqserve:ratelimit", min_length=1, description="Prefix of the counters' keys.")

    @field_validator("rate_limit_default")
    @classmethod
    def _rate_parses(cls, value: str) -> str:
        from seqserve.shared.auth.limits import parse_rate  # lazily: it imports the job schemas

        parse_rate(value)
        return value

    @field_validator("rate_limit_max_priority")
    @classmethod
    def _priority_known(cls, value: str) -> str:
        from seqserve.shared.auth.limits import parse_priority

        return parse_priority(value)

    webhook_secret: str = Field("", description="HMAC-SHA256 key for webhook signatures; empty disables webhooks.")
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_backoff_seconds: float = Field(2.0, ge=0, description="First retry delay; doubles per attempt.")
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_allow_networks: str = Field(
        "", description="Comma-separated CIDRs webhooks may reach although internal, e.g. 10.20.0.0/16."
    )

    # Corpus jobs (POST /v1/files, /v1/batches; seqserve.shared.batches).
    file_dir: Path | None = Field(
        None, description="The file store (uploads, batch outputs); default artifact_dir/files. Every API and worker "
        "must see the same directory: a shared volume (NFS, a ReadWriteMany PVC, a mounted bucket).")
    max_upload_bytes: int = Field(1 << 30, ge=1, description="Largest file POST /v1/files accepts.")
    batch_chunk_inputs: dict[str, int] = Field(
        default_factory=default_batch_chunk_inputs, description="Inputs per job row a batch becomes, per kind "
        "(default: tag 512, classify 1024, the others their batch limit). A chunk over the kind's batch limit runs "
        "as one pass; in a single worker for every queue, an interactive job may wait for one such pass.")
    batch_max_chunks_in_flight: int = Field(
        16, ge=1, description="A batch's queued + running job rows at most; the driver adds more as they end.")
    batch_driver_interval_seconds: float = Field(1.0, gt=0, description="How often beat runs the batch driver.")
    batch_step_inputs: int = Field(
        512, ge=1, description="Inputs a batch driver step reads at most for new chunks and for output lines "
        "(validation has its own bounds, below): a step holds its worker process, and interactive jobs run between "
        "steps; a step that stops at this bound queues the next one at once.")
    batch_validate_step_inputs: int = Field(
        16384, ge=1, description="Inputs a batch driver step validates at most: validation keeps no input, so it reads "
        "more per step than the other parts, bounded also by batch_validate_step_seconds.")
    batch_validate_step_seconds: float = Field(
        0.05, ge=0, description="How long a batch driver step validates at most (at least one input): each step is a "
        "round trip through the maintenance queue, and 512-input steps were most of a treebank's validation time.")
    batch_output_as_chunks_end: bool = Field(
        True, description="The driver appends finished chunks' lines to the output files as chunks end (in input "
        "order), so the batch's end only closes them; false: every line is written at the end.")
    batch_step_on_chunk_end: bool = Field(
        True, description="A worker that wrote a batch's chunk queues a driver step for the batch (one at a time), "
        "so the batch is topped up as its chunks end, not only on beat's ticks; only a worker whose queues leave "
        "out `maintenance` (another process runs the steps).")
    batch_yield_to_interactive: bool = Field(
        True, description="After each pass of low-priority jobs, a wake-up hands the rest of its group on when "
        "normal or high priority jobs wait, instead of draining it first.")
    drift_inputs_per_chunk: int = Field(
        16, ge=1, description="At most this many inputs of each corpus batch chunk feed the drift statistics.")
    batch_window_min_seconds: int = Field(60, ge=1, description="Shortest completion_window accepted.")
    batch_window_max_seconds: int = Field(7 * 86400, ge=1, description="Longest completion_window accepted.")

    @field_validator("webhook_allow_networks")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        for part in filter(None, (piece.strip() for piece in value.split(","))):
            ipaddress.ip_network(part, strict=False)  # ValueError names the bad CIDR
        return value

    @field_validator("retention_team_days")
    @classmethod
    def _team_days_positive(cls, value: dict[str, float]) -> dict[str, float]:
        if any(days <= 0 for days in value.values()):
            raise ValueError("retention days must be > 0")
        return value

    @field_validator("batch_max_delay_ms", mode="before")
    @classmethod
    def _delay_for_every_kind(cls, value: Any) -> Any:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return _every_kind(float(value))
        return value

    @field_validator("batch_max_inputs", "batch_chunk_inputs")
    @classmethod
    def _every_kind_has_a_limit(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        unknown = sorted(set(value) - set(JOB_KINDS))
        if unknown:
            raise ValueError(f"unknown job kinds {unknown}; known: {sorted(JOB_KINDS)}")
        if any(limit < 1 for limit in value.values()):
            raise ValueError("batch limits must be >= 1 input")
        defaults = default_batch_chunk_inputs() if info.field_name == "batch_chunk_inputs" else default_batch_max_inputs()
        return {**defaults, **value}

    @field_validator("cpu_chunk_rows")
    @classmethod
    def _chunks_of_kinds_that_chunk(cls, value: dict[str, int]) -> dict[str, int]:
        defaults = default_cpu_chunk_rows()
        unknown = sorted(set(value) - set(defaults))
        if unknown:
            raise ValueError(f"job kinds {unknown} have no CPU chunking; these do: {sorted(defaults)}")
        if any(rows < 1 for rows in value.values()):
            raise ValueError("CPU chunks must be >= 1 row")
        return {**defaults, **value}

    @field_validator("batch_max_delay_ms")
    @classmethod
    def _delays_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if any(delay < 0 for delay in value.values()):
            raise ValueError("batch delays must be >= 0 ms")
        return value

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'seqserve.db').as_posix()}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if self.artifact_dir is None:
            self.artifact_dir = self.var_dir / "artifacts"
        if self.file_dir is None:
            self.file_dir = self.artifact_dir / "files"
        if self.data_dir is None:
            existing = [p for p in _DATA_DIR_CANDIDATES if p.is_dir()]
            self.data_dir = existing[0] if existing else _DATA_DIR_CANDIDATES[-1]
        return self

    @property
    def broker_dir(self) -> Path:
        """Folder of the filesystem broker (used only when broker_url is filesystem://)."""
        return self.var_dir / "broker"



_settings: Settings | None = None
# Held while the settings are read from the environment, so that a reset waits for a read
# already under way: with functools.lru_cache a thread that began reading before a reset (a
# worker's lease renewal) stored its stale result after it, and kept it cached.
_settings_lock = threading.Lock()


def get_settings() -> Settings:
    global _settings
    settings = _settings
    if settings is None:
        with _settings_lock:
            if _settings is None:
                _settings = Settings()
            settings = _settings
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    global _settings
    with _settings_lock:
        _settings = None
