//! `spec.analysis` and `status.analysis`: SLO checks against Prometheus, and what they
//! measured. Doc comments here are what `kubectl explain zdr.spec.analysis…` prints.

use k8s_openapi::api::core::v1::SecretKeySelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use kube::core::Duration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const DURATION: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// SLO checks against Prometheus, run in the background while an update is in progress, on the
/// pods of the new revision. A failed check aborts the rollout and rolls back to the stable
/// revision; an inconclusive one pauses it until a person resumes it (see docs/analysis.md).
/// Limits and timing behave as in Argo Rollouts' AnalysisTemplate, applied to each metric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSpec {
    /// The Prometheus server to query.
    pub prometheus: PrometheusProvider,

    /// Time between two measurements of a metric, e.g. `30s`. Defaults to 30s.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = DURATION))]
    pub interval: Duration,

    /// Measurements of each metric before it completes successfully. Unset: measure until the
    /// rollout completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<i32>,

    /// Wait after the update starts before the first measurement, so the new pods receive
    /// traffic first, e.g. `1m`. Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub initial_delay: Option<Duration>,

    /// Failed measurements of a metric tolerated; one more fails the analysis and aborts the
    /// rollout. Defaults to 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub failure_limit: i32,

    /// Inconclusive measurements of a metric tolerated (no data, NaN, neither condition true);
    /// one more pauses the rollout until a person resumes it. Defaults to 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub inconclusive_limit: i32,

    /// Consecutive errors (Prometheus unreachable, slow, or refusing the query) tolerated;
    /// one more fails the analysis. Errors are retried with backoff. Defaults to 4.
    #[serde(default = "default_consecutive_error_limit")]
    #[schemars(range(min = 0))]
    pub consecutive_error_limit: i32,

    /// The metrics to check.
    #[schemars(length(min = 1, max = 32))]
    pub metrics: Vec<AnalysisMetric>,
}

fn default_interval() -> Duration {
    "30s".parse().expect("a valid duration literal")
}

fn default_consecutive_error_limit() -> i32 {
    4
}

/// Where Prometheus answers and how to reach it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    #[schemars(regex(pattern = r"^https?://"))]
    pub address: String,

    /// Time a query may take before it counts as an error measurement, e.g. `5s`.
    /// Defaults to 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION))]
    pub timeout: Option<Duration>,

    /// Extra HTTP headers sent with every query (e.g. `X-Scope-OrgID` for Thanos or Mimir).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HttpHeader>,

    /// A bearer token, read from a key of a Secret in the rollout's namespace and sent as
    /// `Authorization: Bearer …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeySelector>,

    /// PEM CA certificate(s) that sign the server's certificate, read from a key of a Secret in
    /// the rollout's namespace. Without it the system's roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<SecretKeySelector>,

    /// Accept any server certificate (testing only). Defaults to false.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One HTTP header.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Header value.
    pub value: String,
}

/// One check: a PromQL query judged by conditions, or an SLO judged by its burn rate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.query) != has(self.slo)").message("a metric sets exactly one of query and slo"))]
#[x_kube(validation = Rule::new("!has(self.query) || has(self.successCondition) || has(self.failureCondition)").message("a query metric needs a successCondition or a failureCondition"))]
#[x_kube(validation = Rule::new("!has(self.slo) || (!has(self.successCondition) && !has(self.failureCondition))").message("an slo metric is judged by its burn rate: it takes no successCondition or failureCondition"))]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMetric {
    /// Name, unique within the analysis.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// PromQL. `{{revision}}` (the new revision's hash, the value of the pods' `zdr.dev/revision`
    /// label), `{{stableRevision}}`, `{{namespace}}` and `{{name}}` (the rollout's) are replaced;
    /// any other `{{…}}` is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub query: Option<String>,

    /// The measurement passes when this holds, e.g. `result < 0.01`, `result[0] >= 0.95`,
    /// `all(result, {# < 0.5})`. See docs/analysis.md for the language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub success_condition: Option<String>,

    /// The measurement fails when this holds, e.g. `result >= 0.05`. With both conditions, a
    /// measurement where neither holds is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub failure_condition: Option<String>,

    /// Judge an SLO instead of a query: fail when the new revision burns the error budget too
    /// fast over both a long and a short window (multi-window, multi-burn-rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<SloMetric>,
}

/// An SLO over the new revision's own traffic.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SloMetric {
    /// Objective in percent of good events, e.g. `99.9`.
    #[schemars(range(min = 0.0, max = 100.0))]
    pub objective: f64,

    /// PromQL counting bad events over `{{window}}`, e.g.
    /// `sum(rate(http_requests_total{code=~"5..",zdr_revision="{{revision}}"}[{{window}}]))`.
    /// An empty result means no bad events.
    #[schemars(length(min = 1, max = 4096))]
    pub bad_query: String,

    /// PromQL counting all events over `{{window}}`. An empty or zero result means no traffic:
    /// the measurement is inconclusive.
    #[schemars(length(min = 1, max = 4096))]
    pub total_query: String,

    /// Window pairs; the SLO fails when, for any pair, both windows burn faster than its
    /// `burnRate`. Defaults to 1h/5m at 14.4 and 6h/30m at 6 (docs/analysis.md says why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub windows: Vec<BurnWindow>,
}

/// A long and a short window that must both burn faster than `burnRate`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BurnWindow {
    /// Long window, e.g. `1h`: the burn is sustained.
    #[schemars(regex(pattern = DURATION))]
    pub long: Duration,
    /// Short window, e.g. `5m`: the burn is still happening.
    #[schemars(regex(pattern = DURATION))]
    pub short: Duration,
    /// Burn rate threshold: 1 spends exactly the error budget over the SLO period.
    #[schemars(range(min = 0.0))]
    pub burn_rate: f64,
}

/// Outcome of an analysis, a metric or a measurement.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisPhase {
    /// Still measuring.
    Running,
    /// Passed.
    Successful,
    /// Failed: the rollout is aborted.
    Failed,
    /// No verdict (no data, NaN, neither condition true): the rollout is paused.
    Inconclusive,
    /// The measurement could not be taken (Prometheus unreachable, slow, or an invalid query).
    Error,
}

impl AnalysisPhase {
    /// The name as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Inconclusive => "Inconclusive",
            AnalysisPhase::Error => "Error",
        }
    }
}

/// The analysis of one update revision, as recorded so that a restarted controller resumes it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    /// The revision being analysed.
    pub revision: String,
    /// Running, Successful, Failed or Inconclusive.
    pub phase: AnalysisPhase,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When this run started (initialDelay counts from here); reset on resume.
    pub started_at: Time,
    /// Last value of the `zdr.dev/resume-analysis` annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    /// `spec.paused` was seen true while inconclusive: setting it false resumes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume_armed: bool,
    /// One entry per metric.
    #[serde(default)]
    pub metrics: Vec<MetricStatus>,
}

/// Counters and the last measurements of one metric.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// Metric name.
    pub name: String,
    /// Running, Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,
    /// Measurements taken in this run.
    #[serde(default)]
    pub count: i32,
    /// Successful measurements.
    #[serde(default)]
    pub successful: i32,
    /// Failed measurements.
    #[serde(default)]
    pub failed: i32,
    /// Inconclusive measurements.
    #[serde(default)]
    pub inconclusive: i32,
    /// Error measurements.
    #[serde(default)]
    pub error: i32,
    /// Errors since the last measurement that was not an error.
    #[serde(default)]
    pub consecutive_error: i32,
    /// Why the metric is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last measurements, oldest first (at most 10).
    #[serde(default)]
    pub measurements: Vec<Measurement>,
}

/// One measurement.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// Successful, Failed, Inconclusive or Error.
    pub phase: AnalysisPhase,
    /// The value, e.g. `0.004` or `[0.1, 0.2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When the query was sent.
    pub started_at: Time,
    /// When the answer (or error) came.
    pub finished_at: Time,
    /// The query with its placeholders resolved.
    pub query: String,
    /// Why, for people (errors, no data, which condition held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
