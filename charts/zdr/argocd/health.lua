-- Argo CD health of a zdr.dev ZeroDowntimeRollout, read from the status its controller writes
-- (docs/argocd.md). Lua 5.1 as Argo CD runs it: `obj` is the rollout; returns {status, message}.
local hs = {}
local st = obj.status
local generation = obj.metadata.generation

local function true_condition(type_)
  if st.conditions == nil then
    return nil
  end
  for _, c in ipairs(st.conditions) do
    if c.type == type_ and c.status == "True" then
      return c
    end
  end
  return nil
end

local function with_reason(c, message)
  if c == nil then
    return message
  end
  return c.reason .. ": " .. message
end

if st == nil or st.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the zdr controller to observe the rollout"
  return hs
end
if generation ~= nil and st.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the zdr controller to observe generation " .. string.format("%d", generation)
  return hs
end

local message = st.message or ""
local phase = st.phase
if phase == "Healthy" then
  hs.status = "Healthy"
  hs.message = message
elseif phase == "Progressing" or phase == nil then
  hs.status = "Progressing"
  hs.message = message
elseif phase == "Paused" then
  -- spec.paused, the zdr.dev/paused annotation, a canary pause step, a promotion awaited, or
  -- an inconclusive analysis: the Paused condition's reason says which.
  hs.status = "Suspended"
  hs.message = with_reason(true_condition("Paused"), message)
elseif phase == "Aborted" then
  hs.status = "Degraded"
  hs.message = with_reason(true_condition("Aborted"), message)
elseif phase == "Degraded" then
  -- The progress deadline passed, the spec cannot be acted on, or traffic cannot be routed.
  hs.status = "Degraded"
  hs.message = message
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(phase) .. ": " .. message
end
return hs
