-- Argo CD action "resume" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr resume` does
-- (docs/argocd.md). Removes the annotation zdr.dev/paused and sets zdr.dev/resume-analysis to a
-- new token, which resumes an inconclusive analysis. spec.paused belongs to Git: refused.
local os = require("os")
local name = obj.metadata.name
if obj.spec.paused == true then
  error(name .. ": spec.paused is true; it belongs to the manifest: set it to false in Git and sync", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["zdr.dev/paused"] = nil
obj.metadata.annotations["zdr.dev/resume-analysis"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
return obj
