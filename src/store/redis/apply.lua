-- Counts a batch of ops (`store::CounterOp`) with the rules of `store::memory::meter`, whose
-- comments explain them; the two are kept in step by the store contract tests.
--
-- ARGV[1]: sliding-window buckets per window. Then 6 numbers per key in KEYS: algorithm (0
-- fixed window, 1 sliding window, 2 token bucket), window ms, limit, burst, delta, admission (0
-- count all, 1 fit, 2 with the previous key, 3 count all with the previous key). Answers 3
-- numbers per key: value, ms until reset, 1 when its hits fit (else 0). A run (a key and the
-- keys after it marked 2 or 3) is all or nothing (`store::is_counted`): a count-all fixed window
-- is counted when the whole run fits or its own hits go over.
-- Time is Redis's own (TIME), the clock every node shares.
local clock = redis.call('TIME')
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now = math.floor(now_us / 1000)
local span = tonumber(ARGV[1])
-- How close to whole a fractional token count must be to count (store::bucket::EPSILON).
local epsilon = 1e-9

local function arg(i, field)
  return tonumber(ARGV[1 + 6 * (i - 1) + field])
end

-- Hits that must fit: one to only look, none to refund.
local function needed(delta)
  if delta < 0 then return 0 end
  return math.max(delta, 1)
end

local function clamp(value)
  return math.max(0, math.min(value, 9007199254740992))
end

local function fixed(op)
  local ends = now - now % op.window + op.window
  local expires = redis.call('PEXPIRETIME', op.key)
  local before = 0
  if expires == ends then
    before = tonumber(redis.pcall('GET', op.key)) or 0
  end
  local after = clamp(before + op.delta)
  if op.admission == 0 or op.admission == 3 then
    op.fits = after <= op.limit
  else
    op.fits = op.delta < 0 or before + needed(op.delta) <= op.limit
  end
  op.before, op.after = before, after
  op.before_wait, op.after_wait = ends - now, ends - now
  op.commit = function()
    if expires ~= -2 or after > 0 then
      redis.call('SET', op.key, after, 'PXAT', ends)
    end
  end
end

local function sliding(op)
  local key, window = op.key, op.window
  local width = math.max(math.ceil(window / span), 1)
  local current = math.floor(now / width)
  local oldest = math.max(current - span, 0)
  local kind = redis.call('TYPE', key)['ok']
  local stale = kind ~= 'none'
    and (kind ~= 'hash' or tonumber(redis.call('HGET', key, 'w')) ~= width)
  local buckets, count = {}, 0
  if kind == 'hash' and not stale then
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
      local bucket = tonumber(fields[i])
      if bucket and bucket < oldest then
        redis.call('HDEL', key, fields[i])
      elseif bucket then
        local hits = tonumber(fields[i + 1])
        buckets[#buckets + 1] = {bucket, hits}
        count = count + hits
      end
    end
    table.sort(buckets, function(a, b) return a[1] < b[1] end)
  end
  local need = needed(op.delta)
  op.fits = op.delta < 0 or count + need <= op.limit
  local oldest_leaves = nil
  if #buckets > 0 then
    oldest_leaves = (buckets[1][1] + span + 1) * width - now
  end
  if op.fits then
    op.before_wait = oldest_leaves or 0
  else
    op.before_wait = window
    if need <= op.limit then
      local left = count
      for _, entry in ipairs(buckets) do
        left = left - entry[2]
        if left + need <= op.limit then
          op.before_wait = math.max((entry[1] + span + 1) * width - now, 0)
          break
        end
      end
    end
  end
  op.after_wait = oldest_leaves or 0
  if oldest_leaves == nil and op.delta > 0 then
    op.after_wait = (current + span + 1) * width - now
  end
  op.before, op.after = count, clamp(count + op.delta)
  op.commit = function()
    if op.delta > 0 then
      if stale then
        redis.call('DEL', key)
      end
      redis.call('HINCRBY', key, current, op.delta)
      redis.call('HSET', key, 'w', width)
      redis.call('PEXPIREAT', key, (current + span + 1) * width)
    elseif op.delta < 0 and not stale then
      local refund = -op.delta
      local newest = nil
      for b = #buckets, 1, -1 do
        local taken = math.min(refund, buckets[b][2])
        refund = refund - taken
        if taken == buckets[b][2] then
          redis.call('HDEL', key, buckets[b][1])
        else
          redis.call('HINCRBY', key, buckets[b][1], -taken)
          newest = newest or buckets[b][1]
        end
        if refund == 0 then
          newest = newest or (buckets[b - 1] and buckets[b - 1][1])
          break
        end
      end
      if newest then
        redis.call('PEXPIREAT', key, (newest + span + 1) * width)
      elseif #buckets > 0 then
        redis.call('DEL', key)
      end
    end
  end
end

local function token_bucket(op)
  local key, burst, window = op.key, op.burst, op.window
  if op.limit <= 0 then
    -- A bucket that never refills admits nothing.
    op.fits = op.delta < 0
    op.before, op.after, op.before_wait, op.after_wait = burst, burst, window, window
    op.commit = function() end
    return
  end
  local interval = window * 1000 / op.limit
  local tokens, at = burst, now_us
  local kind = redis.call('TYPE', key)['ok']
  local ours = false
  if kind == 'hash' then
    local state = redis.call('HMGET', key, 'k', 'a')
    local held, since = tonumber(state[1]), tonumber(state[2])
    if held and since then
      ours = true
      tokens = math.min(held + math.max(now_us - since, 0) / interval, burst)
      at = math.max(now_us, since)
    end
  end
  local need = needed(op.delta)
  local function whole(t)
    return math.min(math.max(math.floor(t + epsilon), 0), burst)
  end
  local function wait(t, hits)
    if hits > burst then return window end
    local missing = hits - t - epsilon
    if missing <= 0 then return 0 end
    return math.ceil(math.ceil(missing * interval) / 1000)
  end
  op.fits = op.delta < 0 or whole(tokens) >= need
  local after = math.min(tokens - op.delta, burst)
  local function view(t)
    local remaining = whole(t)
    if not op.fits then
      return burst - remaining, wait(t, need)
    elseif remaining < burst then
      return burst - remaining, wait(t, remaining + 1)
    end
    return burst - remaining, 0
  end
  op.before, op.before_wait = view(tokens)
  op.after, op.after_wait = view(after)
  op.commit = function()
    if after + epsilon >= burst then
      if kind ~= 'none' then
        redis.call('DEL', key)
      end
      return
    end
    if kind ~= 'none' and not ours then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, 'k', after, 'a', at, 'i', interval, 'b', burst)
    redis.call('PEXPIREAT', key, math.ceil((at + (burst - after) * interval) / 1000))
  end
end

local judges = {[0] = fixed, [1] = sliding, [2] = token_bucket}

local out = {}
local count = #KEYS
local first = 1
while first <= count do
  local last = first
  while last < count and arg(last + 1, 6) >= 2 do
    last = last + 1
  end
  local run = {}
  local all_fit = true
  for i = first, last do
    local op = {
      key = KEYS[i], algorithm = arg(i, 1), window = arg(i, 2), limit = arg(i, 3),
      burst = arg(i, 4), delta = arg(i, 5), admission = arg(i, 6),
    }
    judges[op.algorithm](op)
    run[i] = op
    all_fit = all_fit and op.fits
  end
  for i = first, last do
    local op = run[i]
    local counted
    if (op.admission == 0 or op.admission == 3) and op.algorithm == 0 then
      counted = all_fit or not op.fits
    else
      counted = all_fit and op.delta ~= 0
    end
    local value, wait = op.before, op.before_wait
    if counted then
      op.commit()
      value, wait = op.after, op.after_wait
    end
    out[3 * i - 2], out[3 * i - 1] = value, wait
    out[3 * i] = op.fits and 1 or 0
  end
  first = last + 1
end
return out
