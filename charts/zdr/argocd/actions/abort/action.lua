-- Argo CD action "abort" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr abort` does
-- (docs/argocd.md). Sets only the annotation zdr.dev/abort to the update revision; the
-- controller rolls back to the stable revision.
local st = obj.status or {}
local name = obj.metadata.name
local update = st.updateRevision
if update == nil or st.stableRevision == nil then
  error(name .. " has no update in progress over a stable revision", 0)
end
if update == st.stableRevision then
  error(name .. " has no update in progress: revision " .. update .. " is stable", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["zdr.dev/abort"] = update
return obj
