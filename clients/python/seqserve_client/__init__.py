"""seqserve's Python client: `Client` (sync) and `AsyncClient`, over httpx.

    from seqserve_client import Client
    with Client() as client:  # SEQSERVE_URL, SEQSERVE_API_KEY
        job = client.run("classify", "sst2-classifier", ["a gorgeous, witty film"])
        print(job.result[0].label)
"""

from seqserve_client.aio import AsyncClient
from seqserve_client.client import Client
from seqserve_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobFailed,
    NotFound,
    RateLimited,
    SeqserveError,
    ServerError,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from seqserve_client.types import (
    Alias,
    AliasState,
    Batch,
    ClassifyResult,
    Event,
    File,
    GenerateResult,
    Job,
    Model,
    Page,
    Promotion,
    ScoreResult,
    TagResult,
    TrainingRun,
    TranslateResult,
    VectorResult,
)

__all__ = [
    "Alias", "AliasState", "ApiError", "AsyncClient", "BadRequest", "Batch", "ClassifyResult", "Client", "Conflict",
    "ConnectionFailed", "Event", "File", "Forbidden", "GenerateResult", "Job", "JobFailed", "Model", "NotFound", "Page",
    "Promotion", "RateLimited", "ScoreResult", "SeqserveError", "ServerError", "TagResult", "TrainingRun",
    "TranslateResult", "Unauthorized", "Unavailable", "VectorResult", "WaitTimeout",
]
