//! The router objects on the API server: [`GatewayRouter`] (an HTTPRoute) and [`IstioRouter`]
//! (a VirtualService) apply a [`TrafficTarget`] by read-modify-write, and [`router_for`] picks
//! one from a rollout's canary strategy.
//!
//! Each `apply` GETs the object, edits its JSON with [`apply_httproute`] or
//! [`apply_virtualservice`], writes nothing when that changed nothing, and otherwise PUTs the
//! whole object back with the `metadata.resourceVersion` it read, so that a concurrent writer's
//! change is never overwritten: the API server answers 409 Conflict, and the router reads again
//! and retries (at most [`MAX_ATTEMPTS`] times in all).
//!
//! Why not server-side apply: in Gateway API v1.5.1 `spec.rules`, `rules[].backendRefs` and
//! `rules[].matches` are atomic lists (`x-kubernetes-list-type: atomic`), and Istio's
//! VirtualService schema declares no list types, so its lists are atomic too. An apply that
//! names only zdr's weights and rules would take the whole list over and, on the next apply
//! without the user's entries, delete them; applying the whole list instead would make zdr the
//! owner of what the user wrote. A conditional PUT changes exactly what zdr means to change.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::Value;

use super::gateway::apply_httproute;
use super::istio::apply_virtualservice;
use super::observe::{observe_httproute, observe_virtualservice};
use super::{ObserveFuture, RouterError, RouterFuture, TrafficRouter, TrafficTarget};
use crate::controller::context::FIELD_MANAGER;
use crate::crd::CanaryStrategy;

/// API group of the HTTPRoute (used at version v1).
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// API group of the VirtualService (used at version v1).
pub const ISTIO_GROUP: &str = "networking.istio.io";

/// Read-modify-write attempts before [`RouterError::Conflict`].
pub const MAX_ATTEMPTS: u32 = 5;

/// One router object: its API and name.
struct RouterObject {
    api: Api<DynamicObject>,
    kind: &'static str,
    namespace: String,
    name: String,
}

impl RouterObject {
    fn new(
        client: Client,
        kind: &'static str,
        plural: &str,
        group: &str,
        ns: &str,
        name: &str,
    ) -> Self {
        let resource = resource(group, "v1", kind, plural);
        Self {
            api: Api::namespaced_with(client, ns, &resource),
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        }
    }

    /// GET, `edit`, and PUT when `edit` changed the object; a 409 starts again.
    async fn read_modify_write(
        &self,
        edit: impl Fn(&mut Value) -> Result<bool, RouterError>,
    ) -> Result<(), RouterError> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        for _ in 0..MAX_ATTEMPTS {
            let current = self.api.get(&self.name).await.map_err(|e| self.error(e))?;
            let mut object = serde_json::to_value(&current).map_err(kube::Error::SerdeError)?;
            if !edit(&mut object)? {
                return Ok(());
            }
            let next: DynamicObject =
                serde_json::from_value(object).map_err(kube::Error::SerdeError)?;
            match self.api.replace(&self.name, &params, &next).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.is_conflict() => continue,
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(RouterError::Conflict {
            kind: self.kind,
            name: self.name.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The object as JSON.
    async fn read(&self) -> Result<Value, RouterError> {
        let current = self.api.get(&self.name).await.map_err(|e| self.error(e))?;
        Ok(serde_json::to_value(&current).map_err(kube::Error::SerdeError)?)
    }

    fn error(&self, err: kube::Error) -> RouterError {
        api_error(err, self.kind, &self.namespace, &self.name)
    }
}

/// `err` as a [`RouterError`]: a 404 is [`RouterError::NotFound`] for `kind` `ns/name`.
pub(crate) fn api_error(err: kube::Error, kind: &'static str, ns: &str, name: &str) -> RouterError {
    match err {
        kube::Error::Api(status) if status.is_not_found() => RouterError::NotFound {
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        },
        e => RouterError::Api(e),
    }
}

/// The resource `<group>/<version>` `kind`, built by hand (no discovery call).
pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: format!("{group}/{version}"),
        kind: kind.to_string(),
        plural: plural.to_string(),
    }
}

/// Splits traffic with a Gateway API HTTPRoute (see [`apply_httproute`]).
pub struct GatewayRouter {
    object: RouterObject,
    stable: String,
    canary: String,
}

impl GatewayRouter {
    /// The HTTPRoute `route` in namespace `ns`, between Services `stable` and `canary`.
    pub fn new(client: Client, ns: &str, route: &str, stable: &str, canary: &str) -> Self {
        Self {
            object: RouterObject::new(client, "HTTPRoute", "httproutes", GATEWAY_GROUP, ns, route),
            stable: stable.to_string(),
            canary: canary.to_string(),
        }
    }
}

impl TrafficRouter for GatewayRouter {
    fn apply<'a>(&'a self, target: &'a TrafficTarget) -> RouterFuture<'a> {
        let o = &self.object;
        Box::pin(o.read_modify_write(move |route| {
            apply_httproute(route, &o.namespace, &self.stable, &self.canary, target)
        }))
    }

    fn observe(&self) -> ObserveFuture<'_> {
        Box::pin(async move {
            let route = self.object.read().await?;
            let ns = &self.object.namespace;
            Ok(observe_httproute(&route, ns, &self.stable, &self.canary))
        })
    }
}

/// Splits traffic with an Istio VirtualService (see [`apply_virtualservice`]).
pub struct IstioRouter {
    object: RouterObject,
    stable: String,
    canary: String,
    routes: Vec<String>,
}

impl IstioRouter {
    /// The VirtualService `vs` in namespace `ns`, between Services `stable` and `canary`, with
    /// the weights in its `http` routes named `routes` (empty: every route naming both).
    pub fn new(
        client: Client,
        ns: &str,
        vs: &str,
        routes: &[String],
        stable: &str,
        canary: &str,
    ) -> Self {
        Self {
            object: RouterObject::new(
                client,
                "VirtualService",
                "virtualservices",
                ISTIO_GROUP,
                ns,
                vs,
            ),
            stable: stable.to_string(),
            canary: canary.to_string(),
            routes: routes.to_vec(),
        }
    }
}

impl TrafficRouter for IstioRouter {
    fn apply<'a>(&'a self, target: &'a TrafficTarget) -> RouterFuture<'a> {
        let o = &self.object;
        Box::pin(o.read_modify_write(move |vs| {
            let (stable, canary) = (&self.stable, &self.canary);
            apply_virtualservice(vs, &o.namespace, stable, canary, &self.routes, target)
        }))
    }

    fn observe(&self) -> ObserveFuture<'_> {
        Box::pin(async move {
            let vs = self.object.read().await?;
            let (ns, stable, canary) = (&self.object.namespace, &self.stable, &self.canary);
            Ok(observe_virtualservice(
                &vs,
                ns,
                stable,
                canary,
                &self.routes,
            ))
        })
    }
}

/// The router of a canary in namespace `ns`; `None` when it has no `trafficRouting`.
pub fn router_for(
    client: Client,
    ns: &str,
    canary: &CanaryStrategy,
) -> Option<Box<dyn TrafficRouter>> {
    let routing = canary.traffic_routing.as_ref()?;
    let (stable, canary_svc) = (&canary.stable_service, &canary.canary_service);
    if let Some(gateway) = &routing.gateway_api {
        let router = GatewayRouter::new(client, ns, &gateway.http_route, stable, canary_svc);
        return Some(Box::new(router));
    }
    let vs = &routing.istio.as_ref()?.virtual_service;
    let router = IstioRouter::new(client, ns, &vs.name, &vs.routes, stable, canary_svc);
    Some(Box::new(router))
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
