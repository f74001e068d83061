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

/// Fixed windows. `KEYS[i]` is a counter; `ARGV[2i-1]` its window in ms, `ARGV[2i]` the delta.
/// A key holds its window's count and expires when the window ends, so a key whose expiry is
/// not this window's end (gone, of an earlier window, without TTL, of another kind) counts from
/// zero. Reading or refunding a missing key creates nothing. Counts stay within 0 ..= 2^53, the
/// integers a Lua number holds exactly. Returns `{value, ms until the window ends}` per key.
pub static COUNT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i - 1])
  local delta = tonumber(ARGV[2 * i])
  local ends = now - now % window + window
  local expires = redis.call('PEXPIRETIME', key)
  local value = 0
  if expires == ends then
    value = tonumber(redis.pcall('GET', key)) or 0
  end
  value = math.max(0, math.min(value + delta, 9007199254740992))
  if expires ~= -2 or value > 0 then
    redis.call('SET', key, value, 'PXAT', ends)
  end
  out[2 * i - 1] = value
  out[2 * i] = ends - now
end
return out
",
    )
});

/// Sliding windows, the rules of `store::sliding`: `KEYS[1]` is a hash of bucket number to
/// hits, plus `w`, the bucket width it was counted with. `ARGV`: bucket width ms, window ms,
/// limit, hits, buckets per window. The hash expires when its newest bucket leaves the counted
/// span. Returns `{1 if admitted else 0, count, ms until retry}`.
pub static SLIDE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local key = KEYS[1]
local width = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local hits = tonumber(ARGV[4])
local span = tonumber(ARGV[5])
local current = math.floor(now / width)
local oldest = math.max(current - span, 0)
local kind = redis.call('TYPE', key)['ok']
if kind == 'hash' and tonumber(redis.call('HGET', key, 'w')) ~= width then
  redis.call('DEL', key)
  kind = 'none'
end
local buckets = {}
local count = 0
if kind == 'hash' then
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local bucket = tonumber(fields[i])
    if bucket and bucket < oldest then
      redis.call('HDEL', key, fields[i])
    elseif bucket then
      local counted = tonumber(fields[i + 1])
      buckets[#buckets + 1] = {bucket, counted}
      count = count + counted
    end
  end
end
if count + hits <= limit then
  if hits > 0 then
    if kind ~= 'hash' and kind ~= 'none' then
      redis.call('DEL', key)
    end
    redis.call('HINCRBY', key, current, hits)
    redis.call('HSET', key, 'w', width)
    redis.call('PEXPIREAT', key, (current + span + 1) * width)
  end
  return {1, count + hits, 0}
end
local retry = window
if hits <= limit then
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  local left = count
  for _, entry in ipairs(buckets) do
    left = left - entry[2]
    if left + hits <= limit then
      retry = math.max((entry[1] + span + 1) * width - now, 0)
      break
    end
  end
end
return {0, count, retry}
",
    )
});

/// Reads counters of either kind for a listing: `{value, ms to live}` per key in `KEYS`, value
/// -1 for a key that is gone or is not a counter. `ARGV[1]`: buckets per window.
pub static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local span = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  local value = -1
  if kind == 'string' then
    value = tonumber(redis.call('GET', key)) or -1
  elseif kind == 'hash' then
    local width = tonumber(redis.call('HGET', key, 'w'))
    if width then
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
