"""The store's Lua scripts: each one is a transition that must happen at once or not at all.

Registered per client (redis-py caches them by SHA and falls back to EVAL after a server restart).
"""

from __future__ import annotations

import redis
from redis.commands.core import Script

# Swap a staging snapshot in for the live one, every key of the account at once.
# KEYS: 1-4 live data/expiry/protected/counts, 5-8 the same staging keys, 9 meta, 10 accounts set.
# ARGV: 1 started_at_ms, 2 accounts member, 3 expected resource count, 4.. meta field/value pairs.
# Returns 1 committed, 0 superseded (a collect started later already committed; staging dropped),
# -1 staging incomplete (expired or removed; live untouched, staging dropped).
# The old live keys are UNLINKed: a million-field hash is freed off the main thread, where a DEL
# (or the implicit delete of RENAME) would block Redis for a tenth of a second.
COMMIT = """
local newer = redis.call('HGET', KEYS[9], 'started_at_ms')
if newer and tonumber(newer) > tonumber(ARGV[1]) then
  redis.call('UNLINK', KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  return 0
end
if redis.call('HLEN', KEYS[5]) ~= tonumber(ARGV[3]) then
  redis.call('UNLINK', KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  return -1
end
for i = 1, 4 do
  redis.call('UNLINK', KEYS[i])
  if redis.call('EXISTS', KEYS[i + 4]) == 1 then
    redis.call('RENAME', KEYS[i + 4], KEYS[i])
    redis.call('PERSIST', KEYS[i])
  end
end
redis.call('UNLINK', KEYS[9])
redis.call('HSET', KEYS[9], unpack(ARGV, 4))
redis.call('SADD', KEYS[10], ARGV[2])
return 1
"""

# Delete one resource if it is still exactly the document the caller read (and derived the count
# deltas from); drop its expiry entry, protected flag, mark and its share of the counts.
# KEYS: 1 data, 2 expiry, 3 protected, 4 counts, 5 marks.
# ARGV: 1 id, 2 expected doc, 3 malformed 0/1, 4 count field, 5 sum-field prefix, 6.. sum field/delta.
# Returns 1 deleted, 0 not there (its mark is dropped anyway), -1 changed since read (retry).
DELETE = """
local doc = redis.call('HGET', KEYS[1], ARGV[1])
if not doc then
  redis.call('HDEL', KEYS[5], ARGV[1])
  return 0
end
if doc ~= ARGV[2] then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[3] == '1' then
  if redis.call('HINCRBY', KEYS[4], 'malformed', -1) <= 0 then redis.call('HDEL', KEYS[4], 'malformed') end
end
if redis.call('HINCRBY', KEYS[4], ARGV[4], -1) <= 0 then
  redis.call('HDEL', KEYS[4], ARGV[4])
  local prefix = ARGV[5]
  for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
    if string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', KEYS[4], field) end
  end
else
  for i = 6, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1]) end
end
return 1
"""

# Mark resources that are in the live snapshot. KEYS: 1 data, 2 marks. ARGV: 1 mark JSON, 2.. ids.
# Returns how many were marked.
MARK = """
local n = 0
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
    n = n + 1
  end
end
return n
"""

# Drop the marks of ids that are no longer in the live snapshot. KEYS: 1 data, 2 marks. ARGV: ids.
PRUNE_MARKS = """
local n = 0
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then n = n + redis.call('HDEL', KEYS[2], ARGV[i]) end
end
return n
"""


class Scripts:
    """The scripts registered on one client."""

    def __init__(self, r: redis.Redis) -> None:
        self.commit: Script = r.register_script(COMMIT)
        self.delete: Script = r.register_script(DELETE)
        self.mark: Script = r.register_script(MARK)
        self.prune_marks: Script = r.register_script(PRUNE_MARKS)
