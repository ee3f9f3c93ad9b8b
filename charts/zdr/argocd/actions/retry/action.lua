-- Argo CD action "retry" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr retry` does
-- (docs/argocd.md). Sets zdr.dev/retry to a new token (the time, as kubectl zdr writes it) and
-- removes zdr.dev/abort and zdr.dev/promote: the aborted update restarts.
local os = require("os")
zdr.must(zdr.no_retry(obj))
local annotations = zdr.annotations()
annotations["zdr.dev/retry"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
annotations["zdr.dev/abort"] = nil
annotations["zdr.dev/promote"] = nil
return obj
