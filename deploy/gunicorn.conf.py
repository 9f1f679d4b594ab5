"""gunicorn settings for running the API under a gunicorn of your own (`dizest serve` applies the
same ones itself):

    gunicorn -c deploy/gunicorn.conf.py 'dizest_api.wsgi:create()'

Environment: DIZEST_BIND (127.0.0.1:8000), DIZEST_API_WORKERS (2), DIZEST_API_THREADS (128),
DIZEST_API_CONNECTIONS (1000), plus the service's own DIZEST_* settings (DIZEST_REDIS_URL...).
gthread: every SSE/WebSocket stream holds a thread, DIZEST_MAX_STREAMS of them at most per
process (default: threads minus a quarter, 8 to 64, kept for ordinary requests).
"""

import os

from dizest_api.gunicorn_app import gunicorn_options, stream_threads

_threads = int(os.environ.get("DIZEST_API_THREADS", "128"))
os.environ.setdefault("DIZEST_MAX_STREAMS", str(stream_threads(_threads)))
globals().update(
    gunicorn_options(
        os.environ.get("DIZEST_BIND", "127.0.0.1:8000"),
        int(os.environ.get("DIZEST_API_WORKERS", "2")),
        _threads,
        int(os.environ.get("DIZEST_API_CONNECTIONS", "1000")),
    )
)
