"""Metadata (MLMD) connections: owned by the runner, never by `create_pipeline`.

* local runs (`run`, `ablate`, `schedule`): SQLite under the root (`local_runner.metadata_connection`);
* Vertex AI / KFP v2: none (the service keeps its own lineage store);
* a shared self-hosted store (Airflow, or several local runners on one lineage): MySQL, from
  `mysql_connection(...)` or the environment (`metadata_from_env`).
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

from tfx import v1 as tfx

MYSQL_ENV = ("MLMD_MYSQL_HOST", "MLMD_MYSQL_PORT", "MLMD_MYSQL_DATABASE", "MLMD_MYSQL_USER", "MLMD_MYSQL_PASSWORD")


def sqlite_connection(path: str):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(path)


def mysql_connection(host: str, database: str, user: str, password: str = "", port: int = 3306):
    """MLMD on MySQL: one lineage store shared by every runner that points at it."""
    return tfx.orchestration.metadata.mysql_metadata_connection_config(
        host=host, port=int(port), database=database, username=user, password=password)


def metadata_from_env(sqlite_path: str, env: Optional[Mapping[str, str]] = None):
    """MySQL when MLMD_MYSQL_HOST is set (with MLMD_MYSQL_DATABASE, _USER, _PASSWORD, _PORT),
    else SQLite at `sqlite_path`."""
    env = os.environ if env is None else env
    if env.get("MLMD_MYSQL_HOST"):
        return mysql_connection(env["MLMD_MYSQL_HOST"], env.get("MLMD_MYSQL_DATABASE", "mlmd"),
                                env.get("MLMD_MYSQL_USER", "root"), env.get("MLMD_MYSQL_PASSWORD", ""),
                                int(env.get("MLMD_MYSQL_PORT", "3306")))
    return sqlite_connection(sqlite_path)
