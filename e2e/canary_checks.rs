//! The checks of every recorded state of a canary through an HTTPRoute (see `canary.rs`):
//! the invariants that hold at each write, and the order of the steps.

use zdr::crd::{
    ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, RETRY_ANNOTATION, ZeroDowntimeRollout,
};

use crate::gateway::RouteView;
use crate::timeline::{Entry, Names, Obj, World, revision};

/// What a canary scenario runs.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub names: Names,
    pub replicas: i64,
    /// Name of the header route its steps set.
    pub header: &'static str,
    /// Canary weight and whether the header route is active once each step ran.
    pub settings: Vec<(i64, bool)>,
    /// The step `pause {}`, if any.
    pub promotion_pause: Option<usize>,
    /// The step `pause {duration: 1s}`, if any.
    pub timed_pause: Option<usize>,
    /// A rollout scaled down mid-way: a surplus canary pod may go while the route gives the
    /// canary traffic, if the canary pods left still carry it (checked in the same state).
    pub scaled_down: bool,
}

impl Scenario {
    /// `w` percent of replicas, rounded up.
    pub fn ceil_pct(&self, w: i64) -> i64 {
        (self.replicas * w + 99) / 100
    }

    /// Ready pods the stable Service needs for weight `s` (maxUnavailable 0): its share with one
    /// point of the weight's rounding given to the stable side, as the controller documents
    /// (`planner::canary::stable_need`: so that a cluster without surge room can always move
    /// the next pod), and at least one.
    pub fn stable_need(&self, s: i64) -> i64 {
        if s <= 0 {
            0
        } else {
            self.ceil_pct(s - 1).max(1)
        }
    }

    /// Canary pods step `i` needs: its weight's share, at least one with a header route.
    pub fn need(&self, i: usize) -> i64 {
        let (w, header) = self.settings[i];
        self.ceil_pct(w).max(i64::from(header))
    }
}

/// The invariants of every state of a canary (see the module's doc).
pub fn invariants(
    sc: &Scenario,
    w: &World,
    before: &World,
    e: &Entry,
    rev2: &str,
    reference: &str,
) -> Result<(), String> {
    let v = w.route_view();
    let (stable_name, canary_name) = (sc.names.stable.as_str(), sc.names.canary.as_str());
    let mut problems = v.problems(canary_name);
    if let (Obj::Route(r), true) = (&e.obj, problems.is_empty())
        && sc.names.router.foreign_part(r, &sc.names) != reference
    {
        problems.push(format!(
            "the route's foreign part changed:\n  now: {}\n  was: {reference}",
            sc.names.router.foreign_part(r, &sc.names)
        ));
    }
    let (stable_sel, canary_sel) = (w.stable_selects(), w.canary_selects());
    let c = v.canary_weight();
    if c > 0 && (canary_sel.as_deref() != Some(rev2) || w.ready(rev2) < sc.ceil_pct(c)) {
        problems.push(format!(
            "canary weight {c} while the canary Service selects {canary_sel:?} and {} canary pods are Ready (need {})",
            w.ready(rev2),
            sc.ceil_pct(c)
        ));
    }
    let s = v.stable.unwrap_or(0);
    let stable_ready = stable_sel.as_deref().map_or(0, |r| w.ready(r));
    if s > 0 && stable_ready < sc.stable_need(s) {
        problems.push(format!(
            "stable weight {s} while the stable Service selects {stable_sel:?} with {stable_ready} Ready pods (need {})",
            sc.stable_need(s)
        ));
    }
    let canary_ready = canary_sel.as_deref().map_or(0, |r| w.ready(r));
    if !v.header_rules.is_empty() && canary_ready < 1 {
        problems.push(format!(
            "header rules {:?} while the canary Service selects {canary_sel:?} with no Ready pod",
            v.header_names()
        ));
    }
    // Scaled down: the canary pods left carry the route's canary traffic.
    let surplus = sc.scaled_down
        && w.ready(rev2) >= sc.ceil_pct(c).max(i64::from(!v.header_rules.is_empty()));
    match &e.obj {
        Obj::Pod(p) if p.metadata.deletion_timestamp.is_some() => {
            if crate::timeline::is_ready(p) {
                problems.push(format!(
                    "pod {} is being deleted while Ready (in traffic)",
                    p.metadata.name.as_deref().unwrap_or("")
                ));
            }
            let name = p.metadata.name.clone().unwrap_or_default();
            let was = before
                .pods
                .get(&name)
                .is_some_and(|b| b.metadata.deletion_timestamp.is_some());
            if !was
                && revision(p) == Some(rev2)
                && (c > 0 || !v.header_rules.is_empty())
                && !surplus
            {
                problems.push(format!("canary pod {name} deleted while the route gives the canary weight {c} and rules {:?}", v.header_names()));
            }
        }
        Obj::PodGone(name) => {
            let was = before.pods.get(name);
            let deleting = was.is_some_and(|b| b.metadata.deletion_timestamp.is_some());
            if !deleting
                && was.is_some_and(|b| revision(b) == Some(rev2))
                && (c > 0 || !v.header_rules.is_empty())
                && !surplus
            {
                problems.push(format!("canary pod {name} removed while the route gives the canary weight {c} and rules {:?}", v.header_names()));
            }
        }
        Obj::Service(svc) => {
            let name = svc.metadata.name.as_deref().unwrap_or_default();
            let (now, was) = (w.selects(name), before.selects(name));
            if let Some(rev) = now.as_deref().filter(|_| now != was) {
                let need = if name == stable_name { sc.replicas } else { 1 };
                if w.ready(rev) < need {
                    problems.push(format!("Service {name} switched from {was:?} to {rev} with {} Ready pods of it (need {need})", w.ready(rev)));
                }
            }
        }
        Obj::Rollout(z) => {
            let old = before.rollout.as_ref().and_then(|b| b.status.as_ref());
            if let Some(st) = z.status.as_ref().filter(|s| Some(*s) != old) {
                // Healthy: every pod runs the update revision and is available; the update
                // revision is then the stable one.
                if st.phase == Some(Phase::Healthy) {
                    let update = st.update_revision.clone().unwrap_or_default();
                    let old = w.serving_other_than(&update);
                    if st.stable_revision.as_deref() != Some(update.as_str()) || !old.is_empty() {
                        problems.push(format!(
                            "phase Healthy at step {:?} while stableRevision {:?} != updateRevision {update:?} or pods of another revision are in service: {old:?}",
                            st.current_step_index, st.stable_revision
                        ));
                    }
                }
                if let Some(cw) = st.canary_weight.map(i64::from).filter(|cw| *cw != c) {
                    problems.push(format!(
                        "status.canaryWeight {cw} but the route gives the canary {c}"
                    ));
                }
                let mut names = st.header_routes.clone();
                names.sort();
                if st.canary_weight.is_some() && names != v.header_names() {
                    problems.push(format!(
                        "status.headerRoutes {names:?} but the route has {:?}",
                        v.header_names()
                    ));
                }
                if let Some(sv) = &st.services
                    && (sv.stable != stable_sel || sv.canary != canary_sel)
                {
                    problems.push(format!("status.services {sv:?} but the Services select ({stable_sel:?}, {canary_sel:?})"));
                }
            }
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The order of the steps of one attempt (the first, or the one after a retry).
pub struct Progress {
    sc: Scenario,
    rev2: String,
    /// The retry annotation of this attempt.
    token: Option<String>,
    /// Counting steps: false once aborted, until the retry is acted on.
    active: bool,
    /// After a retry: the first status acting on it must be back at step 0.
    restarting: bool,
    last: Option<usize>,
    /// Whether the route carried step i's traffic with its canary pods, this attempt.
    reached: Vec<bool>,
    /// stepStartedAt of each step this attempt (milliseconds); the last: promotion.
    started: Vec<Option<i64>>,
}

impl Progress {
    pub fn new(sc: &Scenario, rev2: &str) -> Self {
        let n = sc.settings.len();
        Self {
            sc: sc.clone(),
            rev2: rev2.to_string(),
            token: None,
            active: true,
            restarting: false,
            last: None,
            reached: vec![false; n],
            started: vec![None; n + 1],
        }
    }

    /// The replicas in force from now on (a rollout scaled in the middle of its canary).
    pub fn set_replicas(&mut self, replicas: i64) {
        self.sc.replicas = replicas;
    }

    pub fn observe(&mut self, w: &World, e: &Entry) -> Result<(), String> {
        let v = w.route_view();
        let header = [self.sc.header.to_string()];
        for (i, (weight, on)) in self.sc.settings.iter().enumerate() {
            let routes: &[String] = if *on { &header } else { &[] };
            if v.canary == Some(*weight)
                && v.header_names() == routes
                && w.canary_selects().as_deref() == Some(self.rev2.as_str())
                && w.ready(&self.rev2) >= self.sc.need(i)
            {
                self.reached[i] = true;
            }
        }
        let Obj::Rollout(z) = &e.obj else {
            return Ok(());
        };
        self.rollout(z, &v)
    }

    fn rollout(&mut self, z: &ZeroDowntimeRollout, v: &RouteView) -> Result<(), String> {
        let ann = |k: &str| {
            z.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(k))
                .cloned()
        };
        if ann(ABORT_ANNOTATION).as_deref() == Some(self.rev2.as_str()) {
            self.active = false;
        }
        if ann(RETRY_ANNOTATION) != self.token {
            self.token = ann(RETRY_ANNOTATION);
            (self.restarting, self.last) = (true, None);
            self.reached.iter_mut().for_each(|r| *r = false);
            self.started.iter_mut().for_each(|s| *s = None);
        }
        let Some(s) = z
            .status
            .as_ref()
            .filter(|s| s.update_revision.as_deref() == Some(self.rev2.as_str()))
        else {
            return Ok(());
        };
        if self.restarting && s.retry_token == self.token && s.phase != Some(Phase::Aborted) {
            if s.current_step_index != Some(0) {
                return Err(format!(
                    "the first status after the retry is at step {:?}, not 0",
                    s.current_step_index
                ));
            }
            (self.restarting, self.active) = (false, true);
        }
        let Some(k) = s.current_step_index.and_then(|k| usize::try_from(k).ok()) else {
            return Ok(());
        };
        if !self.active || self.restarting || self.last == Some(k) {
            return Ok(());
        }
        let from = match self.last {
            Some(last) if k < last => {
                return Err(format!("currentStepIndex went back from {last} to {k}"));
            }
            Some(last) => last,
            None => 0,
        };
        let n = self.sc.settings.len();
        self.started[k.min(n)] = s.step_started_at.as_ref().map(|t| t.0.as_millisecond());
        for (j, (weight, _)) in self
            .sc
            .settings
            .iter()
            .enumerate()
            .take(k.min(n))
            .skip(from)
        {
            match j {
                _ if Some(j) == self.sc.promotion_pause => {
                    let want = format!("{}/{j}", self.rev2);
                    if ann(PROMOTE_ANNOTATION) != Some(want.clone()) {
                        return Err(format!(
                            "step {k} began without {PROMOTE_ANNOTATION}: {want} (it is {:?})",
                            ann(PROMOTE_ANNOTATION)
                        ));
                    }
                }
                _ if Some(j) == self.sc.timed_pause => {
                    if let (Some(a), Some(b)) = (self.started[j], self.started[k.min(n)])
                        && b - a < 1000
                    {
                        return Err(format!("the 1s pause (step {j}) lasted {} ms", b - a));
                    }
                }
                _ if !self.reached[j] => {
                    return Err(format!(
                        "step {k} began before the route carried step {j}'s weight {weight} and header route with {} Ready canary pods",
                        self.sc.need(j)
                    ));
                }
                _ => {}
            }
        }
        if k < n {
            let settings = &self.sc.settings;
            let lo = if k == 0 { 0 } else { settings[k - 1].0 };
            let (lo, hi) = (lo.min(settings[k].0), lo.max(settings[k].0));
            if !(lo..=hi).contains(&v.canary_weight()) {
                return Err(format!(
                    "at step {k} the route gives the canary {}, outside {lo}..={hi}",
                    v.canary_weight()
                ));
            }
        }
        self.last = Some(k);
        Ok(())
    }
}
