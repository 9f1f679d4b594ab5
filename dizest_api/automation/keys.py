"""Every Redis key of schedules, webhooks and triggers, with its type and lifetime (the rest of
dizest's keys are in `dizest_worker.keys`; these are service data of the API, kept apart).

key                                 type    holds                                       TTL
{p}:sched:{id}                      hash    schedule: workflow_id, owner, cron,          none
                                            timezone, inputs, options (JSON), enabled,
                                            catchup, created_at, updated_at
{p}:sched:{id}:history              list    tick records, newest first (JSON {tick,      none
                                            at, run_id | error | skipped}), capped
{p}:scheds                          zset    every schedule id by creation time (ms)     none
{p}:wf:{wf}:scheds                  zset    the workflow's schedule ids                 none
{p}:scheds:owner:{name}             zset    the schedule ids the user owns, by creation  none
                                            time (ms): their per-user limit
{p}:migrated:{name}                 string  "1" once the data migration `name` ran      none
{p}:redbeat:{id}                    hash    redbeat's entry of an enabled schedule      none
                                            (definition, meta with last_run_at)
{p}:redbeat::schedule               zset    redbeat: entry keys by next due time        none
{p}:redbeat::lock                   string  redbeat: the lock of the one firing beat    lock timeout
{p}:hook:{id}                       hash    webhook: url, secret, owner, workflow_id     none
                                            ("" = every run of the owner), created_at
{p}:hook:{id}:log                   list    deliveries, newest first (JSON), capped     none
{p}:hooks:wf:{wf}                   set     hook ids of a workflow                      none
{p}:hooks:user:{name}               set     hook ids of a user (all their runs)          none
{p}:hooks:owner:{name}              zset    every hook id the user made, by time        none
{p}:hooks:calls:{name}              zset    the user's deliveries in flight -> their     the latest
                                            deadline (ms): at most HOOK_CALLS at once   deadline
{p}:hooks:pending:{name}            zset    the user's deliveries queued -> when they    the latest
                                            are given up (ms): DIZEST_WEBHOOK_PENDING  deadline
{p}:run:{run}:notified              string  "1" once a run's end went to its hooks       ttl_s
{p}:trig:{id}                       hash    trigger: workflow_id, owner, digest,         none
                                            rate_per_min, created_at
{p}:trig:secret:{digest}            string  trigger id for SHA-256 of its secret         none
{p}:trigs:wf:{wf}                   zset    the workflow's trigger ids                  none
{p}:trig:{id}:calls:{minute}        string  calls in that minute (rate limit)           120 s
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AutoKeys:
    prefix: str = "dz"

    def schedule(self, sid: str) -> str:
        return f"{self.prefix}:sched:{sid}"

    def history(self, sid: str) -> str:
        return f"{self.prefix}:sched:{sid}:history"

    @property
    def schedules(self) -> str:
        return f"{self.prefix}:scheds"

    def workflow_schedules(self, wf_id: str) -> str:
        return f"{self.prefix}:wf:{wf_id}:scheds"

    def owner_schedules(self, username: str) -> str:
        return f"{self.prefix}:scheds:owner:{username}"

    def migrated(self, name: str) -> str:
        return f"{self.prefix}:migrated:{name}"

    @property
    def redbeat_prefix(self) -> str:
        return f"{self.prefix}:redbeat:"

    def hook(self, hook_id: str) -> str:
        return f"{self.prefix}:hook:{hook_id}"

    def hook_log(self, hook_id: str) -> str:
        return f"{self.prefix}:hook:{hook_id}:log"

    def workflow_hooks(self, wf_id: str) -> str:
        return f"{self.prefix}:hooks:wf:{wf_id}"

    def user_hooks(self, username: str) -> str:
        return f"{self.prefix}:hooks:user:{username}"

    def owned_hooks(self, username: str) -> str:
        return f"{self.prefix}:hooks:owner:{username}"

    def hook_calls(self, username: str) -> str:
        return f"{self.prefix}:hooks:calls:{username}"

    def hook_pending(self, username: str) -> str:
        return f"{self.prefix}:hooks:pending:{username}"

    def notified(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:notified"

    def trigger(self, trigger_id: str) -> str:
        return f"{self.prefix}:trig:{trigger_id}"

    def trigger_secret(self, digest: str) -> str:
        return f"{self.prefix}:trig:secret:{digest}"

    def workflow_triggers(self, wf_id: str) -> str:
        return f"{self.prefix}:trigs:wf:{wf_id}"

    def trigger_calls(self, trigger_id: str, minute: int) -> str:
        return f"{self.prefix}:trig:{trigger_id}:calls:{minute}"
