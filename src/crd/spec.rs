//! `spec` of a `ZeroDowntimeRollout`: what the user asks for. Doc comments here are what
//! `kubectl explain zdr.spec…` prints.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::{AnalysisSpec, ZeroDowntimeRolloutStatus};

/// CEL: an int-or-string is a non-negative integer or a percentage from 0% to 100%.
/// (`string()` rather than `type()`: it reads both forms and keeps the rule portable.)
const INT_OR_PERCENT: &str = "string(self).matches('^([0-9]+|(100|[1-9]?[0-9])%)$')";
const INT_OR_PERCENT_MSG: &str =
    "must be a non-negative integer or a percentage between 0% and 100%";

/// CEL: maxSurge and maxUnavailable may not both be zero (absent maxSurge defaults to 25%,
/// absent maxUnavailable to 0).
const NOT_BOTH_ZERO: &str = "!((has(self.maxSurge) && string(self.maxSurge).matches('^0+%?$')) && (!has(self.maxUnavailable) || string(self.maxUnavailable).matches('^0+%?$')))";
const NOT_BOTH_ZERO_MSG: &str =
    "maxSurge and maxUnavailable cannot both be zero: no pod could ever be replaced";

/// CEL: the selector is not empty and every term of it matches the template's labels.
const SELECTOR_NOT_EMPTY: &str = "(has(self.selector.matchLabels) && size(self.selector.matchLabels) > 0) || (has(self.selector.matchExpressions) && size(self.selector.matchExpressions) > 0)";
const SELECTOR_MATCHES_LABELS: &str = "!has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])";
const SELECTOR_MATCHES_EXPRESSIONS: &str = "!has(self.selector.matchExpressions) || self.selector.matchExpressions.all(e, e.operator == 'In' ? (has(self.template.metadata) && has(self.template.metadata.labels) && e.key in self.template.metadata.labels && has(e.values) && self.template.metadata.labels[e.key] in e.values) : e.operator == 'NotIn' ? (!has(self.template.metadata) || !has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels) || !has(e.values) || !(self.template.metadata.labels[e.key] in e.values)) : e.operator == 'Exists' ? (has(self.template.metadata) && has(self.template.metadata.labels) && e.key in self.template.metadata.labels) : (!has(self.template.metadata) || !has(self.template.metadata.labels) || !(e.key in self.template.metadata.labels)))";

/// A rollout of a replicated, stateless workload that never drops a request: pods are replaced
/// in readiness-gated waves (or canary steps), taken out of traffic before they are deleted, and
/// rolled back automatically when SLO checks fail.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "zdr.dev",
    version = "v1alpha1",
    kind = "ZeroDowntimeRollout",
    plural = "zerodowntimerollouts",
    shortname = "zdr",
    category = "all",
    namespaced,
    status = "ZeroDowntimeRolloutStatus",
    derive = "PartialEq",
    doc = "A ZeroDowntimeRollout runs a replicated workload and rolls out new versions of it without dropping requests.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Number of pods asked for"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Pods that exist now, all revisions"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Pods of the update revision"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Pods ready for at least minReadySeconds"
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Progressing, Paused, Healthy, Degraded or Aborted"
    ),
    printcolumn(
        name = "Step",
        type_ = "integer",
        json_path = ".status.currentStepIndex",
        description = "Current canary step"
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percent of traffic sent to the canary"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(SELECTOR_NOT_EMPTY).message("spec.selector must not be empty: it would select every pod in the namespace").field_path(".selector"))]
#[x_kube(validation = Rule::new(SELECTOR_MATCHES_LABELS).message("spec.selector.matchLabels must match spec.template.metadata.labels").field_path(".selector"))]
#[x_kube(validation = Rule::new(SELECTOR_MATCHES_EXPRESSIONS).message("spec.selector.matchExpressions must match spec.template.metadata.labels").field_path(".selector"))]
#[serde(rename_all = "camelCase")]
pub struct ZeroDowntimeRolloutSpec {
    /// Number of pods to run. Defaults to 1. The scale subresource (`kubectl scale`, HPA) sets it.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// Label query over the pods this rollout owns. It must match the template's labels and is
    /// not meant to change after creation.
    #[schemars(schema_with = "bounded_label_selector")]
    pub selector: LabelSelector,

    /// The pod template, exactly as in a Deployment. Every distinct template is one revision.
    /// (Field descriptions inside it are omitted to keep the CRD small: see
    /// `kubectl explain deployment.spec.template`.)
    #[schemars(schema_with = "pod_template_without_descriptions")]
    pub template: PodTemplateSpec,

    /// Seconds a new pod must be Ready, without any container crashing, before it counts as
    /// available. Defaults to 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_ready_seconds: i32,

    /// Seconds a rollout may go without progress (a pod becoming available or a step
    /// completing) before it is marked Degraded with reason ProgressDeadlineExceeded. Defaults to 600.
    #[serde(default = "default_progress_deadline")]
    #[schemars(range(min = 1))]
    pub progress_deadline_seconds: i32,

    /// When true, exceeding the progress deadline also aborts the rollout: traffic and pods go
    /// back to the stable revision. Defaults to false.
    #[serde(default)]
    pub progress_deadline_abort: bool,

    /// Number of old revisions (ControllerRevisions) kept for rollback. Defaults to 10.
    #[serde(default = "default_history")]
    #[schemars(range(min = 0))]
    pub revision_history_limit: i32,

    /// When true, the rollout makes no progress towards the new revision; scaling still works.
    #[serde(default)]
    pub paused: bool,

    /// How pods of a new revision replace the old ones. Defaults to a rolling update with
    /// maxSurge 25% and maxUnavailable 0.
    #[serde(default)]
    pub strategy: Strategy,

    /// SLO checks against Prometheus that gate the rollout and abort it when they fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisSpec>,
}

fn default_replicas() -> i32 {
    1
}
fn default_progress_deadline() -> i32 {
    600
}
fn default_history() -> i32 {
    10
}

/// Most labels a selector or the pod template may carry: the CEL rules that compare the two walk
/// both maps, so both are bounded for the API server's cost estimate.
pub const MAX_LABELS: i64 = 64;
/// Most `matchExpressions` terms in the selector.
pub const MAX_SELECTOR_TERMS: i64 = 32;
/// Most values in one `matchExpressions` term.
pub const MAX_SELECTOR_VALUES: i64 = 64;
/// Longest label value Kubernetes accepts.
pub const MAX_LABEL_VALUE: i64 = 63;
/// Longest label key Kubernetes accepts: a 253-character DNS prefix, `/`, a 63-character name.
pub const MAX_LABEL_KEY: i64 = 317;

/// Bounds `schema` (a JSON object schema) with `key: value`.
fn bound(schema: Option<&mut serde_json::Value>, key: &str, value: i64) {
    if let Some(obj) = schema.and_then(|s| s.as_object_mut()) {
        obj.insert(key.into(), value.into());
    }
}

/// A label map (`map[string]string`): at most [`MAX_LABELS`] entries of at most
/// [`MAX_LABEL_VALUE`] characters, as the API server already enforces on pods.
fn bound_label_map(map: Option<&mut serde_json::Value>) {
    let Some(map) = map else { return };
    bound(Some(map), "maxProperties", MAX_LABELS);
    bound(
        map.get_mut("additionalProperties"),
        "maxLength",
        MAX_LABEL_VALUE,
    );
}

/// The k8s LabelSelector schema with bounds on its lists, maps and strings, so the CEL rules that
/// walk it stay within the API server's cost budget.
fn bounded_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut value = <LabelSelector as JsonSchema>::json_schema(generator).to_value();
    if let Some(props) = value.get_mut("properties") {
        bound_label_map(props.get_mut("matchLabels"));
        if let Some(me) = props.get_mut("matchExpressions") {
            bound(Some(me), "maxItems", MAX_SELECTOR_TERMS);
            if let Some(term) = me.get_mut("items").and_then(|i| i.get_mut("properties")) {
                bound(term.get_mut("key"), "maxLength", MAX_LABEL_KEY);
                if let Some(op) = term.get_mut("operator").and_then(|o| o.as_object_mut()) {
                    op.insert(
                        "enum".into(),
                        serde_json::json!(["In", "NotIn", "Exists", "DoesNotExist"]),
                    );
                }
                if let Some(values) = term.get_mut("values") {
                    bound(Some(values), "maxItems", MAX_SELECTOR_VALUES);
                    bound(values.get_mut("items"), "maxLength", MAX_LABEL_VALUE);
                }
            }
        }
    }
    Schema::try_from(value).expect("a bounded object schema is still a schema")
}

/// The PodTemplateSpec schema with its (large) field descriptions removed, as Argo Rollouts and
/// controller-gen's `maxDescLen=0` do: the CRD stays under the 256 KiB client-side apply limit.
/// `metadata.labels` is bounded like the selector, since the selector rules walk it.
fn pod_template_without_descriptions(generator: &mut SchemaGenerator) -> Schema {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("description");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = <PodTemplateSpec as JsonSchema>::json_schema(generator).to_value();
    strip(&mut value);
    bound_label_map(value.pointer_mut("/properties/metadata/properties/labels"));
    Schema::try_from(value).expect("a stripped object schema is still a schema")
}

/// How a new revision replaces the old one. Set at most one of `rolling` and `canary`;
/// `hotSwap` may be combined with either.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.rolling) && has(self.canary))").message("set at most one of strategy.rolling and strategy.canary"))]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    /// Replace pods in waves bounded by maxSurge and maxUnavailable (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<RollingStrategy>,

    /// Shift traffic to the new revision in steps (weights, header routes, analysis, pauses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,

    /// Swap the application process inside running pods when only this container's image
    /// changes, through the zdr-agent sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_swap: Option<HotSwapStrategy>,
}

/// Wave sizes of a rolling update, rounded as a Deployment rounds them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(NOT_BOTH_ZERO).message(NOT_BOTH_ZERO_MSG))]
#[serde(rename_all = "camelCase")]
pub struct RollingStrategy {
    /// Pods that may exist above `replicas` during the update: an integer or a percentage of
    /// replicas, rounded up. Defaults to 25%.
    #[serde(default = "default_max_surge")]
    #[x_kube(validation = Rule::new(INT_OR_PERCENT).message(INT_OR_PERCENT_MSG))]
    pub max_surge: IntOrString,

    /// Pods that may be unavailable during the update: an integer or a percentage of replicas,
    /// rounded down. Defaults to 0: capacity never drops.
    #[serde(default = "default_max_unavailable")]
    #[x_kube(validation = Rule::new(INT_OR_PERCENT).message(INT_OR_PERCENT_MSG))]
    pub max_unavailable: IntOrString,

    /// Which pods count against maxSurge: `TerminationStarted` (the default) stops counting a
    /// pod once it is out of traffic to be retired, so the next wave starts while it drains;
    /// `TerminationComplete` counts it until it is gone, for clusters without spare capacity.
    #[serde(default)]
    pub pod_replacement_policy: PodReplacementPolicy,
}

impl Default for RollingStrategy {
    fn default() -> Self {
        Self {
            max_surge: default_max_surge(),
            max_unavailable: default_max_unavailable(),
            pod_replacement_policy: PodReplacementPolicy::default(),
        }
    }
}

/// Which pods count against maxSurge during an update, as the Deployment field of that name.
/// Availability (maxUnavailable) and drain-before-delete hold under both.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PodReplacementPolicy {
    /// A pod stops counting once it is out of traffic (retiring, not Ready and in no
    /// EndpointSlice as ready), terminating, or finished.
    #[default]
    TerminationStarted,
    /// Every pod that still exists counts, draining and terminating ones too, until it is gone.
    TerminationComplete,
}

fn default_max_surge() -> IntOrString {
    IntOrString::String("25%".into())
}
fn default_max_unavailable() -> IntOrString {
    IntOrString::Int(0)
}

/// A canary: the new revision gets a share of pods and traffic that grows step by step.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(NOT_BOTH_ZERO).message(NOT_BOTH_ZERO_MSG))]
#[x_kube(validation = Rule::new("size(self.steps) > 0").message("strategy.canary needs at least one step").field_path(".steps"))]
#[x_kube(validation = Rule::new("has(self.trafficRouting) || self.steps.all(s, !has(s.setHeaderRoute))").message("setHeaderRoute needs strategy.canary.trafficRouting: without a router, requests cannot be routed by header").field_path(".steps"))]
#[x_kube(validation = Rule::new("self.stableService != self.canaryService").message("stableService and canaryService must be two different Services").field_path(".canaryService"))]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service whose selector the controller points at the stable revision (it adds the
    /// `zdr.dev/revision` label to the Service's selector). Must exist in the rollout's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub stable_service: String,

    /// Service whose selector the controller points at the canary revision, once canary pods
    /// are ready (until then, at the stable revision). Must exist in the rollout's namespace.
    #[schemars(length(min = 1, max = 63))]
    pub canary_service: String,

    /// How traffic is split between the stable and canary Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<TrafficRouting>,

    /// The steps, in order. After the last one the canary is promoted to stable.
    #[schemars(length(max = 64))]
    pub steps: Vec<CanaryStep>,

    /// As in `rolling.maxSurge`, for scaling the canary and the final promotion. Defaults to 25%.
    #[serde(default = "default_max_surge")]
    #[x_kube(validation = Rule::new(INT_OR_PERCENT).message(INT_OR_PERCENT_MSG))]
    pub max_surge: IntOrString,

    /// As in `rolling.maxUnavailable`. Defaults to 0.
    #[serde(default = "default_max_unavailable")]
    #[x_kube(validation = Rule::new(INT_OR_PERCENT).message(INT_OR_PERCENT_MSG))]
    pub max_unavailable: IntOrString,

    /// As in `rolling.podReplacementPolicy`. Defaults to `TerminationStarted`.
    #[serde(default)]
    pub pod_replacement_policy: PodReplacementPolicy,
}

/// Where the traffic split is applied. Set exactly one of `gatewayAPI` and `istio`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.gatewayAPI) ? 1 : 0) + (has(self.istio) ? 1 : 0) == 1").message("trafficRouting sets exactly one of gatewayAPI, istio"))]
#[serde(rename_all = "camelCase")]
pub struct TrafficRouting {
    /// Split traffic with a Gateway API HTTPRoute whose backendRefs name the two Services.
    #[serde(
        rename = "gatewayAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_api: Option<GatewayApiRouting>,

    /// Split traffic with an Istio VirtualService whose routes name the two Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioRouting>,
}

/// A Gateway API HTTPRoute (gateway.networking.k8s.io/v1) changed by the rollout. The controller
/// changes only the weights of the backendRefs that name the stable and canary Services, and
/// the rules it adds for header routes (named `zdr-<route name>`); everything else stays as
/// written.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiRouting {
    /// Name of the HTTPRoute, in the rollout's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub http_route: String,
}

/// An Istio VirtualService (networking.istio.io/v1) changed by the rollout: the weights of the
/// destinations that name the stable and canary Services in the listed routes, and the routes
/// it adds for header routes (named `zdr-<route name>`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioRouting {
    /// The VirtualService and which of its HTTP routes carry the split.
    pub virtual_service: IstioVirtualService,
}

/// A VirtualService in the rollout's namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// Name of the VirtualService.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Names of its `http` routes whose destinations are weighted. Empty: every route whose
    /// destinations name both Services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub routes: Vec<String>,
}

/// One canary step. Exactly one of its fields is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.setWeight) ? 1 : 0) + (has(self.setHeaderRoute) ? 1 : 0) + (has(self.analysis) ? 1 : 0) + (has(self.pause) ? 1 : 0) + (has(self.setCanaryScale) ? 1 : 0) == 1").message("a canary step sets exactly one of setWeight, setHeaderRoute, setCanaryScale, analysis, pause"))]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percent of traffic (0-100) sent to the canary; canary pods are scaled to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub set_weight: Option<i32>,

    /// Send requests matching these headers to the canary, whatever the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<HeaderRoute>,

    /// Run the SLO checks of `spec.analysis` now and continue only if they pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStep>,

    /// Wait: for `duration`, or without one until `kubectl zdr promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,

    /// Scale the canary independently of the weight: to a number of pods, a percentage of
    /// replicas, or back to following the weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
}

/// Canary pod count, independent of the weight. Exactly one field is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.replicas) ? 1 : 0) + (has(self.percent) ? 1 : 0) + (has(self.matchTrafficWeight) && self.matchTrafficWeight ? 1 : 0) == 1").message("setCanaryScale sets exactly one of replicas, percent, matchTrafficWeight: true"))]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// This many canary pods (at most `spec.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,

    /// This percentage of `spec.replicas`, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,

    /// True: the canary's pod count follows the weight again (the default behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// A named header-based route to the canary. Several routes with different names may be active
/// at once; a later step with the same name and no `match` removes it, and promotion or abort
/// removes them all.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoute {
    /// Name of the route; the router's rule is named `zdr-<name>`.
    #[schemars(
        length(min = 1, max = 48),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// All of these must match for a request to go to the canary. Empty or absent: remove the
    /// route of this name.
    #[serde(rename = "match", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<HeaderMatch>,
}

/// A request header condition.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// Header name, e.g. `X-Canary`.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$")
    )]
    pub header_name: String,
    /// How the header's value must match.
    pub header_value: StringMatch,
}

/// Exactly one of `exact`, `prefix` or `regex`, at most 4096 characters (as Gateway API allows).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1").message("set exactly one of exact, prefix, regex"))]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// The value equals this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub exact: Option<String>,
    /// The value starts with this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub prefix: Option<String>,
    /// The value matches this regular expression (RE2 syntax, as the Gateway implements it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub regex: Option<String>,
}

/// An inline analysis step. It runs the metrics of `spec.analysis`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStep {}

/// A pause step.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// How long to wait, e.g. `30s`, `2m`, `1h30m`. Without it the rollout waits for
    /// `kubectl zdr promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub duration: Option<Duration>,
}

/// In-pod hot swap through the zdr-agent sidecar.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HotSwapStrategy {
    /// Name of the application container whose image may be hot-swapped.
    #[schemars(length(min = 1, max = 63))]
    pub container: String,

    /// Seconds the old process may take to finish in-flight requests before it is killed.
    /// Defaults to 30.
    #[serde(default = "default_drain_timeout")]
    #[schemars(range(min = 0, max = 3600))]
    pub drain_timeout_seconds: i32,
}

fn default_drain_timeout() -> i32 {
    30
}
