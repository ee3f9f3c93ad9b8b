//! Rendering a hot-swap pod from the user's plain template (pure, no Kubernetes I/O): the agent's
//! native sidecar, the two app slots, the shared `emptyDir`, the probes adapted so that pod
//! readiness means "the active version is ready", and the annotations the slots read. The layout
//! is docs/hotswap.md's "The rendered pod"; every name and path comes from [`crate::contract::pod`].
//! What makes a template unrenderable is [`RenderError`] (checked in `check.rs`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contract::pod::{
    ACTIVE_SLOT_ANNOTATION, AGENT_BIN, AGENT_CONTAINER, AGENT_IMAGE_BIN, ENV_ACTIVE_SLOT,
    ENV_GENERATION, ENV_SLOT, ENV_VERSION, GENERATION_ANNOTATION, MOUNT_PATH, RUN_DIR,
    SLOT_B_CONTAINER, STATUS_PORT, Slot, VOLUME,
};
use crate::crd::HotSwapStrategy;

mod check;

pub use check::{ProbeKind, RenderError};

/// The image the agent's sidecar (and a parked slot) runs: the controller's `--agent-image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentImage {
    /// Image reference, e.g. `ghcr.io/zdr-dev/zdr:0.1.0`.
    pub image: String,
    /// `imagePullPolicy` of the sidecar (`Always`, `IfNotPresent`, `Never`); None: the
    /// cluster's default for the tag.
    pub pull_policy: Option<String>,
}

impl AgentImage {
    /// An agent image with the cluster's default pull policy.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            pull_policy: None,
        }
    }
}

/// Size limit of the shared `emptyDir` (the agent's binary and its run directory).
pub const VOLUME_SIZE_LIMIT: &str = "128Mi";
/// Seconds added to `drainTimeoutSeconds` for the pod's termination grace period.
pub const GRACE_MARGIN_SECONDS: i64 = 10;
/// The grace period Kubernetes gives a pod that does not set one.
const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Renders the hot-swap pod of `template` for `hot_swap.container`, running `revision` in slot
/// `a`; slot `b` starts parked. The template's metadata and every field the layout does not
/// own are kept.
pub fn render(
    template: &PodTemplateSpec,
    hot_swap: &HotSwapStrategy,
    agent: &AgentImage,
    revision: &str,
) -> Result<PodTemplateSpec, RenderError> {
    let checked = check::check(template, &hot_swap.container)?;
    let mut out = template.clone();
    let spec = out.spec.get_or_insert_with(Default::default);
    let user = spec.containers[checked.index].clone();

    let slot_a = slot(&user, Slot::A, &checked.ports);
    let mut slot_b = slot(&user, Slot::B, &checked.ports);
    slot_b.name = SLOT_B_CONTAINER.to_string();
    slot_b.image = Some(agent.image.clone());
    slot_b.ports = None;
    spec.containers[checked.index] = slot_a;
    spec.containers.insert(checked.index + 1, slot_b);

    let sidecar = sidecar(&user, hot_swap, agent, &checked.ports);
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .push(sidecar);
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: VOLUME.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: None,
            size_limit: Some(Quantity(VOLUME_SIZE_LIMIT.to_string())),
        }),
        ..Default::default()
    });
    let drain = i64::from(hot_swap.drain_timeout_seconds) + GRACE_MARGIN_SECONDS;
    let grace = spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    spec.termination_grace_period_seconds = Some(grace.max(drain));

    let annotations = out
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new);
    for (k, v) in [
        (ACTIVE_SLOT_ANNOTATION, Slot::A.as_str()),
        (GENERATION_ANNOTATION, "0"),
        (Slot::A.revision_annotation(), revision),
        (Slot::B.revision_annotation(), ""),
    ] {
        annotations.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The user's container as `slot` runs it: the command wrapped by `zdr-agent exec` (arguments
/// folded into it), the slot's environment and the shared volume added, readiness asked of the
/// sidecar, liveness and startup probes kept with named ports resolved.
fn slot(user: &Container, slot: Slot, ports: &BTreeMap<String, i32>) -> Container {
    let mut c = user.clone();
    let mut command: Vec<String> = [AGENT_BIN, "exec", "--dir", RUN_DIR, "--"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    command.extend(user.command.iter().flatten().cloned());
    command.extend(user.args.iter().flatten().cloned());
    c.command = Some(command);
    c.args = None;
    c.env.get_or_insert_with(Vec::new).extend(slot_env(slot));
    c.volume_mounts.get_or_insert_with(Vec::new).push(mount());
    c.readiness_probe = Some(Probe {
        http_get: Some(HTTPGetAction {
            path: Some(slot.ready_path().to_string()),
            port: IntOrString::Int(i32::from(STATUS_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(1),
        failure_threshold: Some(1),
        ..Default::default()
    });
    c.liveness_probe = user.liveness_probe.as_ref().map(|p| resolved(p, ports));
    c.startup_probe = user.startup_probe.as_ref().map(|p| resolved(p, ports));
    c
}

/// The environment a slot's launcher reads its claim from (`contract::pod::Claim`).
fn slot_env(slot: Slot) -> Vec<EnvVar> {
    let from_annotation = |name: &str, annotation: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: format!("metadata.annotations['{annotation}']"),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    vec![
        EnvVar {
            name: ENV_SLOT.to_string(),
            value: Some(slot.as_str().to_string()),
            ..Default::default()
        },
        from_annotation(ENV_VERSION, slot.revision_annotation()),
        from_annotation(ENV_ACTIVE_SLOT, ACTIVE_SLOT_ANNOTATION),
        from_annotation(ENV_GENERATION, GENERATION_ANNOTATION),
    ]
}

fn mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.to_string(),
        mount_path: MOUNT_PATH.to_string(),
        ..Default::default()
    }
}

/// The agent's native sidecar: installs its binary for the slots, holds the container's TCP
/// ports, and carries the user's readiness probe (or its own `/readyz`).
fn sidecar(
    user: &Container,
    hot_swap: &HotSwapStrategy,
    agent: &AgentImage,
    ports: &BTreeMap<String, i32>,
) -> Container {
    let mut command: Vec<String> = [
        AGENT_IMAGE_BIN,
        "sidecar",
        "--dir",
        RUN_DIR,
        "--install",
        AGENT_BIN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in user.ports.iter().flatten() {
        command.push("--listen".into());
        command.push(format!("{}=0.0.0.0:{}", listen_name(p), p.container_port));
    }
    command.extend([
        "--http-addr".to_string(),
        format!("0.0.0.0:{STATUS_PORT}"),
        "--drain-timeout-seconds".to_string(),
        hot_swap.drain_timeout_seconds.to_string(),
    ]);
    let status_get = |path: &str| HTTPGetAction {
        path: Some(path.to_string()),
        port: IntOrString::Int(i32::from(STATUS_PORT)),
        ..Default::default()
    };
    let readiness = match &user.readiness_probe {
        Some(p) => resolved(p, ports),
        None => Probe {
            http_get: Some(status_get("/readyz")),
            period_seconds: Some(1),
            ..Default::default()
        },
    };
    Container {
        name: AGENT_CONTAINER.to_string(),
        image: Some(agent.image.clone()),
        image_pull_policy: agent.pull_policy.clone(),
        restart_policy: Some("Always".to_string()),
        command: Some(command),
        // App containers start only once the sidecar is live, so the binary is installed.
        startup_probe: Some(Probe {
            http_get: Some(status_get("/livez")),
            period_seconds: Some(1),
            failure_threshold: Some(60),
            ..Default::default()
        }),
        readiness_probe: Some(readiness),
        volume_mounts: Some(vec![mount()]),
        resources: Some(sidecar_resources()),
        security_context: Some(restricted()),
        ..Default::default()
    }
}

/// The name a port is held under: its own, or `port-<number>`.
fn listen_name(p: &ContainerPort) -> String {
    match &p.name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("port-{}", p.container_port),
    }
}

fn sidecar_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), q("10m")),
            ("memory".to_string(), q("16Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), q("64Mi"))])),
        ..Default::default()
    }
}

/// A security context the `restricted` Pod Security Standard admits.
fn restricted() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(65532),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// `probe` with a named port replaced by its number (a name resolves only against the ports of
/// the container that carries the probe). Names were checked to exist.
fn resolved(probe: &Probe, ports: &BTreeMap<String, i32>) -> Probe {
    let mut p = probe.clone();
    let resolve = |port: &mut IntOrString| {
        if let IntOrString::String(name) = port
            && let Some(n) = ports.get(name.as_str())
        {
            *port = IntOrString::Int(*n);
        }
    };
    if let Some(h) = p.http_get.as_mut() {
        resolve(&mut h.port);
    }
    if let Some(t) = p.tcp_socket.as_mut() {
        resolve(&mut t.port);
    }
    p
}

#[cfg(test)]
mod tests;
