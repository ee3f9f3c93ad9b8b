//! The Kubernetes API rights the controller needs, as data: one [`Rule`] per resource with the
//! reason it is needed and where it applies. The Helm chart's roles (`charts/zdr/templates/
//! rbac.yaml`) must grant exactly these (`tests/chart.rs` renders the chart and compares), and
//! every request the reconciler makes against the mocked API server must be allowed by them
//! ([`access`] and [`allowing`]), so the list can drift neither from the chart nor from the code.

use std::fmt;

/// A Kubernetes RBAC verb.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// Read one object (GET with a name).
    Get,
    /// Read a collection (GET without a name).
    List,
    /// Watch a collection (GET with `watch=true`).
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH (server-side apply included).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection: the controller never does it.
    DeleteCollection,
}

impl Verb {
    /// The verb as RBAC rules spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In every namespace the controller watches: a ClusterRole when it watches all of them,
    /// else a Role in each.
    Watched,
    /// In the namespace of the leader-election Lease (the release namespace), only when leader
    /// election is on.
    LeaderElection,
}

/// One RBAC rule the controller needs.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// API group ("" for the core group).
    pub api_group: &'static str,
    /// Resource, with its subresource (`pods/status`).
    pub resource: &'static str,
    /// Names the rule is limited to; empty: any object.
    pub resource_names: &'static [&'static str],
    /// Verbs granted.
    pub verbs: &'static [Verb],
    /// Where it is granted.
    pub scope: Scope,
    /// Why the controller needs it.
    pub why: &'static str,
}

/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "zdr-controller";

use Verb::{Create, Delete, Get, List, Patch, Update, Watch};

/// Every right the controller needs, and nothing more.
pub const RULES: &[Rule] = &[
    Rule {
        api_group: "zdr.dev",
        resource: "zerodowntimerollouts",
        resource_names: &[],
        verbs: &[Get, List, Watch],
        scope: Scope::Watched,
        why: "watch the rollouts it reconciles (and check at start that the CRD is installed)",
    },
    Rule {
        api_group: "zdr.dev",
        resource: "zerodowntimerollouts/status",
        resource_names: &[],
        verbs: &[Patch],
        scope: Scope::Watched,
        why: "server-side apply of the status; the spec is never written",
    },
    Rule {
        api_group: "",
        resource: "pods",
        resource_names: &[],
        verbs: &[Get, List, Watch, Create, Delete, Patch],
        scope: Scope::Watched,
        why: "it owns the rollout's pods: creates them, labels them, deletes retired ones",
    },
    Rule {
        api_group: "",
        resource: "pods/status",
        resource_names: &[],
        verbs: &[Patch],
        scope: Scope::Watched,
        why: "the zdr.dev/serving readiness-gate condition that takes a pod in and out of traffic",
    },
    Rule {
        api_group: "apps",
        resource: "controllerrevisions",
        resource_names: &[],
        verbs: &[Get, List, Watch, Create, Delete, Patch],
        scope: Scope::Watched,
        why: "one ControllerRevision per pod template: revision numbers, history, rollback",
    },
    Rule {
        api_group: "discovery.k8s.io",
        resource: "endpointslices",
        resource_names: &[],
        verbs: &[Get, List, Watch],
        scope: Scope::Watched,
        why: "a retiring pod has left every EndpointSlice before it is deleted",
    },
    Rule {
        api_group: "",
        resource: "services",
        resource_names: &[],
        verbs: &[Get, Patch],
        scope: Scope::Watched,
        why: "canary: read the stable and canary Services, set zdr.dev/revision in their selectors",
    },
    Rule {
        api_group: "",
        resource: "secrets",
        resource_names: &[],
        verbs: &[Get],
        scope: Scope::Watched,
        why: "analysis credentials: the bearer token and CA named by spec.analysis.prometheus \
              (get only: the controller cannot list or watch Secrets)",
    },
    Rule {
        api_group: "events.k8s.io",
        resource: "events",
        resource_names: &[],
        verbs: &[Create, Patch],
        scope: Scope::Watched,
        why: "events on rollouts (a repeated event is patched into a series)",
    },
    Rule {
        api_group: "gateway.networking.k8s.io",
        resource: "httproutes",
        resource_names: &[],
        verbs: &[Get, Update],
        scope: Scope::Watched,
        why: "canary weights and header routes: read, then a conditional update",
    },
    Rule {
        api_group: "networking.istio.io",
        resource: "virtualservices",
        resource_names: &[],
        verbs: &[Get, Update],
        scope: Scope::Watched,
        why: "canary weights and header routes with Istio: read, then a conditional update",
    },
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        resource_names: &[],
        verbs: &[Create],
        scope: Scope::LeaderElection,
        why: "leader election: create the Lease the first time (RBAC cannot limit create by name)",
    },
    Rule {
        api_group: "coordination.k8s.io",
        resource: "leases",
        resource_names: &[LEASE_NAME],
        verbs: &[Get, Update],
        scope: Scope::LeaderElection,
        why: "leader election: read, take and renew the Lease zdr-controller",
    },
];

/// One API request, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// API group ("" for the core group).
    pub api_group: String,
    /// Resource, with its subresource.
    pub resource: String,
    /// Verb.
    pub verb: Verb,
    /// Namespace; `None` for a request across all namespaces.
    pub namespace: Option<String>,
    /// Object name; `None` for collections and creations.
    pub name: Option<String>,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " in all namespaces"),
        }
    }
}

/// Why a request does not map to an RBAC access.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Not a resource path (`/api/v1/...` or `/apis/<group>/<version>/...`).
    #[error("{0} is not a Kubernetes resource path")]
    NotAResource(String),
    /// An HTTP method RBAC has no verb for.
    #[error("HTTP method {0} has no RBAC verb")]
    Method(String),
}

/// The RBAC access of the HTTP request `method` `uri` (path and query, as a client sends them).
pub fn access(method: &str, uri: &str) -> Result<Access, AccessError> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let bad = || AccessError::NotAResource(path.to_string());
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (api_group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return Err(bad()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => (resource.to_string(), None),
        [resource, name] => (resource.to_string(), Some(name.to_string())),
        [resource, name, sub] => (format!("{resource}/{sub}"), Some(name.to_string())),
        _ => return Err(bad()),
    };
    if resource.is_empty() || name.as_deref() == Some("") {
        return Err(bad());
    }
    let watching = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, &name) {
        ("GET", _) if watching => Verb::Watch,
        ("GET", Some(_)) => Verb::Get,
        ("GET", None) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", _) => Verb::Update,
        ("PATCH", _) => Verb::Patch,
        ("DELETE", Some(_)) => Verb::Delete,
        ("DELETE", None) => Verb::DeleteCollection,
        _ => return Err(AccessError::Method(method.to_string())),
    };
    Ok(Access {
        api_group: api_group.to_string(),
        resource,
        verb,
        namespace,
        name,
    })
}

/// The rule of [`RULES`] that allows `access`, if any. A rule limited to names allows only
/// requests naming one of them (as RBAC does: never a collection or a creation).
pub fn allowing(access: &Access) -> Option<&'static Rule> {
    RULES.iter().find(|r| {
        r.api_group == access.api_group
            && r.resource == access.resource
            && r.verbs.contains(&access.verb)
            && (r.resource_names.is_empty()
                || access
                    .name
                    .as_deref()
                    .is_some_and(|n| r.resource_names.contains(&n)))
    })
}

/// Checks the HTTP request `method` `uri` against [`RULES`]: the rule that allows it, or a
/// sentence saying what is not allowed.
pub fn check(method: &str, uri: &str) -> Result<&'static Rule, String> {
    let access = access(method, uri).map_err(|e| e.to_string())?;
    allowing(&access).ok_or_else(|| {
        format!(
            "{method} {uri} needs `{access}`, which src/controller/rbac.rs does not grant: add a \
             rule (and to charts/zdr/templates/rbac.yaml) or do not make the request"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(
        group: &str,
        resource: &str,
        verb: Verb,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Access {
        Access {
            api_group: group.into(),
            resource: resource.into(),
            verb,
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn requests_map_to_the_verbs_rbac_checks() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/ns/pods/p",
                acc("", "pods", Get, Some("ns"), Some("p")),
            ),
            (
                "GET",
                "/api/v1/pods?&limit=1",
                acc("", "pods", List, None, None),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/pods?&watch=true&timeoutSeconds=290",
                acc("", "pods", Watch, Some("ns"), None),
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/ns/events?",
                acc("events.k8s.io", "events", Create, Some("ns"), None),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/ns/pods/p/status?&fieldManager=zdr-controller",
                acc("", "pods/status", Patch, Some("ns"), Some("p")),
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/ns/leases/zdr-controller",
                acc(
                    "coordination.k8s.io",
                    "leases",
                    Update,
                    Some("ns"),
                    Some("zdr-controller"),
                ),
            ),
            (
                "DELETE",
                "/apis/apps/v1/namespaces/ns/controllerrevisions/web-1",
                acc(
                    "apps",
                    "controllerrevisions",
                    Delete,
                    Some("ns"),
                    Some("web-1"),
                ),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/ns/pods",
                acc("", "pods", Verb::DeleteCollection, Some("ns"), None),
            ),
            // A namespace object itself, not a namespaced collection.
            (
                "GET",
                "/api/v1/namespaces/ns",
                acc("", "namespaces", Get, None, Some("ns")),
            ),
        ];
        for (method, uri, want) in cases {
            assert_eq!(access(method, uri), Ok(want), "{method} {uri}");
        }
    }

    #[test]
    fn non_resource_paths_and_odd_methods_are_errors() {
        for uri in [
            "/version",
            "/healthz",
            "/apis",
            "/api/v1/namespaces/ns/pods/p/status/x",
        ] {
            assert!(
                matches!(access("GET", uri), Err(AccessError::NotAResource(_))),
                "{uri}"
            );
        }
        assert_eq!(
            access("OPTIONS", "/api/v1/pods"),
            Err(AccessError::Method("OPTIONS".into()))
        );
    }

    #[test]
    fn the_rules_allow_what_the_controller_does_and_nothing_else() {
        for (method, uri) in [
            (
                "GET",
                "/apis/zdr.dev/v1alpha1/zerodowntimerollouts?&watch=true",
            ),
            (
                "PATCH",
                "/apis/zdr.dev/v1alpha1/namespaces/ns/zerodowntimerollouts/web/status",
            ),
            ("GET", "/api/v1/namespaces/ns/secrets/prom-token"),
            (
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/zdr/leases/zdr-controller",
            ),
            ("POST", "/apis/coordination.k8s.io/v1/namespaces/zdr/leases"),
        ] {
            assert!(
                check(method, uri).is_ok(),
                "{method} {uri}: {:?}",
                check(method, uri)
            );
        }
        for (method, uri) in [
            // The spec is the user's: never written.
            (
                "PATCH",
                "/apis/zdr.dev/v1alpha1/namespaces/ns/zerodowntimerollouts/web",
            ),
            (
                "PUT",
                "/apis/zdr.dev/v1alpha1/namespaces/ns/zerodowntimerollouts/web/status",
            ),
            // Secrets are read by name, never enumerated.
            ("GET", "/api/v1/namespaces/ns/secrets"),
            ("GET", "/api/v1/secrets?&watch=true"),
            ("DELETE", "/api/v1/namespaces/ns/pods"),
            // Only the Lease named zdr-controller.
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/zdr/leases/other",
            ),
            ("GET", "/apis/coordination.k8s.io/v1/namespaces/zdr/leases"),
            ("POST", "/api/v1/namespaces/ns/events"),
            ("GET", "/api/v1/namespaces/ns"),
        ] {
            let err = check(method, uri).expect_err(uri);
            assert!(err.contains("does not grant"), "{err}");
        }
    }

    #[test]
    fn every_rule_is_explained_and_has_verbs() {
        for r in RULES {
            assert!(!r.verbs.is_empty(), "{r:?}");
            assert!(r.why.len() > 20, "{r:?}: say why");
            assert!(
                !r.verbs.contains(&Verb::DeleteCollection),
                "{r:?}: the controller never deletes collections"
            );
            if !r.resource_names.is_empty() {
                assert!(
                    !r.verbs.iter().any(|v| matches!(v, List | Watch | Create)),
                    "{r:?}: RBAC cannot limit list, watch or create by name"
                );
            }
        }
    }
}
