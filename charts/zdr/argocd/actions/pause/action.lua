-- Argo CD action "pause" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr pause` does
-- (docs/argocd.md). Sets the annotation zdr.dev/paused to the time, never spec.paused, so the
-- application shows no drift.
local os = require("os")
local annotations = obj.metadata.annotations or {}
local name = obj.metadata.name
if annotations["zdr.dev/paused"] ~= nil then
  error(name .. " is already paused (annotation zdr.dev/paused=" .. annotations["zdr.dev/paused"] .. "): resume resumes it", 0)
end
annotations["zdr.dev/paused"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
obj.metadata.annotations = annotations
return obj
