//! The canary's traffic I/O inside a reconcile: read what the router and the two Services carry
//! now (the decision trusts them, not a status that a crash may have left behind), and write
//! what the decision asks: Service selectors first, then the router's weights and header routes.

use k8s_openapi::api::core::v1::Service;
use kube::Api;

use super::context::Context;
use super::error::Result;
use crate::crd::{CanaryStrategy, REVISION_LABEL};
use crate::planner::canary::{Applied, TrafficPlan};
use crate::traffic::{TrafficTarget, router_for, select_revision};

/// What the router and the Services carry now. A Service that does not exist (yet) selects no
/// revision; a missing router object is an error the status reports.
pub async fn read(ctx: &Context, ns: &str, canary: &CanaryStrategy) -> Result<Applied> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let selects =
        |svc: Option<Service>| svc.and_then(|s| s.spec?.selector?.get(REVISION_LABEL).cloned());
    let stable = selects(services.get_opt(&canary.stable_service).await?);
    let canary_selects = selects(services.get_opt(&canary.canary_service).await?);
    let (weight, routes) = match router_for(ctx.client.clone(), ns, canary) {
        Some(router) => {
            let seen = router.observe().await?;
            (seen.weight, seen.routes)
        }
        None => (0, Vec::new()),
    };
    Ok(Applied {
        weight,
        routes,
        stable_selects: stable,
        canary_selects,
    })
}

/// Writes `plan`: the Services' selectors, then the router. Each write is skipped when the
/// object already says it.
pub async fn write(
    ctx: &Context,
    ns: &str,
    canary: &CanaryStrategy,
    plan: &TrafficPlan,
) -> Result<()> {
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    select_revision(&services, &canary.stable_service, &plan.stable_selects).await?;
    select_revision(&services, &canary.canary_service, &plan.canary_selects).await?;
    if let Some(router) = router_for(ctx.client.clone(), ns, canary) {
        let target = TrafficTarget {
            weight: plan.weight,
            routes: plan.routes.clone(),
        };
        router.apply(&target).await?;
    }
    Ok(())
}
