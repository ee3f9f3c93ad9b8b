-- Argo CD action "retry" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr retry` does
-- (docs/argocd.md). Sets zdr.dev/retry to a new token (the time, as kubectl zdr writes it) and
-- removes zdr.dev/abort and zdr.dev/promote: the aborted update restarts.
local os = require("os")
local st = obj.status or {}
local name = obj.metadata.name
for _, c in ipairs(st.conditions or {}) do
  if c.type == "InvalidSpec" and c.status == "True" then
    error(name .. ": the spec cannot be acted on: " .. c.message, 0)
  end
end
local update = st.updateRevision
if update == nil or st.stableRevision == nil then
  error(name .. " has no update in progress over a stable revision", 0)
end
if update == st.stableRevision then
  error(name .. " has no update in progress: revision " .. update .. " is stable", 0)
end
if not (st.phase == "Aborted" or st.abortedRevision == update) then
  error(name .. ": revision " .. update .. " is not aborted (phase " .. tostring(st.phase or "Unknown") .. "): retry restarts an aborted update", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["zdr.dev/retry"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
obj.metadata.annotations["zdr.dev/abort"] = nil
obj.metadata.annotations["zdr.dev/promote"] = nil
return obj
