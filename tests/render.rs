//! Rendering hot-swap pods (`zdr::hotswap::render`) from real templates: golden files under
//! tests/render/ (`NAME.yaml` in, `NAME.rendered.yaml` out; examples/hotswap.yaml too), and
//! properties over generated containers. `ZDR_BLESS=1 cargo test --test render` rewrites the
//! golden files; review their diff before committing it.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
    TCPSocketAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use serde_json::Value;
use zdr::contract::pod::{AGENT_CONTAINER, SLOT_B_CONTAINER, Slot};
use zdr::crd::{HotSwapStrategy, ZeroDowntimeRollout};
use zdr::hotswap::{AgentImage, render};

const AGENT: &str = "ghcr.io/zdr-dev/zdr:0.1.0";
const REVISION: &str = "5f7c9d8b6";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rollout of a manifest file.
fn rollout(path: &Path) -> ZeroDowntimeRollout {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The golden text of `input`'s rendering.
fn rendered(input: &Path) -> String {
    let zdr = rollout(input);
    let hs = zdr
        .spec
        .strategy
        .hot_swap
        .as_ref()
        .expect("strategy.hotSwap");
    let out = render(&zdr.spec.template, hs, &AgentImage::new(AGENT), REVISION)
        .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
    let yaml = serde_saphyr::to_string(&out).expect("a pod template serializes to YAML");
    format!(
        "# Rendered from {} by tests/render.rs (ZDR_BLESS=1 rewrites it).\n{yaml}",
        input.strip_prefix(root()).unwrap_or(input).display()
    )
}

/// Whether `text` is what the golden file holds; a missing file is an error saying how to
/// write it.
fn matches_golden(text: &str, golden: &Path) -> bool {
    let want = std::fs::read_to_string(golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run ZDR_BLESS=1 cargo test --test render to write it)",
            golden.display()
        )
    });
    want == text
}

/// Renders `input` and compares it with `golden` (or rewrites it under `ZDR_BLESS=1`).
fn golden(input: &Path, golden: &Path) {
    let text = rendered(input);
    if std::env::var_os("ZDR_BLESS").is_some() {
        std::fs::write(golden, &text).expect("write golden file");
        return;
    }
    assert!(
        matches_golden(&text, golden),
        "{} differs from the rendering of {} (ZDR_BLESS=1 rewrites it; review the diff):\n{text}",
        golden.display(),
        input.display()
    );
}

#[test]
fn golden_minimal() {
    let dir = root().join("tests/render");
    golden(
        &dir.join("minimal.yaml"),
        &dir.join("minimal.rendered.yaml"),
    );
}

#[test]
fn golden_full() {
    let dir = root().join("tests/render");
    golden(&dir.join("full.yaml"), &dir.join("full.rendered.yaml"));
}

#[test]
fn golden_example() {
    golden(
        &root().join("examples/hotswap.yaml"),
        &root().join("tests/render/example-hotswap.rendered.yaml"),
    );
}

#[test]
fn a_golden_mismatch_is_seen() {
    let dir = root().join("tests/render");
    let minimal = rendered(&dir.join("minimal.yaml"));
    assert!(!matches_golden(&minimal, &dir.join("full.rendered.yaml")));
    // One byte off is a mismatch too.
    if std::env::var_os("ZDR_BLESS").is_none() {
        let golden = dir.join("minimal.rendered.yaml");
        assert!(matches_golden(&minimal, &golden));
        assert!(!matches_golden(
            &minimal.replacen("8080", "8081", 1),
            &golden
        ));
    }
}

fn hot_swap(drain: i32) -> HotSwapStrategy {
    serde_json::from_value(serde_json::json!({"container": "app", "drainTimeoutSeconds": drain}))
        .unwrap()
}

prop_compose! {
    fn ports()(nums in prop::collection::btree_set(1..65535i32, 1..4), named in any::<[bool; 4]>())
        -> Vec<ContainerPort> {
        nums.into_iter()
            .filter(|n| *n != 9901)
            .enumerate()
            .map(|(i, n)| ContainerPort {
                container_port: n,
                name: named[i].then(|| format!("p{i}")),
                ..Default::default()
            })
            .collect()
    }
}

/// A probe of one of `ports` (by name when it has one), or none.
fn probe(ports: &[ContainerPort], pick: usize, kind: u8) -> Option<Probe> {
    let p = &ports[pick % ports.len()];
    let port = match &p.name {
        Some(n) => IntOrString::String(n.clone()),
        None => IntOrString::Int(p.container_port),
    };
    match kind % 3 {
        0 => None,
        1 => Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port,
                ..Default::default()
            }),
            period_seconds: Some(3),
            ..Default::default()
        }),
        _ => Some(Probe {
            tcp_socket: Some(TCPSocketAction { port, host: None }),
            ..Default::default()
        }),
    }
}

prop_compose! {
    fn container()(
        ports in ports().prop_filter("a port", |p| !p.is_empty()),
        command in prop::collection::vec("[a-z/]{1,8}", 1..3),
        args in prop::option::of(prop::collection::vec("[a-z=$()-]{0,8}", 0..3)),
        env in prop::collection::vec(("[A-Y][A-Z_]{0,6}", "[a-z0-9]{0,5}"), 0..3),
        mounts in prop::collection::vec("/[a-y]{1,6}", 0..3),
        picks in any::<[usize; 3]>(),
        kinds in any::<[u8; 3]>(),
        working_dir in prop::option::of("/[a-z]{1,5}"),
        pull in prop::option::of(prop::sample::select(vec!["Always", "IfNotPresent"])),
    ) -> Container {
        Container {
            name: "app".into(),
            image: Some("registry.example/app:1".into()),
            image_pull_policy: pull.map(str::to_string),
            command: Some(command),
            args,
            working_dir,
            env: Some(env.into_iter().map(|(name, value)| EnvVar {
                name, value: Some(value), ..Default::default()
            }).collect()),
            volume_mounts: Some(mounts.into_iter().enumerate().map(|(i, mount_path)| VolumeMount {
                name: format!("v{i}"), mount_path, ..Default::default()
            }).collect()),
            readiness_probe: probe(&ports, picks[0], kinds[0]),
            liveness_probe: probe(&ports, picks[1], kinds[1]),
            startup_probe: probe(&ports, picks[2], kinds[2]),
            ports: Some(ports),
            ..Default::default()
        }
    }
}

fn as_json(c: &Container) -> serde_json::Map<String, Value> {
    match serde_json::to_value(c).unwrap() {
        Value::Object(m) => m,
        _ => unreachable!("a container serializes to an object"),
    }
}

/// `c` without the given fields.
fn without(c: &Container, fields: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = as_json(c);
    for f in fields {
        m.remove(*f);
    }
    m
}

proptest! {
    #[test]
    fn rendering_keeps_the_user_container(user in container(), drain in 0..600i32) {
        let template = PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec { containers: vec![user.clone()], ..Default::default() }),
        };
        let out = render(&template, &hot_swap(drain), &AgentImage::new(AGENT), "r").unwrap();
        let spec = out.spec.unwrap();
        prop_assert_eq!(spec.containers.len(), 2);
        let (a, b) = (&spec.containers[0], &spec.containers[1]);

        // Slot a keeps every field of the user's container but command, args and probes; its
        // env and mounts keep the user's first, in order.
        let changed = ["command", "args", "readinessProbe", "livenessProbe", "startupProbe",
                       "env", "volumeMounts"];
        prop_assert_eq!(without(a, &changed), without(&user, &changed));
        let user_env = user.env.clone().unwrap_or_default();
        prop_assert_eq!(&a.env.as_ref().unwrap()[..user_env.len()], &user_env[..]);
        let user_mounts = user.volume_mounts.clone().unwrap_or_default();
        prop_assert_eq!(&a.volume_mounts.as_ref().unwrap()[..user_mounts.len()], &user_mounts[..]);
        let mut wrapped: Vec<String> = user.command.clone().unwrap();
        wrapped.extend(user.args.clone().unwrap_or_default());
        let cmd = a.command.clone().unwrap();
        prop_assert_eq!(&cmd[cmd.len() - wrapped.len()..], &wrapped[..]);
        prop_assert!(a.args.is_none());

        // Slot b is slot a but for its name, image, ports, slot env and readiness path.
        let mut b_as_a = b.clone();
        b_as_a.name = a.name.clone();
        b_as_a.image = a.image.clone();
        b_as_a.ports = a.ports.clone();
        for (ea, eb) in a.env.iter().flatten().zip(b_as_a.env.iter_mut().flatten()) {
            if ea.name == "ZDR_SLOT" || ea.name == "ZDR_VERSION" {
                *eb = ea.clone();
            }
        }
        let path = |c: &mut Container| c.readiness_probe.as_mut().unwrap()
            .http_get.as_mut().unwrap().path.take();
        let b_path = path(&mut b_as_a);
        prop_assert_eq!(b_path.as_deref(), Some(Slot::B.ready_path()));
        let mut a2 = a.clone();
        let a_path = path(&mut a2);
        prop_assert_eq!(a_path.as_deref(), Some(Slot::A.ready_path()));
        prop_assert_eq!(as_json(&b_as_a), as_json(&a2));
        prop_assert_eq!(b.name.as_str(), SLOT_B_CONTAINER);
        prop_assert_eq!(b.image.as_deref(), Some(AGENT));
        prop_assert!(b.ports.is_none());

        // Every port of the user's container is held by the sidecar.
        let inits = spec.init_containers.unwrap();
        let sidecar = inits.iter().find(|c| c.name == AGENT_CONTAINER).unwrap();
        let command = sidecar.command.clone().unwrap();
        for p in user.ports.iter().flatten() {
            let held = command.windows(2).any(|w| w[0] == "--listen"
                && w[1].ends_with(&format!("=0.0.0.0:{}", p.container_port)));
            prop_assert!(held, "port {} not held: {:?}", p.container_port, command);
        }
        // No probe keeps a port name: names resolve only on the container that declares them.
        for c in inits.iter().chain(&spec.containers) {
            for p in [&c.readiness_probe, &c.liveness_probe, &c.startup_probe].into_iter().flatten() {
                let port = p.http_get.as_ref().map(|h| &h.port)
                    .or(p.tcp_socket.as_ref().map(|t| &t.port));
                prop_assert!(!matches!(port, Some(IntOrString::String(_))), "{:?}", p);
            }
        }
        prop_assert!(spec.termination_grace_period_seconds.unwrap() >= i64::from(drain) + 10);
    }
}
