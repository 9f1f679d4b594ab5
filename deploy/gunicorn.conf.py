"""gunicorn settings for running the API under a gunicorn of your own (`dizest serve` applies the
same ones itself):

    gunicorn -c deploy/gunicorn.conf.py 'dizest_api.wsgi:create()'

Environment: DIZEST_BIND (127.0.0.1:8000), DIZEST_API_WORKERS (2), DIZEST_API_THREADS (128, at
least 2), DIZEST_API_CONNECTIONS (1000, above the threads), plus the service's own DIZEST_*
settings (DIZEST_REDIS_URL...); a bad one stops gunicorn with one line naming it.
gthread (dizest_api.stream_worker): a WebSocket stream holds a thread, DIZEST_MAX_STREAM_THREADS
of them at most per process (default: threads minus a quarter, 8 to 64, kept for ordinary
requests); an SSE stream holds one only while it replays, then the event hub owns its socket.
DIZEST_MAX_STREAMS (default: the connections) caps all streams of a process.
"""

import os
import sys

from dizest_api.gunicorn_app import GunicornSettings, stream_threads
from dizest_core.errors import ConfigError

try:
    _server = GunicornSettings.from_env()
except ConfigError as exc:
    # gunicorn shows any Exception raised here as "Failed to read config file" and a traceback
    sys.exit(f"dizest: {exc}")
os.environ.setdefault("DIZEST_MAX_STREAMS", str(_server.api_connections))
os.environ.setdefault("DIZEST_MAX_STREAM_THREADS", str(stream_threads(_server.api_threads)))
globals().update(_server.options())
