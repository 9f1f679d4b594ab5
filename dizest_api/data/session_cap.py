"""How many browser sessions one user holds in the shared Redis: at most `MAX_SESSIONS`.

Each login makes a session that lives `session_ttl_s` (12 h); bcrypt bounds the rate of logins
to a few a second, which is still ~100,000 sessions a user in 12 h. So a login past the cap ends
the user's oldest sessions, as services that bound sessions do (that browser is asked to log in
again) rather than refusing the new one: the person logging in is the account's owner, the old
sessions are the ones most likely forgotten. Sessions that expired are dropped from the user's
set first. One script: two logins at once cannot both keep `MAX_SESSIONS + 1`.
"""

from __future__ import annotations

from typing import Any

from dizest_worker.keys import Keys

MAX_SESSIONS = 100

# KEYS: the user's sessions (set of digests), the new session's hash
# ARGV: the new digest, user, created_at, ttl_s, max, head (a session's key is head .. digest)
# Returns the digests of the sessions it ended.
START = """
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'created_at', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local most, head = tonumber(ARGV[5]), ARGV[6]
if redis.call('SCARD', KEYS[1]) <= most then return {} end
local live = {}
for _, d in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local made = redis.call('HGET', head .. d, 'created_at')
  if not made then redis.call('SREM', KEYS[1], d)
  elseif d ~= ARGV[1] then live[#live + 1] = {tonumber(made), d} end  -- never the new one
end
table.sort(live, function(a, b) return a[1] < b[1] end)
local ended = {}
for i = 1, #live - (most - 1) do
  redis.call('DEL', head .. live[i][2])
  redis.call('SREM', KEYS[1], live[i][2])
  ended[#ended + 1] = live[i][2]
end
return ended
"""


class SessionCap:
    """Starts sessions within the cap (see the module docstring)."""

    def __init__(self, redis: Any, keys: Keys) -> None:
        self.keys, self._start = keys, redis.register_script(START)

    def start(self, username: str, sid_digest: str, now: float, ttl_s: int) -> list[str]:
        """Store a new session of `username`; the digests of the oldest ones it ended."""
        k = self.keys
        ended = self._start(
            keys=[k.user_sessions(username), k.session(sid_digest)],
            args=[sid_digest, username, now, ttl_s, MAX_SESSIONS, k.session("")],
        )
        return [str(d) for d in ended]
