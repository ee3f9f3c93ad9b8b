-- Argo CD action "promote" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr promote` does
-- (docs/argocd.md). Sets only the annotation zdr.dev/promote; refuses what kubectl zdr refuses.
local st = obj.status or {}
local name = obj.metadata.name
local canary = obj.spec.strategy ~= nil and obj.spec.strategy.canary or nil
if canary == nil then
  error(name .. " is not a canary (no spec.strategy.canary): promote acts on canary steps", 0)
end
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
if st.phase == "Aborted" or st.abortedRevision == update then
  error(name .. ": revision " .. update .. " was aborted, promoting it would not restart it: retry restarts it from step 0", 0)
end
local at = st.currentStepIndex or 0
if at < 0 then
  at = 0
end
local steps = canary.steps or {}
if at >= #steps then
  error(name .. ": revision " .. update .. " is past all " .. #steps .. " steps and already being promoted", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["zdr.dev/promote"] = update .. "/" .. string.format("%d", at)
return obj
