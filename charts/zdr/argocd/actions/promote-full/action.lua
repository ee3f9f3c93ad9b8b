-- Argo CD action "promote-full" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr promote --full` does
-- (docs/argocd.md). Sets only the annotation zdr.dev/promote; refuses what kubectl zdr refuses.
zdr.must(zdr.no_promote(obj))
zdr.annotations()["zdr.dev/promote"] = obj.status.updateRevision .. "/full"
return obj
