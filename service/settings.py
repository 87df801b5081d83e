"""What one running service is configured with (`shoplens serve` options)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shoplens.service.schemas import MAX_BODY_BYTES

SETTINGS_ENV = "SHOPLENS_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process


@dataclass
class ServiceSettings:
    index: Path
    api_key: str | None = None  # required on POST /events (and on search with protect_search) when set
    protect_search: bool = False
    cors_origins: list[str] = field(default_factory=list)  # CORS is off unless origins are given
    events_inbox: Path | None = None  # default: <index>.inbox next to the index
    follow_seconds: float = 0.5  # how often the background follower reads CURRENT
    warm_queries: int = 0  # latest text queries a new version answers (results dropped) before the swap
    warm_up: int = 0  # frequent queries answered at start (results dropped) before /ready turns 200
    warm_up_file: Path | None = None  # where those queries come from (default: the index's folded behaviour)
    device: str = "auto"
    max_body_bytes: int = MAX_BODY_BYTES

    @property
    def inbox(self) -> Path:
        return self.events_inbox or Path(str(self.index).rstrip("/") + ".inbox")

    def to_env(self) -> str:
        data = asdict(self)
        data["index"] = str(self.index)
        data["events_inbox"] = None if self.events_inbox is None else str(self.events_inbox)
        data["warm_up_file"] = None if self.warm_up_file is None else str(self.warm_up_file)
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> "ServiceSettings":
        data = json.loads(os.environ[SETTINGS_ENV])
        data["index"] = Path(data["index"])
        if data.get("events_inbox"):
            data["events_inbox"] = Path(data["events_inbox"])
        if data.get("warm_up_file"):
            data["warm_up_file"] = Path(data["warm_up_file"])
        return cls(**data)
