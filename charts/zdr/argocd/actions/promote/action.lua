-- Argo CD action "promote" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr promote` does
-- (docs/argocd.md). Sets only the annotation zdr.dev/promote; refuses what kubectl zdr refuses.
zdr.must(zdr.no_promote(obj))
local st = obj.status
zdr.annotations()["zdr.dev/promote"] = st.updateRevision .. "/" .. string.format("%d", zdr.step(st))
return obj
