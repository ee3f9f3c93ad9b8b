-- Argo CD action "abort" of a zdr.dev ZeroDowntimeRollout: what `kubectl zdr abort` does
-- (docs/argocd.md). Sets only the annotation zdr.dev/abort to the update revision; the
-- controller rolls back to the stable revision.
zdr.must(zdr.no_abort(obj))
zdr.annotations()["zdr.dev/abort"] = obj.status.updateRevision
return obj
