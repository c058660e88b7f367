"""The one settings object. Every URL and limit comes from here (env prefix SEQSERVE_).

The defaults are the embedded ones: SQLite and a filesystem broker under `var_dir`, so that
seqserve runs with nothing installed but Python. Point SEQSERVE_DATABASE_URL and
SEQSERVE_BROKER_URL at Postgres and Redis to run the same code on them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Where the data lives on a machine that carries the datasets beside the checkout.
_DATA_DIR_CANDIDATES = (Path("../shared/datasets"), Path("data"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SEQSERVE_", extra="ignore")

    var_dir: Path = Field(Path("var"), description="Working directory of the embedded default.")
    database_url: str = Field("", description="SQLAlchemy URL; default SQLite in var_dir.")
    broker_url: str = Field("", description="Celery broker URL; default filesystem in var_dir.")
    data_dir: Path | None = Field(None, description="Datasets; default ../shared/datasets or ./data.")
    artifact_dir: Path | None = Field(None, description="Checkpoints; default var_dir/artifacts.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 leaves torch's choice.")

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    max_inputs_per_job: int = Field(256, ge=1)
    max_input_chars: int = Field(2000, ge=1)
    max_inputs_total_chars: int = Field(200_000, ge=1)

    worker_concurrency: int = Field(1, ge=1, description="Inference processes per worker.")
    worker_queues: str = "inference.high,inference.normal,inference.low"
    default_model: str = Field("sst2-classifier", description="Model `seqserve up` trains if absent.")
    promotion_margin: float = Field(0.0, description="Dev metric gain a version needs to be promoted.")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.var_dir / 'seqserve.db').as_posix()}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if self.artifact_dir is None:
            self.artifact_dir = self.var_dir / "artifacts"
        if self.data_dir is None:
            existing = [p for p in _DATA_DIR_CANDIDATES if p.is_dir()]
            self.data_dir = existing[0] if existing else _DATA_DIR_CANDIDATES[-1]
        return self

    @property
    def broker_dir(self) -> Path:
        """Folder of the filesystem broker (used only when broker_url is filesystem://)."""
        return self.var_dir / "broker"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
