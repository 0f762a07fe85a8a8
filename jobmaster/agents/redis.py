"""Agent on Redis (``redis://host:6379/0``, ``rediss://`` for TLS).

Every key of one agent starts with ``{namespace:name}:`` (the braces are a Redis Cluster hash
tag, so all of an agent's keys live in one slot and its scripts may touch any of them)::

    jobs          HASH    job id -> "<due>|<body>"              every job held, waiting or claimed
    w:<lane>:<p>  ZSET    "<seq:016d><deliveries>:<id>" by due  waiting jobs of one bucket
    l:<lane>:<p>  ZSET    the same members, by lease deadline   claimed jobs of one bucket
    seq           STRING  INCR counter: push order
    s:<lane>      LIST    wake-up tokens, BLPOP-ed by idle claimers
    dead          STREAM  dead letters with their reasons, capped at ``DEAD_LETTER_CAP``
    deadids       HASH    job id -> its dead letters' stream entry ids, space-separated

A waiting job's score is its due time and its member starts with a zero-padded sequence
number, so one ``ZRANGEBYSCORE -inf now`` returns a bucket's due jobs by (due, push order);
future jobs wait in the same sorted set, with no "delayed" set to move them from.

Each operation is one Lua script call per batch (a push of many thousand jobs is a pipeline of
a few script calls in one round trip). ``claim`` first returns the expired leases of its
buckets to waiting, then takes up to ``limit`` due jobs, priorities 4..0, and moves their
members to the lease sets. A job gets a fresh sequence number whenever it starts waiting
(push, expired lease, retry), so its member names one claim: it is the claim's receipt, and
``ack``, ``retry``, ``extend`` and ``dead_letter`` act only if that member is still leased. A
consumer whose lease expired (and whose job was claimed again) cannot touch the new claim.
Time is the Redis server's clock (``TIME``), so leases do not depend on the workers' clocks.

Nothing stored is trusted. A member that names no job (no ``:`` after its sequence number)
is removed by the claim script and logged at ERROR level. A job whose hash entry is missing,
has no ``|``, or holds a due time that is not a finite number, or whose id is not UTF-8, is
claimed like any other, then moved to the dead letters with the reason, and the claim's
other jobs are returned; none of these makes a script fail.

When nothing is due, ``claim`` blocks on ``BLPOP`` of its lanes' wake-up lists for at most the
time until the next job is due or lease expires; producers push a few tokens there per batch,
so a waiting claim wakes well within a millisecond of a push. Wake-ups may be spurious.

Pushes run on connections of their own (``PUSH_CONNECTIONS`` at most, lent to one thread
at a time and given back after each push): a single ``.delay()`` is one round trip, and a
server that starts a thread per request does not leave a connection behind per thread.
Everything else goes through the redis-py client's pool.

Needs Redis 6.2 or newer. Durability is Redis's own: enable AOF (``appendonly yes``) if pushed
jobs must survive a restart of the server. After ``fork`` the child drops the parent's push
connections (``jobmaster.forking``); redis-py's pool notices the fork by itself, so the child
opens its own sockets and never touches its parent's. Installing ``hiredis`` speeds up reply
parsing.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.retry import Retry

from jobmaster.agents.base import (
    AGAIN_AFTER_MALFORMED,
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    Malformed,
    bury_malformed,
    check_messages,
    read_message,
    redact_text,
    redact_url,
    salvage_message,
    storable_reason,
    stored_number,
)
from jobmaster.exceptions import AgentError, AgentUnreachableError, ConfigurationError
from jobmaster.forking import after_fork

T = TypeVar("T")

log = logging.getLogger(__name__)

PRIORITIES = (4, 3, 2, 1, 0)
"""The priorities a bucket can have, claimed in this order."""

DEAD_LETTER_CAP = 100_000
"""Dead letters kept per agent (the oldest are trimmed)."""

PUSH_CONNECTIONS = 16
"""Most connections an agent opens for pushes; a push finding all of them busy waits for
one (at most the socket timeout)."""

_LENGTH = struct.Struct(">I")
_PUSH_CHUNK = 2_000  # jobs per script call; a bigger push pipelines several calls
_MAX_BLOCK = 5.0  # one BLPOP never blocks longer (below socket_timeout)
_SOCKET_TIMEOUT = 15.0
_CONNECT_TIMEOUT = 3.0

# Helpers shared by every script; ARGV[1] is the prefix of this agent's keys.
_LUA_PRELUDE = """
local P = ARGV[1]
local jobs = KEYS[1]
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function chunks(cmd, key, args, prefix_args)
  local total = 0
  local i = 1
  while i <= #args do
    local j = math.min(i + 3999, #args)
    local got
    if prefix_args then
      got = redis.call(cmd, key, unpack(prefix_args), unpack(args, i, j))
    else
      got = redis.call(cmd, key, unpack(args, i, j))
    end
    if type(got) == 'number' then total = total + got end
    i = j + 1
  end
  return total
end
local function fetch(cmd, key, fields)
  local out = {}
  local i = 1
  while i <= #fields do
    local j = math.min(i + 3999, #fields)
    local got = redis.call(cmd, key, unpack(fields, i, j))
    for k = 1, #got do out[i + k - 1] = got[k] end
    i = j + 1
  end
  return out
end
local function waiting(seq, deliveries, id)
  return string.format('%016d', seq) .. deliveries .. ':' .. id
end
-- a member -> deliveries so far, id; nothing if it is not a member (names no job)
local function parse(m)
  local sep = string.find(m, ':', 17, true)
  if not sep then return nil end
  local deliveries = tonumber(string.sub(m, 17, sep - 1))
  if not deliveries then return nil end
  return deliveries, string.sub(m, sep + 1)
end
-- the score of a job: its due time, or now if its value is missing or holds none
local function due_score(value, now)
  if value then
    local sep = string.find(value, '|', 1, true)
    if sep then
      local due = tonumber(string.sub(value, 1, sep - 1))
      if due and due == due and due > -math.huge and due < math.huge then return due end
    end
  end
  return now
end
-- a lane's wake-up list holds at most 8 tokens: one read when it is full, no write
local function wake(lane, count)
  local key = P .. 's:' .. lane
  local room = 8 - redis.call('LLEN', key)
  if room <= 0 then return end
  local tokens = {}
  for i = 1, math.min(count, room) do tokens[i] = '1' end
  redis.call('LPUSH', key, unpack(tokens))
end
-- ARGV[from..]: groups of "lane, priority, count, lease members..."
local function read_groups(from)
  local groups = {}
  local i = from
  while i <= #ARGV do
    local n = tonumber(ARGV[i + 2])
    local g = {key = P .. 'l:' .. ARGV[i] .. ':' .. ARGV[i + 1], members = {}}
    for k = 1, n do g.members[k] = ARGV[i + 2 + k] end
    groups[#groups + 1] = g
    i = i + 3 + n
  end
  return groups
end
-- the members of a group still leased (the claims still current)
local function current(g)
  local scores = fetch('ZMSCORE', g.key, g.members)
  local mine = {}
  for k, m in ipairs(g.members) do
    if scores[k] then mine[#mine + 1] = m end
  end
  return mine
end
"""

# ARGV: prefix, count, then per job: id, lane, priority, due, body.
_PUSH = (
    _LUA_PRELUDE
    + """
local n = tonumber(ARGV[2])
local seq = nil
local woken = {}
for i = 0, n - 1 do
  local b = 3 + i * 5
  local id, lane, due = ARGV[b], ARGV[b + 1], ARGV[b + 3]
  if redis.call('HSETNX', jobs, id, due .. '|' .. ARGV[b + 4]) == 1 then
    if not seq then seq = redis.call('INCRBY', P .. 'seq', n - i) - (n - i) end
    seq = seq + 1
    redis.call('ZADD', P .. 'w:' .. lane .. ':' .. ARGV[b + 2], due, waiting(seq, 0, id))
    woken[lane] = (woken[lane] or 0) + 1
  end
end
for lane, count in pairs(woken) do wake(lane, count) end
return 0
"""
)

# One job, the common ``.delay()``: the push script without the shared helpers (Lua sets
# them up on every call) or the loop. ARGV: prefix, id, lane, priority, due, body.
_PUSH_ONE = """
local P = ARGV[1]
local id, lane, due = ARGV[2], ARGV[3], ARGV[5]
if redis.call('HSETNX', KEYS[1], id, due .. '|' .. ARGV[6]) == 0 then return 0 end
local seq = redis.call('INCR', P .. 'seq')
redis.call('ZADD', P .. 'w:' .. lane .. ':' .. ARGV[4], due,
  string.format('%016d', seq) .. '0:' .. id)
local key = P .. 's:' .. lane
if redis.call('LLEN', key) < 8 then redis.call('LPUSH', key, '1') end
return 0
"""

# ARGV: prefix, count, blob. The blob holds, per job, five length-prefixed strings (a 4-byte
# big-endian length, then the bytes): id, lane, priority, due, body. One argument instead of
# five per job: big pushes spend their time in Redis, not in packing a huge command.
_PUSH_BLOB = (
    _LUA_PRELUDE
    + """
local n = tonumber(ARGV[2])
local blob = ARGV[3]
local pos = 1
local seq = nil
local woken = {}
local buckets = {}
for i = 0, n - 1 do
  local id, lane, prio, due, body
  id, pos = struct.unpack('>Ic0', blob, pos)
  lane, pos = struct.unpack('>Ic0', blob, pos)
  prio, pos = struct.unpack('>Ic0', blob, pos)
  due, pos = struct.unpack('>Ic0', blob, pos)
  body, pos = struct.unpack('>Ic0', blob, pos)
  if redis.call('HSETNX', jobs, id, due .. '|' .. body) == 1 then
    if not seq then seq = redis.call('INCRBY', P .. 'seq', n - i) - (n - i) end
    seq = seq + 1
    local key = P .. 'w:' .. lane .. ':' .. prio
    local members = buckets[key]
    if not members then members = {}; buckets[key] = members end
    members[#members + 1] = due
    members[#members + 1] = waiting(seq, 0, id)
    woken[lane] = (woken[lane] or 0) + 1
  end
end
for key, members in pairs(buckets) do chunks('ZADD', key, members) end
for lane, count in pairs(woken) do wake(lane, count) end
return 0
"""
)

# ARGV: prefix, limit, lease seconds, lanes...
# Returns {taken, microseconds until the next job is due or lease expires (-1: none; 0 when
# something was taken), header, blob, lost}: the header holds four numbers per job taken
# (lane index, priority, member length, value length or -1 if the job has no value), the
# blob each job's member then its value; ``lost`` lists the members removed because they
# name no job.
_CLAIM = (
    _LUA_PRELUDE
    + """
local limit = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local lanes = {}
for i = 4, #ARGV do lanes[#lanes + 1] = ARGV[i] end
local now = now_s()
local prios = {4, 3, 2, 1, 0}
local lost = {}

-- 1. expired leases go back to waiting, keeping their due (so ahead of later jobs); a job
-- whose value is missing or holds no due time waits as due now, to be claimed and
-- dead-lettered below
for _, lane in ipairs(lanes) do
  for _, p in ipairs(prios) do
    local lk = P .. 'l:' .. lane .. ':' .. p
    local expired = redis.call('ZRANGEBYSCORE', lk, '-inf', now, 'LIMIT', 0, 1000)
    if #expired > 0 then
      chunks('ZREM', lk, expired)
      local ids, dlvs = {}, {}
      for _, m in ipairs(expired) do
        local dlv, id = parse(m)
        if id then
          ids[#ids + 1] = id
          dlvs[#dlvs + 1] = dlv
        else
          lost[#lost + 1] = m
        end
      end
      if #ids > 0 then
        local values = fetch('HMGET', jobs, ids)
        local seq = redis.call('INCRBY', P .. 'seq', #ids) - #ids
        local args = {}
        for k, id in ipairs(ids) do
          args[#args + 1] = due_score(values[k], now)
          args[#args + 1] = waiting(seq + k, dlvs[k] + 1, id)
        end
        chunks('ZADD', P .. 'w:' .. lane .. ':' .. p, args)
      end
    end
  end
end

-- 2. take due jobs, highest priority first, then (due, push order) across the lanes
local taken = {}  -- {waiting member, lane index, priority}
local remaining = limit
for _, p in ipairs(prios) do
  if remaining <= 0 then break end
  local found = {}
  for li, lane in ipairs(lanes) do
    local wk = P .. 'w:' .. lane .. ':' .. p
    if #lanes == 1 then
      local got = redis.call('ZRANGEBYSCORE', wk, '-inf', now, 'LIMIT', 0, remaining)
      for k = 1, #got do found[k] = {0, got[k], li} end
    else
      local got = redis.call('ZRANGEBYSCORE', wk, '-inf', now, 'WITHSCORES', 'LIMIT', 0,
        remaining)
      for k = 1, #got, 2 do found[#found + 1] = {tonumber(got[k + 1]), got[k], li} end
    end
  end
  if #lanes > 1 and #found > 1 then
    table.sort(found, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
  end
  local removed = {}
  for k = 1, math.min(remaining, #found) do
    local f = found[k]
    removed[f[3]] = removed[f[3]] or {}
    table.insert(removed[f[3]], f[2])
    taken[#taken + 1] = {f[2], f[3], p}
  end
  for li, members in pairs(removed) do
    chunks('ZREM', P .. 'w:' .. lanes[li] .. ':' .. p, members)
  end
  remaining = limit - #taken
end

if #taken == 0 then
  -- 3. nothing due: when is the next job due or the next lease over?
  local next_at = nil
  for _, lane in ipairs(lanes) do
    for _, p in ipairs(prios) do
      for _, kind in ipairs({'w:', 'l:'}) do
        local first = redis.call('ZRANGE', P .. kind .. lane .. ':' .. p, 0, 0, 'WITHSCORES')
        if #first > 0 then
          local at = tonumber(first[2])
          if next_at == nil or at < next_at then next_at = at end
        end
      end
    end
    redis.call('DEL', P .. 's:' .. lane)  -- any wake-up token left is stale now
  end
  if next_at == nil then return {0, -1, '', '', lost} end
  return {0, math.max(0, math.floor((next_at - now) * 1000000)), '', '', lost}
end

-- 4. lease what was taken: a job's member (unique, as its sequence number is fresh every time
-- it starts waiting) moves as is from waiting to leased and is the claim's receipt; a member
-- that names no job is dropped
local deadline = now + lease
local ids, kept = {}, {}
local per_lease = {}
for _, t in ipairs(taken) do
  local _, id = parse(t[1])
  if id then
    kept[#kept + 1] = t
    ids[#ids + 1] = id
    local lk = P .. 'l:' .. lanes[t[2]] .. ':' .. t[3]
    local args = per_lease[lk]
    if not args then
      args = {}
      per_lease[lk] = args
    end
    args[#args + 1] = deadline
    args[#args + 1] = t[1]
  else
    lost[#lost + 1] = t[1]
  end
end
for lk, args in pairs(per_lease) do chunks('ZADD', lk, args) end
local values = fetch('HMGET', jobs, ids)
local out = {}
local blob = {}
for k, t in ipairs(kept) do
  local value = values[k]
  out[4 * k - 3] = t[2]
  out[4 * k - 2] = t[3]
  out[4 * k - 1] = #t[1]
  blob[2 * k - 1] = t[1]
  if value then
    out[4 * k] = #value
    blob[2 * k] = value
  else
    out[4 * k] = -1
    blob[2 * k] = ''
  end
end
if remaining <= 0 then
  for _, lane in ipairs(lanes) do wake(lane, 1) end  -- more may be due: wake the next claimer
end
return {1, 0, table.concat(out, ' '), table.concat(blob), lost}
"""
)

# ARGV: prefix, then groups (see read_groups).
_ACK = (
    _LUA_PRELUDE
    + """
local gone = {}
for _, g in ipairs(read_groups(2)) do
  local mine = current(g)
  if #mine > 0 then
    chunks('ZREM', g.key, mine)
    for _, m in ipairs(mine) do
      local _, id = parse(m)
      gone[#gone + 1] = id
    end
  end
end
chunks('HDEL', jobs, gone)
return #gone
"""
)

# ARGV: prefix, lease seconds, then groups (see read_groups).
_EXTEND = (
    _LUA_PRELUDE
    + """
local deadline = now_s() + tonumber(ARGV[2])
local done = 0
for _, g in ipairs(read_groups(3)) do
  local args = {}
  for _, m in ipairs(g.members) do
    args[#args + 1] = deadline
    args[#args + 1] = m
  end
  -- XX: only members still leased, so a claim that is no longer current is left alone
  done = done + chunks('ZADD', g.key, args, {'XX', 'CH'})
end
return done
"""
)

# ARGV: prefix, count, then per item: lease member, lane, priority, new lane, new priority,
# new due, new body.
_RETRY = (
    _LUA_PRELUDE
    + """
local n = tonumber(ARGV[2])
local woken = {}
local done = 0
for i = 0, n - 1 do
  local b = 3 + i * 7
  local m = ARGV[b]
  if redis.call('ZREM', P .. 'l:' .. ARGV[b + 1] .. ':' .. ARGV[b + 2], m) == 1 then
    local dlv, id = parse(m)
    local lane, due = ARGV[b + 3], ARGV[b + 5]
    redis.call('HSET', jobs, id, due .. '|' .. ARGV[b + 6])
    local seq = redis.call('INCR', P .. 'seq')
    redis.call('ZADD', P .. 'w:' .. lane .. ':' .. ARGV[b + 4], due, waiting(seq, dlv + 1, id))
    woken[lane] = (woken[lane] or 0) + 1
    done = done + 1
  end
end
for lane, count in pairs(woken) do wake(lane, count) end
return done
"""
)

# Dead letters are found by job id through the ``deadids`` hash, kept exact by every script
# that adds or deletes a stream entry (so trimming is done here, not by XADD MAXLEN).
_DEAD_PRELUDE = """
local D = P .. 'dead'
local IDX = P .. 'deadids'
local function dead_index_add(id, eid)
  local cur = redis.call('HGET', IDX, id)
  if cur then redis.call('HSET', IDX, id, cur .. ' ' .. eid)
  else redis.call('HSET', IDX, id, eid) end
end
local function field(e, name)
  local f = e[2]
  for i = 1, #f, 2 do if f[i] == name then return f[i + 1] end end
  return nil
end
local function dead_drop(e)
  redis.call('XDEL', D, e[1])
  local id = field(e, 'id')
  if not id then return end
  local cur = redis.call('HGET', IDX, id)
  if not cur then return end
  local keep = {}
  for eid in string.gmatch(cur, '%S+') do
    if eid ~= e[1] then keep[#keep + 1] = eid end
  end
  if #keep == 0 then redis.call('HDEL', IDX, id)
  else redis.call('HSET', IDX, id, table.concat(keep, ' ')) end
end
"""

# ARGV: prefix, cap, count, then per item: lease member, lane, priority, due, body, reason.
# The dead letter holds the message as the caller has it (for a malformed job, what could be
# kept of it), never the job's own value, which may be missing or garbled.
_DEAD = (
    _LUA_PRELUDE
    + _DEAD_PRELUDE
    + """
local cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local now = string.format('%.6f', now_s())
local done = 0
for i = 0, n - 1 do
  local b = 4 + i * 6
  local m, lane, p = ARGV[b], ARGV[b + 1], ARGV[b + 2]
  local _, id = parse(m)
  if id and redis.call('ZREM', P .. 'l:' .. lane .. ':' .. p, m) == 1 then
    local eid = redis.call('XADD', P .. 'dead', '*', 'id', id, 'lane', lane,
      'priority', p, 'due', ARGV[b + 3], 'body', ARGV[b + 4], 'reason', ARGV[b + 5], 'at', now)
    dead_index_add(id, eid)
    redis.call('HDEL', jobs, id)
    done = done + 1
  end
end
local over = redis.call('XLEN', P .. 'dead') - cap
if over > 0 then
  for _, e in ipairs(redis.call('XRANGE', P .. 'dead', '-', '+', 'COUNT', over)) do
    dead_drop(e)
  end
end
return done
"""
)

# ARGV: prefix, then job ids. Returns the stream entries of their dead letters.
_FIND_DEAD = _LUA_PRELUDE + _DEAD_PRELUDE + """
local out = {}
for i = 2, #ARGV do
  local cur = redis.call('HGET', IDX, ARGV[i])
  if cur then
    for eid in string.gmatch(cur, '%S+') do
      local got = redis.call('XRANGE', D, eid, eid)
      if got[1] then out[#out + 1] = got[1] end
    end
  end
end
return out
"""

# ARGV: prefix, then stream entry ids. Deletes them; returns the entries that were there.
_REMOVE_DEAD = _LUA_PRELUDE + _DEAD_PRELUDE + """
local out = {}
for i = 2, #ARGV do
  local got = redis.call('XRANGE', D, ARGV[i], ARGV[i])
  if got[1] then
    dead_drop(got[1])
    out[#out + 1] = got[1]
  end
end
return out
"""

# ARGV: prefix, and a time ("" for all). Deletes the dead letters older than it, oldest
# first (entry order is the order of their ``at``, both from the server's clock).
_PURGE_DEAD = _LUA_PRELUDE + _DEAD_PRELUDE + """
if ARGV[2] == '' then
  local n = redis.call('XLEN', D)
  redis.call('DEL', D, IDX)
  return n
end
local before = tonumber(ARGV[2])
local n = 0
while true do
  local batch = redis.call('XRANGE', D, '-', '+', 'COUNT', 500)
  if #batch == 0 then return n end
  for _, e in ipairs(batch) do
    local at = tonumber(field(e, 'at') or '')
    if at and at >= before then return n end
    dead_drop(e)
    n = n + 1
  end
end
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _PushConnections:
    """Connections for pushes, lent to one thread at a time: a push takes one, sends its
    script calls and reads the replies, and gives it back. At most ``size`` exist; a push
    that finds all of them lent waits for one, up to ``timeout`` seconds."""

    def __init__(self, make: Callable[[], Any], size: int, timeout: float) -> None:
        self._make = make
        self._size = size
        self._timeout = timeout
        self._lock = threading.Lock()  # held directly on the fast paths (cheaper)
        self._cond = threading.Condition(self._lock)  # only for waiting
        self._idle: list[Any] = []
        self._count = 0  # connections made (idle or lent)
        self._waiting = 0
        self._closed = False

    def take(self) -> Any:
        """An idle connection, a new one, or the next one given back."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            deadline = time.monotonic() + self._timeout
            while self._count >= self._size and not self._idle:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise redis.ConnectionError(
                        f"all {self._size} push connections stayed busy for {self._timeout:g} s"
                    )
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
            if self._idle:
                return self._idle.pop()
            self._count += 1
            return self._make()  # connects on its first command

    def give(self, conn: Any) -> None:
        """Take back a connection (disconnected or not; it reconnects when used again)."""
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                if self._waiting:
                    self._cond.notify()
                return
            self._count -= 1
        conn.disconnect()

    def count(self) -> int:
        """Connections made and not closed."""
        with self._lock:
            return self._count

    def close(self) -> None:
        """Disconnect the idle connections; those lent now are disconnected when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.disconnect()


_EVALSHA_HEADS: dict[tuple[str, str], bytes] = {}
"""``EVALSHA <sha> 1 <key>`` in the Redis protocol, by script and key (``_packed_evalsha``)."""


def _packed_evalsha(sha: str, key: str, args: Sequence[Any]) -> bytes:
    """``EVALSHA sha 1 key *args`` in the Redis protocol, the bytes redis-py's
    ``pack_command`` makes of it (``str`` as UTF-8, ``int`` and ``float`` as their
    ``repr``); the part before the arguments is packed once per script and key."""
    head = _EVALSHA_HEADS.get((sha, key))
    if head is None:
        head = b"".join(b"$%d\r\n%b\r\n" % (len(part), part)
                        for part in (b"EVALSHA", sha.encode(), b"1", key.encode()))
        if len(_EVALSHA_HEADS) >= 64:
            _EVALSHA_HEADS.clear()
        _EVALSHA_HEADS[sha, key] = head
    parts = [b"*%d\r\n" % (len(args) + 4), head]
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int:
            data = b"%d" % arg
        elif isinstance(arg, str):
            data = str(arg).encode()
        elif isinstance(arg, bytes | bytearray | memoryview):
            data = bytes(arg)
        elif isinstance(arg, int | float) and not isinstance(arg, bool):
            data = repr(int(arg) if isinstance(arg, int) else float(arg)).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RedisAgent(Agent):
    """Jobs in Redis: shared by any number of machines, woken by ``BLPOP``, leased by script.

    ``url`` is a redis-py URL (``redis://[user:password@]host:port/db``, ``rediss://`` for
    TLS; query options such as ``?socket_timeout=30`` are passed to redis-py). Priorities
    are 0..4 (``jobmaster.Priority``).
    """

    capabilities = Capabilities(notify=True, delayed=True, durable=True, shared=True)

    def __init__(self, url: str, *, name: str = "main", namespace: str = "jobmaster") -> None:
        super().__init__(url, name=name, namespace=namespace)
        if "{" in namespace + name or "}" in namespace + name:
            raise ConfigurationError(
                f"agent name {name!r} and namespace {namespace!r} must not contain braces"
            )
        self._prefix = f"{{{namespace}:{name}}}:"
        self._jobs = self._prefix + "jobs"
        try:
            parts = urlsplit(url)
            self._where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                socket_connect_timeout=_CONNECT_TIMEOUT,
                socket_timeout=_SOCKET_TIMEOUT,
                socket_keepalive=True,
                client_name="jobmaster-agent:" + "".join(
                    c if c.isalnum() or c in "-_.:" else "_" for c in f"{namespace}:{name}"
                ),
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=2),
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"bad Redis agent URL {redact_url(url)!r}: {redact_text(str(exc), url)}"
            ) from exc
        self._pushers = self._push_connections()
        self._blob_loaded = False
        register = self._client.register_script
        self._push_single: Script = register(_PUSH_ONE)
        self._push: Script = register(_PUSH)
        self._push_blob: Script = register(_PUSH_BLOB)
        self._claim: Script = register(_CLAIM)
        self._ack: Script = register(_ACK)
        self._retry: Script = register(_RETRY)
        self._extend: Script = register(_EXTEND)
        self._dead: Script = register(_DEAD)
        self._find_dead: Script = register(_FIND_DEAD)
        self._remove_dead: Script = register(_REMOVE_DEAD)
        self._purge_dead: Script = register(_PURGE_DEAD)
        after_fork(self, RedisAgent._forget)

    def _push_connections(self) -> _PushConnections:
        """A fresh set of push connections, made like the client pool's (not counted in
        its ``max_connections``)."""
        pool = self._client.connection_pool
        timeout = float(pool.connection_kwargs.get("socket_timeout") or _SOCKET_TIMEOUT)
        make = partial(pool.connection_class, **pool.connection_kwargs)
        return _PushConnections(make, PUSH_CONNECTIONS, timeout)

    def _forget(self) -> None:
        """In a forked child: drop the parent's push connections (redis-py's own pool
        notices the fork by itself)."""
        self._pushers = self._push_connections()

    def scan(self, after: str | None = None, limit: int = 500
             ) -> tuple[list[tuple[str, bytes]], str | None]:
        """A page of held messages (``HSCAN`` of the jobs hash: a page may hold a few more
        or fewer than ``limit``, and a message may show up twice across pages)."""
        answer: Any = self._call("scan", lambda: self._client.hscan(
            self._jobs, int(after or 0), count=limit))
        cursor, found = answer
        page = []
        for key, value in found.items():
            raw = value if isinstance(value, bytes) else str(value).encode()
            _due, sep, body = raw.partition(b"|")
            if sep:
                page.append((key.decode() if isinstance(key, bytes) else str(key), body))
        return page, (str(cursor) if int(cursor) else None)

    # -- plumbing ------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one Redis call, turning redis-py's errors into ``AgentError``."""
        try:
            return fn()
        except redis.AuthenticationError as exc:
            raise AgentError(
                f"Redis agent {self.name!r}: Redis at {self._where} refused the credentials "
                f"({redact_text(str(exc), self.url)}); check the user and password in the "
                "agent URL (redis://user:password@host/db)") from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise AgentUnreachableError(
                f"Redis agent {self.name!r} cannot reach {redact_url(self.url)} to {what} "
                f"({redact_text(str(exc), self.url)}); is Redis running at {self._where} and "
                "reachable from here? The agent reconnects on its next call."
            ) from exc
        except redis.RedisError as exc:
            if str(exc).startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                raise AgentError(
                    f"Redis agent {self.name!r}: Redis at {self._where} refused to {what} "
                    f"({redact_text(str(exc), self.url)}); check the user, password and ACL "
                    "permissions in the agent URL") from exc
            raise AgentError(
                f"Redis agent {self.name!r} at {redact_url(self.url)} failed to {what}: "
                f"{redact_text(str(exc), self.url)}"
            ) from exc

    @staticmethod
    def _claim_groups(claims: Sequence[Claimed]) -> list[Any]:
        """Receipts (lease members) as script arguments, grouped by bucket."""
        groups: dict[tuple[str, int], list[bytes]] = {}
        for c in claims:
            m = c.message
            groups.setdefault((m.lane, int(m.priority)), []).append(c.receipt)
        args: list[Any] = []
        for (lane, priority), members in groups.items():
            args += (lane, priority, len(members), *members)
        return args

    # -- producer ------------------------------------------------------------------
    def push(self, messages: Sequence[AgentMessage]) -> None:
        """Store messages in one round trip; ids already held are ignored."""
        if not messages:
            return
        check_messages(messages)
        if len(messages) == 1:  # one job: its own short script
            m = messages[0]
            args: list[Any] = [self._prefix, m.id, m.lane, m.priority, repr(float(m.due)),
                               m.body]
            self._call("push", lambda: self._on_push_connection(self._push_one, args))
            return
        if len(messages) <= 4:  # a few jobs: plain arguments, nothing to pack
            args = [self._prefix, len(messages)]
            for m in messages:
                args += (m.id, m.lane, m.priority, repr(float(m.due)), m.body)
            self._call("push", lambda: self._on_push_connection(self._push_few, args))
            return
        self._call("push", lambda: self._on_push_connection(self._push_stream, messages))

    def _on_push_connection(self, send: Callable[[Any, Any], None], what: Any) -> None:
        """Run ``send(connection, what)`` on a push connection, then give it back."""
        conn = self._pushers.take()
        try:
            send(conn, what)
        finally:
            self._pushers.give(conn)

    def _chunks(self, messages: Sequence[AgentMessage]) -> Iterator[list[Any]]:
        """The arguments of one push-script call per chunk, packed as it is needed."""
        size = _LENGTH.pack
        for start in range(0, len(messages), _PUSH_CHUNK):
            part = messages[start : start + _PUSH_CHUNK]
            pieces: list[bytes] = []
            add = pieces.append
            for m in part:
                for field in (m.id.encode(), m.lane.encode(), b"%d" % m.priority,
                              repr(float(m.due)).encode(), m.body):
                    add(size(len(field)))
                    add(field)
            yield [self._prefix, len(part), b"".join(pieces)]

    def _push_stream(self, conn: Any, messages: Sequence[AgentMessage]) -> None:
        """Send one script call per chunk without waiting, packing the next chunk while
        Redis runs the previous one, then read every reply. Pushes are idempotent, so on
        an error (a lost connection, the script cache flushed) the whole push is sent
        again once."""
        for attempt in range(2):
            sent = 0
            try:
                if not self._blob_loaded:
                    self._push_blob.sha = self._client.script_load(_PUSH_BLOB)
                    self._blob_loaded = True
                for args in self._chunks(messages):
                    conn.send_command("EVALSHA", self._push_blob.sha, 1, self._jobs, *args)
                    sent += 1
                for _ in range(sent):
                    conn.read_response()
                return
            except redis.exceptions.NoScriptError:
                conn.disconnect()  # drop the replies not read yet
                self._blob_loaded = False
                if attempt:
                    raise
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt:
                    raise

    def _push_one(self, conn: Any, args: list[Any]) -> None:
        """One job: one round trip of ``_PUSH_ONE``."""
        self._push_direct(conn, args, self._push_single)

    def _push_few(self, conn: Any, args: list[Any]) -> None:
        """Up to four jobs as plain arguments: one round trip of ``_PUSH``."""
        self._push_direct(conn, args, self._push)

    def _push_direct(self, conn: Any, args: list[Any], script: Script) -> None:
        """One EVALSHA: a single ``.delay()`` costs one round trip and no connection-pool
        bookkeeping; the command is packed here (``_packed_evalsha``), not by redis-py."""
        for attempt in range(2):
            try:
                conn.send_packed_command([_packed_evalsha(script.sha, self._jobs, args)])
                conn.read_response()
                return
            except redis.exceptions.NoScriptError:
                script.sha = self._client.script_load(script.script)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt:
                    raise

    # -- consumer ------------------------------------------------------------------
    def claim(
        self,
        lanes: Sequence[str],
        limit: int,
        *,
        lease_seconds: float,
        consumer: str,
        wait: float = 0.0,
    ) -> list[Claimed]:
        """Claim up to ``limit`` due jobs in one script call; if none, block on ``BLPOP``
        of the lanes' wake-up lists (never longer than until the next job is due or lease
        expires). ``consumer`` is not stored: the receipt identifies the claim. Malformed
        jobs are moved to the dead letters (see the module docstring)."""
        if not lanes or limit <= 0:
            return []
        lanes = list(dict.fromkeys(lanes))
        args: list[Any] = [self._prefix, int(limit), repr(float(lease_seconds)), *lanes]
        keys = [self._jobs]
        signals = [self._prefix + "s:" + lane for lane in lanes]
        deadline = time.monotonic() + wait
        again = AGAIN_AFTER_MALFORMED
        while True:
            reply: list[Any] = self._call("claim", lambda: self._claim(keys, args))
            claimed, malformed = self._claimed(reply, lanes)
            removed = bool(malformed) and bury_malformed(self, malformed, self._bury)
            if claimed:
                return claimed
            if (removed or reply[4]) and again > 0:
                again -= 1  # only malformed jobs, now gone: look again at once
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            block = min(remaining, _MAX_BLOCK)
            if reply[1] >= 0:
                block = min(block, reply[1] / 1_000_000 + 0.001)
            block = max(block, 0.001)
            self._call("wait for jobs", partial(self._client.blpop, signals, block))

    def _claimed(
        self, reply: list[Any], lanes: Sequence[str]
    ) -> tuple[list[Claimed], list[tuple[Claimed, str]]]:
        """The claims of a claim script's reply, and its malformed jobs with their reasons;
        members removed for naming no job are logged."""
        lost: list[bytes] = reply[4]
        if lost:
            log.error(
                "Redis agent %r at %s: removed %d stored member(s) that name no job "
                "(expected '<seq><deliveries>:<id>'): %s",
                self.name,
                redact_url(self.url),
                len(lost),
                ", ".join(repr(m[:80]) for m in lost[:10]),
            )
        if reply[0] != 1:
            return [], []
        numbers = [int(n) for n in reply[2].split()]
        blob: bytes = reply[3]
        out: list[Claimed] = []
        malformed: list[tuple[Claimed, str]] = []
        pos = 0
        for i in range(0, len(numbers), 4):
            lane_index, priority, member_len, value_len = numbers[i : i + 4]
            member = blob[pos : pos + member_len]
            pos += member_len
            colon = member.index(b":", 16)
            deliveries = _deliveries(member[16:colon]) + 1
            value = None
            if value_len >= 0:
                value = blob[pos : pos + value_len]
                pos += value_len
            read = _read_job(member[colon + 1 :], lanes[lane_index - 1], priority, value)
            if isinstance(read, Malformed):
                malformed.append((Claimed(read.message, member, deliveries), read.reason))
            else:
                out.append(Claimed(read, member, deliveries))
        return out, malformed

    def ack(self, claims: Sequence[Claimed]) -> None:
        """Forget claimed jobs (those whose claim is still current) in one script call."""
        if not claims:
            return
        args: list[Any] = [self._prefix, *self._claim_groups(claims)]
        self._call("ack", lambda: self._ack([self._jobs], args))

    def retry(self, items: Sequence[tuple[Claimed, AgentMessage]]) -> None:
        """Replace claimed jobs with new versions and release their leases, one call."""
        if not items:
            return
        check_messages([new for _, new in items])
        args: list[Any] = [self._prefix, len(items)]
        for claim, new in items:
            m = claim.message
            args += (claim.receipt, m.lane, int(m.priority))
            args += (new.lane, int(new.priority), repr(float(new.due)), new.body)
        self._call("retry", lambda: self._retry([self._jobs], args))

    def extend(self, claims: Sequence[Claimed], lease_seconds: float) -> None:
        """Push the lease deadline of current claims to ``lease_seconds`` from now."""
        if not claims:
            return
        args: list[Any] = [self._prefix, repr(float(lease_seconds)), *self._claim_groups(claims)]
        self._call("extend leases", lambda: self._extend([self._jobs], args))

    def dead_letter(self, items: Sequence[tuple[Claimed, str]]) -> None:
        """Move claimed jobs to the ``dead`` stream with their reasons, one call."""
        if not items:
            return
        self._bury(items)

    def _bury(self, items: Sequence[tuple[Claimed, str]]) -> None:
        args: list[Any] = [self._prefix, DEAD_LETTER_CAP, len(items)]
        for claim, reason in items:
            m = claim.message
            args += (claim.receipt, m.lane, int(m.priority), repr(float(m.due)), m.body,
                     storable_reason(reason, self.reason_limit_bytes))
        self._call("dead-letter", lambda: self._dead([self._jobs], args))

    # -- dead letters --------------------------------------------------------------
    # A dead letter's key is its stream entry id. Each operation is one call (a script
    # for find, remove and purge, which keep the ``deadids`` index exact); requeue is push,
    # then remove (see ``Agent``). Entries written before the index existed are listed and
    # purged, but not found by id.
    def dead_letters(
        self, limit: int = 100, *, before: DeadLetter | None = None
    ) -> list[DeadLetter]:
        """The newest dead letters first (older than ``before`` if given), read from the
        ``dead`` stream in one call."""
        if limit <= 0:
            return []
        top = "+" if before is None else "(" + _text(before.key)

        def read() -> Any:
            return self._client.xrevrange(self._prefix + "dead", top, "-", count=limit)

        entries: list[tuple[bytes, dict[bytes, bytes]]] = self._call("read dead letters", read)
        return [_dead_letter(eid, f) for eid, f in entries]

    def find_dead_letters(self, ids: Sequence[str]) -> list[DeadLetter]:
        """The dead letters of these job ids, newest first (one script call)."""
        if not ids:
            return []
        raw = self._call(
            "find dead letters", lambda: self._find_dead([self._jobs], [self._prefix, *ids])
        )
        return _newest_first(_entries(raw))

    def remove_dead_letters(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        """Delete these stream entries (one script call); return those that were there."""
        if not letters:
            return []
        keys = [_text(d.key) for d in letters]
        raw = self._call(
            "remove dead letters", lambda: self._remove_dead([self._jobs], [self._prefix, *keys])
        )
        return _newest_first(_entries(raw))

    def purge_dead_letters(self, before: float | None = None) -> int:
        """Delete every dead letter, or those older than ``before`` (one script call)."""
        arg = "" if before is None else repr(float(before))
        return int(self._call(
            "purge dead letters", lambda: self._purge_dead([self._jobs], [self._prefix, arg])
        ))

    # -- inspection ----------------------------------------------------------------

    def length(self, bucket: Bucket | None = None) -> int:
        """Jobs held, waiting or claimed, in one bucket or in the whole agent."""
        if bucket is None:
            return int(self._call("count jobs", lambda: self._client.hlen(self._jobs)))
        suffix = f"{bucket.lane}:{int(bucket.priority)}"

        def count() -> int:
            pipe = self._client.pipeline(transaction=False)
            pipe.zcard(self._prefix + "w:" + suffix)
            pipe.zcard(self._prefix + "l:" + suffix)
            return sum(int(n) for n in pipe.execute())

        return self._call("count jobs", count)

    def purge(self) -> int:
        """Delete every key of this agent (found by ``SCAN``); return the jobs dropped."""

        def drop() -> int:
            count = int(self._client.hlen(self._jobs))
            pattern = _glob_escape(self._prefix) + "*"
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
            return count

        return self._call("purge", drop)

    def close(self) -> None:
        """Close the push connections and the client's pool."""
        self._pushers.close()
        self._client.close()


def _read_job(
    raw_id: bytes, lane: str, priority: int, value: bytes | None
) -> AgentMessage | Malformed:
    """The message of a job from its id and its hash value ``<due>|<body>`` (``None`` if it
    has no hash entry), or ``Malformed`` saying what is wrong."""
    try:
        job_id: str | bytes = raw_id.decode()
    except UnicodeDecodeError:
        job_id = raw_id
    if value is None:
        return Malformed(
            salvage_message(job_id, lane, priority, None, None),
            "stored record has no value (no hash entry for its id)",
        )
    sep = value.find(b"|")
    if sep < 0:
        return Malformed(
            salvage_message(job_id, lane, priority, None, value),
            "stored record has no '|' between its due time and its body",
        )
    due_text = value[:sep]
    try:
        due: float | str = float(due_text)
    except ValueError:
        due = due_text.decode("utf-8", "replace")
    return read_message(job_id, lane, priority, due, value[sep + 1 :])


def _deliveries(text: bytes) -> int:
    """The deliveries so far a member records; a garbled count counts as none."""
    try:
        return int(text)
    except ValueError:
        return 0


def _text(key: object) -> str:
    """A stream entry id (bytes or str) as text."""
    return key.decode() if isinstance(key, bytes) else str(key)


def _entries(raw: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries a script returned (``{id, {field, value, ...}}``) as redis-py's."""
    out = []
    for eid, flat in raw or []:
        out.append((eid, dict(zip(flat[::2], flat[1::2], strict=False))))
    return out


def _newest_first(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[DeadLetter]:
    def order(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[int, int]:
        ms, _, seq = _text(entry[0]).partition("-")
        return int(ms), int(seq or 0)

    return [_dead_letter(eid, f) for eid, f in sorted(entries, key=order, reverse=True)]


def _dead_letter(eid: bytes, f: dict[bytes, bytes]) -> DeadLetter:
    """A dead letter from its stream entry."""
    message = salvage_message(
        f.get(b"id"),
        f.get(b"lane"),
        stored_number(f.get(b"priority"), int),
        stored_number(f.get(b"due"), float),
        f.get(b"body"),
    )
    reason = f.get(b"reason", b"").decode("utf-8", "replace")
    return DeadLetter(message, reason, stored_number(f.get(b"at"), float) or 0.0, _text(eid))
