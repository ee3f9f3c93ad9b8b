-- Argo CD action "pause" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr pause` does
-- (docs/argocd.md). Sets the annotation zdr.dev/paused to the time, never spec.paused, so the
-- application shows no drift.
local os = require("os")
zdr.must(zdr.no_pause(obj))
zdr.annotations()["zdr.dev/paused"] = os.date("!%Y-%m-%dT%H:%M:%S") .. ".000000000Z"
return obj
