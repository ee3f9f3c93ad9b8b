-- Argo CD action "resume" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr resume` does
-- (docs/argocd.md). Removes the annotation zdr.dev/paused and sets zdr.dev/resume-analysis to a
-- new token, which resumes an inconclusive analysis. spec.paused belongs to Git: refused.
local os = require("os")
zdr.must(zdr.no_resume(obj))
local annotations = zdr.annotations()
annotations["zdr.dev/paused"] = nil
annotations["zdr.dev/resume-analysis"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
return obj
