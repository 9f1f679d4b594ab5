"""Automation: schedules (cron, run by celery-redbeat), webhooks (called when a run ends) and
triggers (a secret URL that starts a run). Service data of `dizest_api`, kept in the same Redis
as everything else; every key it uses is named in `keys`.

Who runs what:
- The API stores schedules, hooks and triggers (`schedules`, `hooks`, `triggers`) and starts
  trigger runs itself, acting as the trigger's owner.
- `dizest beat` (`beat`) is one process holding three parts: redbeat's scheduler (a Redis lock
  makes sure one beat fires, however many run), a small Celery worker on the automation queue
  (`tasks`: schedule ticks, webhook deliveries with retries) and the run-end listener
  (`notify`). Flow workers never run automation tasks: they need no outbound network and stay
  what `/readyz` counts as workers.
"""
