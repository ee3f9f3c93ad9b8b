-- Argo CD actions of a zdr.dev ZeroDowntimeRollout (docs/argocd.md): each is enabled only when
-- `kubectl zdr` would accept it (the checks of guards.lua, which the chart puts before this
-- file) and it applies now. Lua 5.1 as Argo CD runs it.
local st = obj.status or {}
local annotated = (obj.metadata.annotations or {})["zdr.dev/paused"] ~= nil
local inconclusive = st.analysis ~= nil and st.analysis.phase == "Inconclusive"
for _, c in ipairs(st.conditions or {}) do
  if c.type == "Paused" and c.status == "True" and c.reason == "AnalysisInconclusive" then
    inconclusive = true
  end
end
local promotable = zdr.no_promote(obj) == nil

local actions = {}
actions["promote"] = {["disabled"] = not promotable}
actions["promote-full"] = {["disabled"] = not promotable}
-- An aborted update is rolled back already.
actions["abort"] = {["disabled"] = zdr.no_abort(obj) ~= nil or zdr.aborted(st)}
actions["retry"] = {["disabled"] = zdr.no_retry(obj) ~= nil}
actions["pause"] = {["disabled"] = zdr.no_pause(obj) ~= nil}
-- Resume releases a pause by annotation or an inconclusive analysis.
actions["resume"] = {["disabled"] = zdr.no_resume(obj) ~= nil or not (annotated or inconclusive)}
return actions
