"""Every Redis key and channel dizest uses, with its type and lifetime. Nothing else names keys.

key / channel                         type     holds                                    TTL
{p}:run:{run}                         hash     run record: status, created_at,           ttl_s
                                               started_at, finished_at, unresolved,
                                               completed, failed, cancelled, options,
                                               targets, base_run, idempotency_key,
                                               account (the user whose quota it counts
                                               in), quota_full ("1" once it dropped logs)
{p}:run:{run}:pkg                     string   the package snapshot (JSON)               ttl_s
{p}:run:{run}:owner                   string   JSON {"owner", "workflow_id"} of a run       ttl_s
                                               submitted through the service
{p}:run:{run}:keep                    string   "1": a newer run reuses outputs whose     ttl_s from
                                               files are in this run's artifact dir      that run
                                               (the reaper keeps them; see files.py)
{p}:user:{name}:runs                  zset     the user's run ids by creation time (ms); ttl_s from
                                               entries older than ttl_s pruned at each   the newest
                                               of the user's submits
{p}:user:{name}:wf:{id}:runs          zset     the user's runs of workflow {id} by        ttl_s from
                                               creation time (ms): its grantees' shared   the newest
                                               runs list; older than ttl_s pruned when
                                               listed
{p}:user:{name}:active                set      the user's runs not yet seen final        ttl_s from
                                                                                         the newest
{p}:user:{name}:stored                hash     what the user's live runs wrote to Redis,  ttl_s from
                                               in bytes: "bytes" (all), "r:{run}" (one    the newest
                                               run), "quota" (DIZEST_RUN_QUOTA_BYTES when run
                                               the newest run was made); see run_quota
{p}:user:{name}:stored_runs           zset     the runs counted there, by creation time   ttl_s from
                                               (ms, Redis clock; pruned with them)        the newest
{p}:user:{name}:running               zset     the user's flow attempts holding a flow    ttl_s from
                                               slot ("{run}\\x1f{flow}\\x1f{attempt}"): 0    the newest
                                               once claimed, else the deadline (ms) of one
                                               released from parked (see flow_slots)
{p}:user:{name}:parked                zset     the user's pending attempts waiting for a  ttl_s from
                                               flow slot, by level * 1e13 + parking ms    the newest
{p}:user:{name}:parked_queue          hash     each parked attempt -> its flow's queue,   ttl_s from
                                               "\n", its first place in parked (kept     the newest
                                               when it parks again after a release)
{p}:parked                            set      users with parked attempts (reapers look)  none
{p}:flow_users                        hash     each user with work (attempts holding or   none*
                                               waiting for a flow slot) -> how many hold
                                               one; the fair share divides the live
                                               worker slots by them (fair_share)
{p}:flow_waiting                      zset     users with a run submitted whose flows     the newest
                                               have not yet been claimed or parked ->     mark
                                               until when (ms, Redis clock) they count
                                               as users with work (fair_share); removed
                                               at their claim or park, ignored past it
{p}:user:{name}:submitting            string   lock token while one of the user's submits  30 s
                                               checks the run limit and records its run
{p}:run:{run}:done                    list     the final status, pushed when the run     ttl_s
                                               ends (waiters BLMOVE it onto itself)
{p}:run:{run}:flows                   hash     per flow: "{f}" status, "{f}:reason"      ttl_s
                                               (that of its latest flow.status event),
                                               "{f}:attempt", "{f}:waiting",
                                               "{f}:index", "{f}:duration", "{f}:worker",
                                               "{f}:holder" (holder id of the process that
                                               claimed the attempt, see liveness),
                                               "{f}:retries" (user-code retries used),
                                               "{f}:lost" (worker losses requeued);
                                               reused flows are there as "ready". The
                                               run report's statuses are read from here.
{p}:run:{run}:out:{flow}              hash     "v:{name}" value (b"B"+pickle or           ttl_s
                                               b"A"+json artifact ref), "p:{name}"
                                               JSON preview, "_attempt"
{p}:run:{run}:events                  stream   field "e": event JSON without its id      the run's
                                               (the stream id is the event id); capped   (set by the
                                               at stream_maxlen                          XADD making it)
{p}:runs                              zset     run ids by creation time (ms); entries     ttl_s from
                                               older than ttl_s pruned at each submit    the newest
{p}:idem:{key}                        string   run id for an idempotency key, written    ttl_s
                                               with the run in one script
{p}:call:{id}                         list     the answer to one `api` call: one item,   REPLY_TTL_S
                                               JSON head + "\n" + body, pushed by the
                                               worker, BLPOPped by the caller
{p}:user:{name}:calls                 zset     call ids of the user's `api` calls        the longest
                                               running, by deadline (ms): at most         call
                                               DIZEST_USER_API_CALLS at once
{p}:calls                             zset     call ids of every user's `api` calls,     the longest
                                               by deadline (ms): at most half the live   call
                                               worker slots (rounded up) at once
{p}:leases                            zset     "{run}\\x1f{flow}\\x1f{attempt}" scored     none*
                                               by lease expiry (ms)
{p}:workers                           hash     worker name -> last heartbeat (ms);       none*
                                               workers unseen for an hour are pruned
                                               (their slots and info with them)
{p}:worker_slots                      hash     worker name -> flows it runs at once       none*
                                               (pool processes x DIZEST_LOCAL_SLOTS),
                                               written with each beat; counted in the
                                               fair share while its beat is live
{p}:worker_info                       hash     worker name -> JSON of what it says of     none*
                                               itself (host, pid, version, queues,
                                               started_at, load, memory, disk: see
                                               worker_info), written with each beat;
                                               dropped and pruned with the beat
{p}:worker_packages                   hash     worker name -> JSON of the Python packages  none*
                                               its flows can import (see packages),
                                               dropped and pruned with the beat
{p}:sandbox                           hash     worker name -> JSON {layer: "active" or    none
                                               why not}, written when the worker starts
{p}:queues                            hash     queue -> when a worker serving it last     none
                                               started (ms): the queues a run submitted
                                               for a user may use
{p}:audited                           hash     worker name -> the beat (ms) of its death  none*
                                               a lost-message audit covered (see
                                               lost_messages); pruned with the beats
{p}:audit_due                         string   "1": a worker found its name's beat left   none
                                               over at start: audit once (lost_messages)
{p}:audit_lock                        string   the auditing reaper's token               60 s
{p}:metrics                           hash     lifetime counters for /metrics: "started", none (a
                                               "finished:{status}", "retried", "parked", few fields
                                               "duration:{bound}" (flows whose duration  that only
                                               is <= that bound of DURATION_BUCKETS and  count up)
                                               above the one before; "+Inf" past all),
                                               "duration_sum", "duration_count"
{p}:user:{name}                       hash     user: role, password (bcrypt hash),       none
                                               created_at
{p}:users                             set      every username                            none
{p}:users:retired                     hash     name of a removed user -> JSON            none
                                               {removed_at, done}: never given again
{p}:user:{name}:tokens                set      the user's token ids                      none*
{p}:user:{name}:sessions              set      the user's session digests                session_ttl_s
{p}:token:{id}                        hash     API token: hash (SHA-256 of the secret),  until its
                                               owner, name, scopes, created_at,          expiry, or
                                               expires_at                                none
{p}:session:{digest}                  hash     browser session: user, created_at         session_ttl_s
                                               (digest = SHA-256 of the cookie value)
{p}:login:{name}:{ip}                 string   failed logins for this name from this IP  window_s
{p}:wf:{id}                           hash     stored workflow: owner, title, version,   none
                                               created_at, updated_at
{p}:wf:{id}:versions                  hash     version number -> the .dwp JSON (the last  none
                                               versions_kept of them)
{p}:wf:{id}:grants                    hash     username -> viewer|runner|editor          none
{p}:wfs                               zset     every workflow id by creation time (ms)   none
{p}:user:{name}:wfs                   zset     workflow ids the user owns                none
{p}:user:{name}:shared                zset     workflow ids granted to the user          none
{p}:user:{name}:library               hash     "bytes": the size of every kept version   none
                                               of the user's workflows (library_quota)
{p}:events                            channel  each run's final workflow.status event    -
                                               JSON (with id): run-end listeners
{p}:events:{run}                      channel  every event JSON (with id) of the run:      -
                                               its live streams (`run_channel`)
{p}:control                           channel  "cancel {run}" for workers holding flows  -
{p}:holder:{holder}                   channel  nothing is sent on it: the flow-running   -
                                               process with that holder id stays
                                               subscribed, so PUBSUB NUMSUB says whether
                                               it is still connected (liveness.connected;
                                               the reaper's test of a dead process)

* entries are removed by the code that owns them (finish, reaper, cleanup).
"""

from __future__ import annotations

from dataclasses import dataclass

# Upper bounds (seconds) of the flow duration histogram in `{p}:metrics`.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

SEP = "\x1f"


@dataclass(frozen=True)
class Keys:
    prefix: str = "dz"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_keep(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:keep"

    def run_owner(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:owner"

    def user_runs(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:runs"

    def user_wf_runs(self, username: str, wf_id: str) -> str:
        return f"{self.prefix}:user:{username}:wf:{wf_id}:runs"

    def user_active_runs(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:active"

    def user_stored(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:stored"

    def user_stored_runs(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:stored_runs"

    def user_running(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:running"

    def user_parked(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:parked"

    def user_parked_queue(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:parked_queue"

    @property
    def parked(self) -> str:
        return f"{self.prefix}:parked"

    @property
    def flow_users(self) -> str:
        return f"{self.prefix}:flow_users"

    @property
    def flow_waiting(self) -> str:
        return f"{self.prefix}:flow_waiting"

    def user_submitting(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:submitting"

    def done(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:done"

    def package(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:pkg"

    def flows(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:flows"

    def outputs(self, run_id: str, flow_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:out:{flow_id}"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def call_reply(self, call_id: str) -> str:
        return f"{self.prefix}:call:{call_id}"

    def user_calls(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:calls"

    @property
    def calls(self) -> str:
        return f"{self.prefix}:calls"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def worker_slots(self) -> str:
        return f"{self.prefix}:worker_slots"

    @property
    def worker_info(self) -> str:
        return f"{self.prefix}:worker_info"

    @property
    def worker_packages(self) -> str:
        return f"{self.prefix}:worker_packages"

    @property
    def sandbox(self) -> str:
        return f"{self.prefix}:sandbox"

    @property
    def queues(self) -> str:
        return f"{self.prefix}:queues"

    @property
    def audited(self) -> str:
        return f"{self.prefix}:audited"

    @property
    def audit_due(self) -> str:
        return f"{self.prefix}:audit_due"

    @property
    def audit_lock(self) -> str:
        return f"{self.prefix}:audit_lock"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    @property
    def event_channel(self) -> str:
        return f"{self.prefix}:events"

    def run_channel(self, run_id: str) -> str:
        return run_channel(self.event_channel, run_id)

    @property
    def control_channel(self) -> str:
        return f"{self.prefix}:control"

    def holder_channel(self, holder: str) -> str:
        return f"{self.prefix}:holder:{holder}"

    # -- accounts (dizest_api.data.accounts) and stored workflows (dizest_api.data.library) --

    def user(self, username: str) -> str:
        return f"{self.prefix}:user:{username}"

    @property
    def users(self) -> str:
        return f"{self.prefix}:users"

    @property
    def users_retired(self) -> str:
        return f"{self.prefix}:users:retired"

    def user_tokens(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:tokens"

    def user_sessions(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:sessions"

    def token(self, token_id: str) -> str:
        return f"{self.prefix}:token:{token_id}"

    def session(self, digest: str) -> str:
        return f"{self.prefix}:session:{digest}"

    def login_failures(self, username: str, ip: str) -> str:
        return f"{self.prefix}:login:{username}:{ip}"

    def workflow(self, wf_id: str) -> str:
        return f"{self.prefix}:wf:{wf_id}"

    def workflow_versions(self, wf_id: str) -> str:
        return f"{self.prefix}:wf:{wf_id}:versions"

    def workflow_grants(self, wf_id: str) -> str:
        return f"{self.prefix}:wf:{wf_id}:grants"

    @property
    def workflows(self) -> str:
        return f"{self.prefix}:wfs"

    def user_workflows(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:wfs"

    def user_shared(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:shared"

    def user_library(self, username: str) -> str:
        return f"{self.prefix}:user:{username}:library"


def run_channel(event_channel: str, run_id: str) -> str:
    """Where a run's events go live: the event channel, ':', the run id (the Lua `emit` in
    `lua_prelude` names it the same way)."""
    return f"{event_channel}:{run_id}"


def lease_member(run_id: str, flow_id: str, attempt: int) -> str:
    return f"{run_id}{SEP}{flow_id}{SEP}{attempt}"


def parse_lease(member: str) -> tuple[str, str, int]:
    run_id, flow_id, attempt = member.split(SEP)
    return run_id, flow_id, int(attempt)
