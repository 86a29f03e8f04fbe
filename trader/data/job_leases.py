"""A job's lease in Redis: who holds it (a worker's id), whether that holder is gone, the atomic steps under it.

A worker is ``host:pid:tag``. The queue's steps that must see the lease and
change the job together are Lua scripts, run atomically by Redis: a claim
(pop a queued job, mark it RUNNING, take its lease), a renewal, a save of an
instrument's progress and a run's end (each only by the lease's holder), and a
requeue (by the holder, or anyone once the lease lapsed or its holder is gone).
"""

from __future__ import annotations

import os
import secrets
import socket

__all__ = ["CLAIM", "FINISH", "LEASE_SECONDS", "RENEW", "REQUEUE", "SAVE", "holder_gone", "worker_id"]

LEASE_SECONDS = 15.0


def worker_id() -> str:
    """Return this process's worker id: host, pid and a random tag (a pid may be reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def holder_gone(holder: str) -> bool:
    """Return whether a lease's holder was a process of this host that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a zombie is gone too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


# KEYS: queue, running; ARGV: prefix, worker, lease ms, now
CLAIM = """
local id = redis.call('RPOP', KEYS[1])
while id do
  local job = ARGV[1] .. ':job:' .. id
  if redis.call('HGET', job, 'state') == 'QUEUED' then
    redis.call('SET', ARGV[1] .. ':lease:' .. id, ARGV[2], 'PX', ARGV[3])
    redis.call('HSET', job, 'state', 'RUNNING', 'worker', ARGV[2], 'updated', ARGV[4])
    redis.call('HINCRBY', job, 'runs', 1)
    redis.call('SADD', KEYS[2], id)
    return id
  end
  id = redis.call('RPOP', KEYS[1])
end
return false
"""
# KEYS: lease; ARGV: worker, lease ms
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lease, items, job; ARGV: worker, item key, item json, now
SAVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], 'updated', ARGV[4])
return 1
"""
# KEYS: lease, job, running; ARGV: worker, state, now, id, error
FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[2], 'updated', ARGV[3], 'worker', '', 'waiting', '', 'error', ARGV[5])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[4])
return 1
"""
# KEYS: lease, job, running, queue; ARGV: id, now, holder ('' : only if the lease lapsed)
REQUEUE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], 'state') ~= 'RUNNING' then return 0 end
redis.call('HSET', KEYS[2], 'state', 'QUEUED', 'worker', '', 'updated', ARGV[2], 'waiting', '')
redis.call('RPUSH', KEYS[4], ARGV[1])
return 1
"""
