//! What makes a template unrenderable for a hot swap ([`RenderError`]), each with the field
//! path a user fixes; the messages are in [`crate::crd::hot_swap::render_error`].

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodTemplateSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::contract::pod::{
    AGENT_CONTAINER, ENV_ACTIVE_SLOT, ENV_GENERATION, ENV_SLOT, ENV_VERSION, MOUNT_PATH,
    SLOT_B_CONTAINER, STATUS_PORT, VOLUME,
};

/// One of a container's probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind {
    /// `readinessProbe`.
    Readiness,
    /// `livenessProbe`.
    Liveness,
    /// `startupProbe`.
    Startup,
}

impl ProbeKind {
    /// Every kind, in manifest order.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Readiness,
        ProbeKind::Liveness,
        ProbeKind::Startup,
    ];

    /// The field name, as in the manifest.
    pub fn field(self) -> &'static str {
        match self {
            ProbeKind::Readiness => "readinessProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Startup => "startupProbe",
        }
    }

    fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            ProbeKind::Readiness => c.readiness_probe.as_ref(),
            ProbeKind::Liveness => c.liveness_probe.as_ref(),
            ProbeKind::Startup => c.startup_probe.as_ref(),
        }
    }
}

/// Why a template cannot be rendered as a hot-swap pod. `index` is the position of the
/// hot-swap container in `spec.template.spec.containers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenderError {
    /// No container of that name in the template.
    ContainerMissing {
        /// `hotSwap.container`.
        container: String,
    },
    /// The container has no explicit `command` to wrap (image entrypoints are not readable).
    NoCommand {
        /// Its index.
        index: usize,
    },
    /// A probe of the container runs `exec` (it would run in one slot's image only).
    ExecProbe {
        /// Its index.
        index: usize,
        /// Which probe.
        probe: ProbeKind,
    },
    /// A probe names a port the container does not declare.
    UnknownProbePort {
        /// Its index.
        index: usize,
        /// Which probe.
        probe: ProbeKind,
        /// The port name.
        port: String,
    },
    /// The container declares no TCP `containerPort` for the sidecar to hold.
    NoTcpPort {
        /// Its index.
        index: usize,
    },
    /// A port of the container is not TCP (UDP, SCTP).
    NotTcp {
        /// Its index.
        index: usize,
        /// The port's index in `ports`.
        port: usize,
        /// Its protocol.
        protocol: String,
    },
    /// A port of the container is the sidecar's status port.
    StatusPort {
        /// Its index.
        index: usize,
        /// The port's index in `ports`.
        port: usize,
    },
    /// A container or init container already has a name the layout uses.
    ContainerName {
        /// In `initContainers` (else `containers`).
        init: bool,
        /// Its index in that list.
        index: usize,
        /// The name.
        name: String,
    },
    /// A volume already has the layout's volume name.
    VolumeName {
        /// Its index in `volumes`.
        index: usize,
    },
    /// A volume mount of the container is at or under the layout's mount path.
    MountPath {
        /// Its index.
        index: usize,
        /// The mount's index in `volumeMounts`.
        mount: usize,
        /// Its path.
        path: String,
    },
    /// The container sets an environment variable the layout sets.
    EnvName {
        /// Its index.
        index: usize,
        /// The variable's index in `env`.
        env: usize,
        /// Its name.
        name: String,
    },
}

const CONTAINERS: &str = "spec.template.spec.containers";

impl RenderError {
    /// The field to fix, as a path in the rollout (`spec.template.spec.containers[0].command`).
    pub fn path(&self) -> String {
        let c = |i: &usize| format!("{CONTAINERS}[{i}]");
        match self {
            RenderError::ContainerMissing { .. } => "spec.strategy.hotSwap.container".into(),
            RenderError::NoCommand { index } => format!("{}.command", c(index)),
            RenderError::ExecProbe { index, probe } => {
                format!("{}.{}.exec", c(index), probe.field())
            }
            RenderError::UnknownProbePort { index, probe, .. } => {
                format!("{}.{}", c(index), probe.field())
            }
            RenderError::NoTcpPort { index } => format!("{}.ports", c(index)),
            RenderError::NotTcp { index, port, .. } => {
                format!("{}.ports[{port}].protocol", c(index))
            }
            RenderError::StatusPort { index, port } => {
                format!("{}.ports[{port}].containerPort", c(index))
            }
            RenderError::ContainerName { init, index, .. } => {
                let list = if *init {
                    "initContainers"
                } else {
                    "containers"
                };
                format!("spec.template.spec.{list}[{index}].name")
            }
            RenderError::VolumeName { index } => {
                format!("spec.template.spec.volumes[{index}].name")
            }
            RenderError::MountPath { index, mount, .. } => {
                format!("{}.volumeMounts[{mount}].mountPath", c(index))
            }
            RenderError::EnvName { index, env, .. } => format!("{}.env[{env}].name", c(index)),
        }
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.path(),
            crate::crd::hot_swap::render_error(self)
        )
    }
}

impl std::error::Error for RenderError {}

/// What rendering needs from a template that passed the checks.
pub(super) struct Checked {
    /// Index of the hot-swap container.
    pub index: usize,
    /// Its named ports, name to number.
    pub ports: BTreeMap<String, i32>,
}

/// Checks `template` for a hot swap of `container`; the first problem in manifest order.
pub(super) fn check(template: &PodTemplateSpec, container: &str) -> Result<Checked, RenderError> {
    let empty = Default::default();
    let spec = template.spec.as_ref().unwrap_or(&empty);
    let index = spec
        .containers
        .iter()
        .position(|c| c.name == container)
        .ok_or_else(|| RenderError::ContainerMissing {
            container: container.to_string(),
        })?;
    let clash = |c: &Container| c.name == AGENT_CONTAINER || c.name == SLOT_B_CONTAINER;
    let lists = [
        (true, spec.init_containers.as_deref()),
        (false, Some(&spec.containers[..])),
    ];
    for (init, list) in lists {
        if let Some((i, c)) = list
            .unwrap_or_default()
            .iter()
            .enumerate()
            .find(|(_, c)| clash(c))
        {
            return Err(RenderError::ContainerName {
                init,
                index: i,
                name: c.name.clone(),
            });
        }
    }
    if let Some(i) = spec.volumes.iter().flatten().position(|v| v.name == VOLUME) {
        return Err(RenderError::VolumeName { index: i });
    }
    let c = &spec.containers[index];
    if c.command.as_ref().is_none_or(Vec::is_empty) {
        return Err(RenderError::NoCommand { index });
    }
    let ports = ports(c, index)?;
    for probe in ProbeKind::ALL {
        probe_ok(c, index, probe, &ports)?;
    }
    for (mount, m) in c.volume_mounts.iter().flatten().enumerate() {
        let path = m.mount_path.trim_end_matches('/');
        if path == MOUNT_PATH || path.starts_with(&format!("{MOUNT_PATH}/")) {
            return Err(RenderError::MountPath {
                index,
                mount,
                path: m.mount_path.clone(),
            });
        }
    }
    let ours = [ENV_SLOT, ENV_VERSION, ENV_ACTIVE_SLOT, ENV_GENERATION];
    if let Some((env, e)) = c
        .env
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, e)| ours.contains(&e.name.as_str()))
    {
        return Err(RenderError::EnvName {
            index,
            env,
            name: e.name.clone(),
        });
    }
    Ok(Checked { index, ports })
}

/// The container's named ports; every port must be TCP and not the status port, and one at
/// least must exist.
fn ports(c: &Container, index: usize) -> Result<BTreeMap<String, i32>, RenderError> {
    let list = c.ports.as_deref().unwrap_or_default();
    if list.is_empty() {
        return Err(RenderError::NoTcpPort { index });
    }
    let mut named = BTreeMap::new();
    for (port, p) in list.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        if protocol != "TCP" {
            return Err(RenderError::NotTcp {
                index,
                port,
                protocol: protocol.to_string(),
            });
        }
        if p.container_port == i32::from(STATUS_PORT) {
            return Err(RenderError::StatusPort { index, port });
        }
        if let Some(name) = p.name.as_ref().filter(|n| !n.is_empty()) {
            named.insert(name.clone(), p.container_port);
        }
    }
    Ok(named)
}

fn probe_ok(
    c: &Container,
    index: usize,
    probe: ProbeKind,
    ports: &BTreeMap<String, i32>,
) -> Result<(), RenderError> {
    let Some(p) = probe.of(c) else {
        return Ok(());
    };
    if p.exec.is_some() {
        return Err(RenderError::ExecProbe { index, probe });
    }
    let named = [
        p.http_get.as_ref().map(|h| &h.port),
        p.tcp_socket.as_ref().map(|t| &t.port),
    ];
    for port in named.into_iter().flatten() {
        if let IntOrString::String(name) = port
            && !ports.contains_key(name)
        {
            return Err(RenderError::UnknownProbePort {
                index,
                probe,
                port: name.clone(),
            });
        }
    }
    Ok(())
}
