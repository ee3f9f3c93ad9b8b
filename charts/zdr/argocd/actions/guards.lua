-- What discovery.lua and every action.lua share (docs/argocd.md). Argo CD runs each script
-- alone, so the chart puts this file before each of them. Each no_* check returns nil when
-- `kubectl zdr` would accept the action, else why not, as it says it after the rollout's name.
local zdr = {}

-- The message of a True InvalidSpec condition: the controller cannot act on the spec.
function zdr.invalid(st)
  for _, c in ipairs(st.conditions or {}) do
    if c.type == "InvalidSpec" and c.status == "True" then
      return ": the spec cannot be acted on: " .. c.message
    end
  end
  return nil
end

-- Why there is no update in progress over a stable revision.
function zdr.no_update(st)
  local update = st.updateRevision
  if update == nil or st.stableRevision == nil then
    return " has no update in progress over a stable revision"
  end
  if update == st.stableRevision then
    return " has no update in progress: revision " .. update .. " is stable"
  end
  return nil
end

-- Whether the update in progress was aborted.
function zdr.aborted(st)
  return st.phase == "Aborted" or (st.updateRevision ~= nil and st.abortedRevision == st.updateRevision)
end

-- The canary step the rollout is at (never below 0).
function zdr.step(st)
  local at = st.currentStepIndex or 0
  if at < 0 then
    at = 0
  end
  return at
end

-- promote and promote-full: a canary with an update at one of its steps.
function zdr.no_promote(obj)
  local st = obj.status or {}
  local canary = obj.spec.strategy ~= nil and obj.spec.strategy.canary or nil
  if canary == nil then
    return " is not a canary (no spec.strategy.canary): promote acts on canary steps"
  end
  local why = zdr.invalid(st) or zdr.no_update(st)
  if why ~= nil then
    return why
  end
  local update = st.updateRevision
  if zdr.aborted(st) then
    return ": revision " .. update .. " was aborted, promoting it would not restart it: retry restarts it from step 0"
  end
  local steps = canary.steps or {}
  if zdr.step(st) >= #steps then
    return ": revision " .. update .. " is past all " .. #steps .. " steps and already being promoted"
  end
  return nil
end

-- abort: an update in progress.
function zdr.no_abort(obj)
  return zdr.no_update(obj.status or {})
end

-- retry: an aborted update.
function zdr.no_retry(obj)
  local st = obj.status or {}
  local why = zdr.invalid(st) or zdr.no_update(st)
  if why ~= nil then
    return why
  end
  if not zdr.aborted(st) then
    return ": revision " .. st.updateRevision .. " is not aborted (phase " .. tostring(st.phase or "Unknown") .. "): retry restarts an aborted update"
  end
  return nil
end

-- pause: not paused by the annotation yet.
function zdr.no_pause(obj)
  local paused = (obj.metadata.annotations or {})["zdr.dev/paused"]
  if paused ~= nil then
    return " is already paused (annotation zdr.dev/paused=" .. paused .. "): resume resumes it"
  end
  return nil
end

-- resume: not held by spec.paused, which belongs to Git.
function zdr.no_resume(obj)
  if obj.spec.paused == true then
    return ": spec.paused is true; it belongs to the manifest: set it to false in Git and sync"
  end
  return nil
end

-- In an action: refuses with `why` (Argo CD shows the message), unless it is nil.
function zdr.must(why)
  if why ~= nil then
    error(obj.metadata.name .. why, 0)
  end
end

-- The rollout's annotations, created when it has none.
function zdr.annotations()
  if obj.metadata.annotations == nil then
    obj.metadata.annotations = {}
  end
  return obj.metadata.annotations
end
