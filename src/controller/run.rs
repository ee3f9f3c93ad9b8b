//! Running the controller: command-line settings, the start-up checks (cluster reachable, CRD
//! installed), leader election, the watches feeding the reconciler, and `/livez` `/readyz`
//! `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use prometheus_client::registry::Registry;

use super::clock::SystemClock;
use super::context::{Context, Settings};
use super::leader::LeaseLock;
use super::metrics::Metrics;
use super::reconcile::{error_policy, reconcile};
use crate::crd::ZeroDowntimeRollout;
use crate::observe::{self, Health};
use crate::telemetry::LogFormat;

/// `zdr-controller` command line; every flag also reads an environment variable.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "zdr-controller",
    version,
    about = "Reconciles ZeroDowntimeRollout objects"
)]
pub struct Args {
    /// Address of the /livez, /readyz and /metrics server.
    #[arg(long, env = "ZDR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader through a Lease, so several replicas can run.
    #[arg(long, env = "ZDR_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, else "default").
    #[arg(long, env = "ZDR_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Watch only these namespaces, comma-separated or repeated (default: all namespaces). Needs
    /// RBAC rights only there (the chart's `watchNamespaces`).
    #[arg(long, env = "ZDR_WATCH_NAMESPACE", value_delimiter = ',', value_parser = namespace_name)]
    pub namespace: Vec<String>,
    /// Image of the zdr-agent hot-swap sidecar. Not used yet: the controller does not inject
    /// the sidecar (issue 9), so hot swaps are not driven by it and pods are replaced.
    #[arg(long, env = "ZDR_AGENT_IMAGE")]
    pub agent_image: Option<String>,
    /// Seconds to wait after a retiring pod left every EndpointSlice before deleting it.
    #[arg(long, env = "ZDR_ENDPOINT_PROPAGATION_SECONDS", default_value_t = 5)]
    pub endpoint_propagation_seconds: u64,
    /// Log format.
    #[arg(long, env = "ZDR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No kubeconfig and not in a cluster.
    #[error("no Kubernetes cluster configured (set KUBECONFIG or run in a pod): {0}")]
    NoCluster(#[source] kube::Error),
    /// The API server did not answer (its URL, the error).
    #[error("the Kubernetes API server at {0} is not reachable: {1}")]
    Unreachable(String, #[source] kube::Error),
    /// The configuration names an API server, but no client could be built for it.
    #[error("cannot make a client for the Kubernetes API server at {0}: {1}")]
    Client(String, #[source] kube::Error),
    /// The CRD is missing.
    #[error(
        "the ZeroDowntimeRollout CRD is not installed: kubectl apply --server-side -f crds/zerodowntimerollouts.yaml (or install the Helm chart)"
    )]
    CrdMissing,
    /// The controller's ServiceAccount lacks a right it needs.
    #[error(
        "the controller may not list ZeroDowntimeRollouts in {0}: {1} (grant it the rules of docs/install.md, or install the chart with watchNamespaces matching --namespace)"
    )]
    Forbidden(String, String),
    /// The metrics port could not be bound.
    #[error("cannot serve metrics on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Checks a `--namespace` value: a DNS label, as Kubernetes names namespaces.
fn namespace_name(s: &str) -> Result<String, String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if s.is_empty() {
        return Err("empty namespace name (a stray comma?)".into());
    }
    if s.len() > 63 || !s.chars().all(ok_char) || s.starts_with('-') || s.ends_with('-') {
        return Err(format!(
            "{s:?} is not a namespace name: at most 63 lowercase letters, digits and '-', \
             starting and ending with a letter or digit"
        ));
    }
    Ok(s.to_string())
}

/// The scopes to watch: every namespace (`None`) when `namespaces` is empty, else each named one
/// once, in order.
pub fn scopes(namespaces: &[String]) -> Vec<Option<&str>> {
    if namespaces.is_empty() {
        return vec![None];
    }
    let mut seen = std::collections::BTreeSet::new();
    namespaces
        .iter()
        .filter(|ns| seen.insert(ns.as_str()))
        .map(|ns| Some(ns.as_str()))
        .collect()
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A watch cache of `K` and the stream of objects it saw change, for the controller's triggers.
fn cached<K>(
    client: &Client,
    ns: Option<&str>,
) -> (
    reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = reflector::reflector(
        writer,
        watcher(api::<K>(client, ns), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    (store, stream)
}

/// The controller of the rollouts in `ns` (every namespace when `None`), with its own watch
/// caches: its context, and the future that runs it until SIGTERM / Ctrl-C.
fn scope_controller(
    client: &Client,
    ns: Option<&str>,
    metrics: Metrics,
    settings: Settings,
) -> (Arc<Context>, impl std::future::Future<Output = ()> + use<>) {
    let (pods, pod_stream) = cached::<Pod>(client, ns);
    let (revisions, rev_stream) = cached::<ControllerRevision>(client, ns);
    let (slices, slice_stream) = cached::<EndpointSlice>(client, ns);
    let ctx = Arc::new(Context::new(
        client.clone(),
        pods.clone(),
        revisions,
        slices,
        Arc::new(SystemClock),
        metrics,
        settings,
    ));
    let pods_for_map = pods;
    let controller = Controller::new(
        api::<ZeroDowntimeRollout>(client, ns),
        watcher::Config::default(),
    )
    .owns_stream(pod_stream)
    .owns_stream(rev_stream)
    // An EndpointSlice change wakes the rollouts whose pods it lists (drain progress).
    .watches_stream(slice_stream, move |slice: EndpointSlice| {
        let ns = slice.namespace();
        slice
            .endpoints
            .iter()
            .filter_map(|e| e.target_ref.as_ref()?.name.clone())
            .filter_map(|pod| {
                let key = ObjectRef::<Pod>::new(&pod).within(ns.as_deref()?);
                let pod = pods_for_map.get(&key)?;
                let owner = pod
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true) && o.kind == "ZeroDowntimeRollout")?;
                Some(ObjectRef::new(&owner.name).within(ns.as_deref()?))
            })
            .collect::<Vec<_>>()
    })
    .shutdown_on_signal();
    let work = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(rollout = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile stream error"),
            }
        });
    (ctx, work)
}

/// Runs the controller until SIGTERM / Ctrl-C, or until leadership is lost.
pub async fn run(args: Args) -> Result<(), StartError> {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let health = Health::new(registry);
    observe::serve(args.metrics_addr, health.router())
        .await
        .map_err(|e| StartError::Bind(args.metrics_addr, e))?;

    let config = kube::Config::infer()
        .await
        .map_err(|e| StartError::NoCluster(kube::Error::InferConfig(e)))?;
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| StartError::Client(url.clone(), e))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| StartError::Unreachable(url.clone(), e))?;
    let scopes = scopes(&args.namespace);
    for ns in &scopes {
        let zdrs: Api<ZeroDowntimeRollout> = api(&client, *ns);
        match zdrs.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Err(StartError::CrdMissing),
            Err(kube::Error::Api(s)) if s.code == 403 => {
                let place = ns.map_or("all namespaces".into(), |ns| format!("namespace {ns}"));
                return Err(StartError::Forbidden(place, s.message));
            }
            Err(e) => return Err(StartError::Unreachable(url.clone(), e)),
        }
    }

    let lock = if args.leader_elect {
        let lease_ns = args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("zdr-controller-{}", std::process::id()));
        let lock = LeaseLock::new(
            Api::<Lease>::namespaced(client.clone(), &lease_ns),
            super::rbac::LEASE_NAME,
            &identity,
            Duration::from_secs(15),
        );
        tracing::info!(%identity, namespace = %lease_ns, "waiting for leadership");
        lock.acquire().await;
        tracing::info!("leading");
        Some(lock)
    } else {
        None
    };

    let settings = Settings {
        endpoint_propagation: Duration::from_secs(args.endpoint_propagation_seconds),
        agent_image: args
            .agent_image
            .clone()
            .unwrap_or_else(|| super::context::DEFAULT_AGENT_IMAGE.to_string()),
    };
    let (contexts, controllers): (Vec<_>, Vec<_>) = scopes
        .iter()
        .map(|ns| scope_controller(&client, *ns, metrics.clone(), settings.clone()))
        .unzip();
    let watched: Vec<&str> = scopes.iter().map(|ns| ns.unwrap_or("<all>")).collect();
    tracing::info!(namespaces = %watched.join(","), "controller started");
    // Ready (and reconciling: see `reconcile`) once every cache has finished its initial list.
    let ready = health.clone();
    tokio::spawn(async move {
        futures::future::join_all(contexts.iter().map(|c| c.caches_synced())).await;
        ready.set_ready(true);
        tracing::info!("watch caches synced");
    });
    let work = futures::future::join_all(controllers);
    match lock {
        Some(lock) => {
            tokio::select! {
                _ = work => {}
                _ = lock.hold() => {
                    tracing::error!("lost leadership: exiting so that another replica takes over");
                    health.set_ready(false);
                }
            }
        }
        None => {
            work.await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("zdr-controller").chain(args.iter().copied()))
    }

    #[test]
    fn namespaces_are_a_comma_list_or_repeated_and_default_to_all() {
        assert_eq!(scopes(&parse(&[]).unwrap().namespace), [None]);
        let one = parse(&["--namespace", "apps"]).unwrap().namespace;
        assert_eq!(scopes(&one), [Some("apps")]);
        let many = parse(&["--namespace=a,b", "--namespace", "c", "--namespace=a"])
            .unwrap()
            .namespace;
        assert_eq!(scopes(&many), [Some("a"), Some("b"), Some("c")]);
    }

    #[test]
    fn a_bad_namespace_is_refused_with_its_reason() {
        for (value, needle) in [
            ("a,,b", "empty namespace name"),
            ("Apps", "not a namespace name"),
            ("-a", "not a namespace name"),
            ("a_b", "not a namespace name"),
        ] {
            let flag = format!("--namespace={value}");
            let err = parse(&[&flag]).expect_err(value).to_string();
            assert!(err.contains(needle), "{value}: {err}");
        }
        let long = "a".repeat(64);
        assert!(parse(&["--namespace", &long]).is_err());
        assert!(parse(&["--namespace", &"a".repeat(63)]).is_ok());
    }
}
