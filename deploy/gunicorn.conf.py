"""gunicorn settings for running the API under a gunicorn of your own (`dizest serve` applies the
same ones itself):

    gunicorn -c deploy/gunicorn.conf.py 'dizest_api.wsgi:create()'

Environment: DIZEST_BIND (127.0.0.1:8000), DIZEST_API_WORKERS (2), DIZEST_API_THREADS (128),
DIZEST_API_CONNECTIONS (1000), plus the service's own DIZEST_* settings (DIZEST_REDIS_URL...).
gthread (dizest_api.stream_worker): a WebSocket stream holds a thread, DIZEST_MAX_STREAM_THREADS
of them at most per process (default: threads minus a quarter, 8 to 64, kept for ordinary
requests); an SSE stream holds one only while it replays, then the event hub owns its socket.
DIZEST_MAX_STREAMS (default: the connections) caps all streams of a process.
"""

import os

from dizest_api.gunicorn_app import gunicorn_options, stream_threads

_threads = int(os.environ.get("DIZEST_API_THREADS", "128"))
_connections = int(os.environ.get("DIZEST_API_CONNECTIONS", "1000"))
os.environ.setdefault("DIZEST_MAX_STREAMS", str(_connections))
os.environ.setdefault("DIZEST_MAX_STREAM_THREADS", str(stream_threads(_threads)))
globals().update(
    gunicorn_options(
        os.environ.get("DIZEST_BIND", "127.0.0.1:8000"),
        int(os.environ.get("DIZEST_API_WORKERS", "2")),
        _threads,
        _connections,
    )
)
