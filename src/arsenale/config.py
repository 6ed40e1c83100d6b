"""Every ARSENALE_* setting, in one place.

Settings are read when first asked for (never at import time) so tests and
child processes can change the environment before the first call.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

HOME_DIRNAME = ".arsenale"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARSENALE_", extra="ignore")

    uri: str | None = Field(
        default=None,
        description="Where metadata lives: a path, sqlite:///…, postgresql://…, or http(s)://… for a server.",
    )
    artifacts: str | None = Field(default=None, description="fsspec URL of the artifact store.")
    home: Path | None = Field(default=None, description="The .arsenale/ folder; found upward like .git.")
    online_store: str | None = None
    executor: str = "local"
    actor: str | None = Field(default=None, description="Who is acting, recorded in the audit trail.")
    token: str | None = Field(default=None, description="API token the client sends to an auth-enabled server.")
    auth: bool = Field(default=False, description="The server requires a token or a dashboard login.")
    secret_key: str | None = Field(default=None, description="Signs dashboard sessions; random per process if unset.")
    rate_limit_per_minute: int = Field(default=6000, ge=1, description="Requests one token may make per minute.")
    encryption_key: SecretStr | None = Field(default=None, description="Encrypts stored secrets: Fernet keys, "
                                             "comma-separated, the newest first (older ones still decrypt).")
    encryption_key_file: Path | None = Field(default=None, description="A file of such keys, one a line, newest "
                                             "first; else <home>/secret.key, made once with mode 0600.")
    metric_flush_points: int = Field(default=20_000, ge=1)
    metric_flush_seconds: float = Field(default=2.0, gt=0)
    http_timeout: float = Field(default=60.0, gt=0)
    max_json_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="Largest JSON request body.")
    max_artifact_bytes: int = Field(default=5 * 1024**3, gt=0, description="Largest single artifact upload.")
    inference_log: str | None = Field(default=None, description="Folder (or fsspec URL) of the inference log; "
                                      "default <home>/inference.")
    inference_sample_rate: float = Field(default=1.0, ge=0, le=1, description="Share of requests logged.")
    serve_max_batch: int = Field(default=64, ge=1, description="Most rows one model call takes.")
    serve_max_wait_ms: float = Field(default=2.0, ge=0, description="Longest a request waits for others to batch.")
    serve_max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0, description="Largest inference request.")

    def resolved_home(self) -> Path:
        if self.home is not None:
            return self.home.expanduser().resolve()
        return find_home(Path.cwd())

    def resolved_uri(self) -> str:
        if self.uri:
            uri = self.uri
            if "://" not in uri:  # a bare path to an SQLite file
                return f"sqlite:///{Path(uri).expanduser().resolve()}"
            return uri
        return f"sqlite:///{self.resolved_home() / 'arsenale.db'}"

    def resolved_artifacts(self) -> str:
        if self.artifacts:
            return self.artifacts
        return str(self.resolved_home() / "artifacts")

    def resolved_inference_log(self) -> str:
        if self.inference_log:
            return self.inference_log
        return str(self.resolved_home() / "inference")

    def resolved_actor(self) -> str:
        if self.actor:
            return self.actor
        try:
            import getpass

            return getpass.getuser()
        except Exception:  # no user database entry, e.g. in some containers
            return "unknown"


def find_home(start: Path) -> Path:
    """The nearest `.arsenale/` at or above `start`, else `start/.arsenale`."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return start / HOME_DIRNAME


@lru_cache(maxsize=1)
def _cached(env_key: tuple[tuple[str, str], ...], cwd: str) -> Settings:
    return Settings()


def get_settings() -> Settings:
    """Settings for the current environment and working directory (cached per both)."""
    env_key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("ARSENALE_")))
    return _cached(env_key, os.getcwd())
