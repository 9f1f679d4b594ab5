"""Service data kept in Redis: accounts and tokens, the workflow library, the run index.

Only the service reads and writes these; no worker module does, so they live beside the API
and not in `dizest_worker`, whose door (`dizest_worker.client`) stays narrow."""
