//! What every reconcile shares: the API client, the watch caches, expectations, the clock,
//! metrics, the event recorder and the settings.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;

use super::analysis::{PrometheusFactory, ProviderFactory};
use super::backoff::Backoff;
use super::clock::Clock;
use super::expectations::Expectations;
use super::metrics::Metrics;

/// The single field manager for every write the controller makes.
pub const FIELD_MANAGER: &str = "zdr-controller";

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Wait after a retiring pod left every EndpointSlice before deleting it, so load
    /// balancers and kube-proxy catch up.
    pub endpoint_propagation: Duration,
    /// The zdr-agent image: the hot-swap sidecar, and the image a parked slot runs.
    pub agent_image: String,
}

/// The agent image when none is configured: this build's own image.
pub const DEFAULT_AGENT_IMAGE: &str = concat!("ghcr.io/zdr-dev/zdr:", env!("CARGO_PKG_VERSION"));

impl Default for Settings {
    fn default() -> Self {
        Self {
            endpoint_propagation: Duration::from_secs(5),
            agent_image: DEFAULT_AGENT_IMAGE.to_string(),
        }
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Watch cache of pods.
    pub pods: Store<Pod>,
    /// Watch cache of ControllerRevisions.
    pub revisions: Store<ControllerRevision>,
    /// Watch cache of EndpointSlices.
    pub slices: Store<EndpointSlice>,
    /// Creations and deletions not yet seen in the cache.
    pub expectations: Expectations,
    /// Per-rollout backoff of failures.
    pub backoff: Backoff,
    /// Set once every watch cache has finished its initial list.
    synced: tokio::sync::OnceCell<()>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Settings.
    pub settings: Settings,
    /// Metrics providers for analysis (Prometheus; fakes in tests).
    pub providers: Arc<dyn ProviderFactory>,
}

impl Context {
    /// A context with the given caches.
    pub fn new(
        client: Client,
        pods: Store<Pod>,
        revisions: Store<ControllerRevision>,
        slices: Store<EndpointSlice>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
        settings: Settings,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            pods,
            revisions,
            slices,
            expectations: Expectations::default(),
            backoff: Backoff::default(),
            synced: tokio::sync::OnceCell::new(),
            clock,
            metrics,
            recorder,
            settings,
            providers: Arc::new(PrometheusFactory::default()),
        }
    }

    /// Waits until every watch cache the reconcile reads has finished its initial list, so that
    /// no decision is made on a partial view (at start, and after taking over the leader Lease).
    /// Any number of reconciles may wait at once: a store's `wait_until_ready` wakes only its
    /// last poller, so one future waits on the stores for all of them.
    pub async fn caches_synced(&self) {
        self.synced
            .get_or_init(|| async {
                let (pods, revisions, slices) = futures::join!(
                    self.pods.wait_until_ready(),
                    self.revisions.wait_until_ready(),
                    self.slices.wait_until_ready()
                );
                if let Err(e) = pods.and(revisions).and(slices) {
                    // The reflector was dropped: the controller is shutting down.
                    tracing::warn!(error = %e, "a watch cache will never be ready");
                    std::future::pending::<()>().await;
                }
            })
            .await;
    }

    /// The same context with another provider factory.
    pub fn with_providers(mut self, providers: Arc<dyn ProviderFactory>) -> Self {
        self.providers = providers;
        self
    }
}
