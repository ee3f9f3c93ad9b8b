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
    /// Watch only this namespace (default: all).
    #[arg(long, env = "ZDR_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
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
    /// The metrics port could not be bound.
    #[error("cannot serve metrics on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
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
    let ns = args.namespace.as_deref();
    let zdrs: Api<ZeroDowntimeRollout> = api(&client, ns);
    match zdrs.list(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(StartError::CrdMissing),
        Err(e) => return Err(StartError::Unreachable(url, e)),
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
            "zdr-controller",
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

    let (pods, pod_stream) = cached::<Pod>(&client, ns);
    let (revisions, rev_stream) = cached::<ControllerRevision>(&client, ns);
    let (slices, slice_stream) = cached::<EndpointSlice>(&client, ns);

    let ctx = Arc::new(Context::new(
        client.clone(),
        pods.clone(),
        revisions,
        slices,
        Arc::new(SystemClock),
        metrics,
        Settings {
            endpoint_propagation: Duration::from_secs(args.endpoint_propagation_seconds),
        },
    ));
    let pods_for_map = pods.clone();
    let controller = Controller::new(zdrs, watcher::Config::default())
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
    tracing::info!(namespace = ns.unwrap_or("<all>"), "controller started");
    // Ready (and reconciling: see `reconcile`) once every cache has finished its initial list.
    let synced = ctx.clone();
    let ready = health.clone();
    tokio::spawn(async move {
        synced.caches_synced().await;
        ready.set_ready(true);
        tracing::info!("watch caches synced");
    });

    let work = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(rollout = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile stream error"),
            }
        });
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
        None => work.await,
    }
    Ok(())
}
