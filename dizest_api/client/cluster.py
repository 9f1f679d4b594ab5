"""Client calls for operators: the cluster's workers (admins)."""

from __future__ import annotations

from typing import Any

from dizest_api.client.base import Base


class ClusterMixin(Base):
    """The cluster, as its operators see it."""

    def workers(self) -> list[dict[str, Any]]:
        """The live workers (admins; others get `Forbidden`): each one's name, host, pid,
        version, queues, slots, the flows it runs now (`running`, `flows`), its machine's load,
        memory and disk, and `last_beat_s`, as `GET /api/v1/workers` answers (docs/api.md)."""
        return list(self.request("GET", "/workers")["items"])
