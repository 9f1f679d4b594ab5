"""The API's blueprints, each one noun, with where they are mounted."""

from __future__ import annotations

from dizest_api.routes import run_events  # noqa: F401 (its route is on the runs blueprint)
from dizest_api.routes.accounts import bp as accounts
from dizest_api.routes.apicalls import bp as apicalls
from dizest_api.routes.apidocs import bp as apidocs
from dizest_api.routes.compat import bp as compat
from dizest_api.routes.files import bp as files
from dizest_api.routes.health import bp as health
from dizest_api.routes.hooks import bp as hooks
from dizest_api.routes.meta import bp as meta
from dizest_api.routes.metrics import bp as metrics
from dizest_api.routes.outputs import bp as outputs
from dizest_api.routes.packages import bp as packages
from dizest_api.routes.run_reads import bp as run_reads
from dizest_api.routes.runs import bp as runs
from dizest_api.routes.schedules import bp as schedules
from dizest_api.routes.sockets import bp as sockets
from dizest_api.routes.workers import bp as workers
from dizest_api.routes.workflows import bp as workflows

BLUEPRINTS = (
    (health, ""),
    (metrics, ""),
    (meta, "/api/v1"),
    (apidocs, ""),
    (accounts, "/api/v1"),
    (workflows, "/api/v1"),
    (runs, "/api/v1"),
    (run_reads, "/api/v1"),
    (sockets, "/api/v1"),
    (files, "/api/v1"),
    (outputs, "/api/v1"),
    (apicalls, "/api/v1"),
    (schedules, "/api/v1"),
    (hooks, "/api/v1"),
    (workers, "/api/v1"),
    (packages, "/api/v1"),
    (compat, ""),
)
