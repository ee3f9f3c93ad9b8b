-- Argo CD actions of a zdr.dev ZeroDowntimeRollout (docs/argocd.md): each is enabled only when
-- `kubectl zdr` would accept it in the current state. Lua 5.1 as Argo CD runs it.
local actions = {}
local st = obj.status or {}
local annotations = obj.metadata.annotations or {}
local strategy = obj.spec.strategy or {}

local function has_true_condition(type_, reason)
  for _, c in ipairs(st.conditions or {}) do
    if c.type == type_ and c.status == "True" and (reason == nil or c.reason == reason) then
      return true
    end
  end
  return false
end

local update = nil
if st.updateRevision ~= nil and st.stableRevision ~= nil and st.updateRevision ~= st.stableRevision then
  update = st.updateRevision
end
local invalid = has_true_condition("InvalidSpec", nil)
local aborted = update ~= nil and (st.phase == "Aborted" or st.abortedRevision == update)
local steps = 0
if strategy.canary ~= nil and strategy.canary.steps ~= nil then
  steps = #strategy.canary.steps
end
local at = st.currentStepIndex or 0
if at < 0 then
  at = 0
end
local promotable = strategy.canary ~= nil and not invalid and update ~= nil and not aborted and at < steps
local inconclusive = has_true_condition("Paused", "AnalysisInconclusive")
  or (st.analysis ~= nil and st.analysis.phase == "Inconclusive")
local spec_paused = obj.spec.paused == true
local annotated = annotations["zdr.dev/paused"] ~= nil

actions["promote"] = {["disabled"] = not promotable}
actions["promote-full"] = {["disabled"] = not promotable}
actions["abort"] = {["disabled"] = update == nil or aborted}
actions["retry"] = {["disabled"] = invalid or not aborted}
actions["pause"] = {["disabled"] = annotated}
actions["resume"] = {["disabled"] = spec_paused or not (annotated or inconclusive)}
return actions
