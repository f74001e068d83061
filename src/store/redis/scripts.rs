//! The Lua scripts that count in Redis.
//!
//! Why scripts and not MULTI/EXEC or a pipeline of INCRBY and EXPIRE: a script runs whole, with
//! no other command in between, and it can read before it writes. So the count and its expiry
//! are written by one `SET ... PXAT` that cannot be split (no key is ever left without a TTL,
//! the Go service's immortal-key trap), a key from an earlier window or of another kind is
//! recognised and started over, and the time comes from Redis (`TIME`), the one clock every node
//! shares. A MULTI block cannot branch on what it reads, and keys may expire between the
//! commands of a pipeline.
//!
//! Every key a script touches is passed in `KEYS`, as Redis Cluster requires; in a Cluster the
//! keys of one call must share a hash slot, which the caller ensures.

use std::sync::LazyLock;

use redis::Script;

/// Counts a batch of ops, every algorithm, runs all or nothing (see `apply.lua`).
pub static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("apply.lua")));

/// Reads counters of any kind for a listing: `{value, ms to live}` per key in `KEYS`, value -1
/// for a key that is gone or is not a counter (a token bucket's value: the whole tokens taken).
/// `ARGV[1]`: buckets per window.
pub static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local span = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local value = -1
  if kind == 'string' then
    value = tonumber(redis.call('GET', key)) or -1
  elseif kind == 'hash' then
    local width = tonumber(redis.call('HGET', key, 'w'))
    local state = redis.call('HMGET', key, 'k', 'a', 'i', 'b')
    local held, since, interval, burst =
      tonumber(state[1]), tonumber(state[2]), tonumber(state[3]), tonumber(state[4])
    if held and since and interval and burst then
      local tokens = math.min(held + math.max(now_us - since, 0) / interval, burst)
      value = burst - math.max(math.floor(tokens + 1e-9), 0)
    elseif width then
      local oldest = math.floor(now / width) - span
      local fields = redis.call('HGETALL', key)
      value = 0
      for f = 1, #fields, 2 do
        local bucket = tonumber(fields[f])
        if bucket and bucket >= oldest then
          value = value + tonumber(fields[f + 1])
        end
      end
    end
  end
  out[2 * i - 1] = value
  out[2 * i] = redis.call('PTTL', key)
end
return out
",
    )
});
