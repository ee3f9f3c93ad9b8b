//! Unit tests of rendering: every [`RenderError`] with its path and message, and the layout's
//! details that the golden files (tests/render.rs) do not spell out as assertions.

use super::*;
use serde_json::{Value, json};

fn hot_swap(container: &str) -> HotSwapStrategy {
    serde_json::from_value(json!({"container": container, "drainTimeoutSeconds": 30})).unwrap()
}

fn template(spec: Value) -> PodTemplateSpec {
    serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": spec})).unwrap()
}

/// A renderable app container, changed by `edit`.
fn app(edit: impl FnOnce(&mut Value)) -> PodTemplateSpec {
    let mut c = json!({"name": "app", "image": "web:1", "command": ["/web"],
                       "ports": [{"name": "http", "containerPort": 8080}]});
    edit(&mut c);
    template(json!({"containers": [{"name": "log", "image": "log:1"}, c]}))
}

fn err(t: &PodTemplateSpec) -> RenderError {
    render(t, &hot_swap("app"), &AgentImage::new("zdr:1"), "rev1").unwrap_err()
}

#[test]
fn every_render_error_names_its_field() {
    let cases: Vec<(PodTemplateSpec, &str, &str)> = vec![
        (
            template(json!({"containers": [{"name": "web", "image": "w"}]})),
            "spec.strategy.hotSwap.container",
            "the template has no container app",
        ),
        (
            app(|c| c["command"] = json!([])),
            "spec.template.spec.containers[1].command",
            "needs an explicit command",
        ),
        (
            app(|c| c["readinessProbe"] = json!({"exec": {"command": ["true"]}})),
            "spec.template.spec.containers[1].readinessProbe.exec",
            "an exec probe would run in one slot's image only",
        ),
        (
            app(|c| c["livenessProbe"] = json!({"exec": {"command": ["true"]}})),
            "spec.template.spec.containers[1].livenessProbe.exec",
            "exec probe",
        ),
        (
            app(|c| c["startupProbe"] = json!({"exec": {"command": ["true"]}})),
            "spec.template.spec.containers[1].startupProbe.exec",
            "exec probe",
        ),
        (
            app(|c| c["startupProbe"] = json!({"tcpSocket": {"port": "admin"}})),
            "spec.template.spec.containers[1].startupProbe",
            "the probe's port \"admin\" is not a named port of the container",
        ),
        (
            app(|c| {
                c.as_object_mut()
                    .unwrap()
                    .remove("ports")
                    .map(|_| ())
                    .unwrap()
            }),
            "spec.template.spec.containers[1].ports",
            "at least one TCP containerPort",
        ),
        (
            app(|c| c["ports"][0]["protocol"] = json!("UDP")),
            "spec.template.spec.containers[1].ports[0].protocol",
            "UDP ports cannot be held",
        ),
        (
            app(|c| c["ports"] = json!([{"containerPort": 8080}, {"containerPort": 9901}])),
            "spec.template.spec.containers[1].ports[1].containerPort",
            "port 9901 is the zdr-agent sidecar's status port",
        ),
        (
            template(
                json!({"containers": [{"name": "app", "image": "w", "command": ["/w"],
                                            "ports": [{"containerPort": 80}]}],
                            "initContainers": [{"name": "zdr-agent", "image": "x"}]}),
            ),
            "spec.template.spec.initContainers[0].name",
            "\"zdr-agent\" is the name of a container zdr adds",
        ),
        (
            app(|_| ()).tap(|t| {
                t.spec.as_mut().unwrap().containers[0].name = "zdr-slot-b".into();
            }),
            "spec.template.spec.containers[0].name",
            "\"zdr-slot-b\" is the name of a container zdr adds",
        ),
        (
            app(|_| ()).tap(|t| {
                t.spec.as_mut().unwrap().volumes = Some(vec![
                    serde_json::from_value(json!({"name": "zdr-agent"})).unwrap(),
                ]);
            }),
            "spec.template.spec.volumes[0].name",
            "\"zdr-agent\" is the name of the volume zdr adds",
        ),
        (
            app(|c| {
                c["volumeMounts"] = json!([{"name": "d", "mountPath": "/data"},
                                           {"name": "e", "mountPath": "/zdr/x"}])
            }),
            "spec.template.spec.containers[1].volumeMounts[1].mountPath",
            "\"/zdr/x\" is at or under /zdr",
        ),
        (
            app(|c| {
                c["env"] = json!([{"name": "A", "value": "1"}, {"name": "ZDR_SLOT", "value": "b"}])
            }),
            "spec.template.spec.containers[1].env[1].name",
            "ZDR_SLOT is set by zdr in hot-swap pods",
        ),
    ];
    for (t, path, words) in cases {
        let e = err(&t);
        assert_eq!(e.path(), path, "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("{path}: ")), "{text}");
        assert!(text.contains(words), "{text} lacks {words:?}");
    }
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for PodTemplateSpec {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[test]
fn an_absent_command_is_no_command_too() {
    let t = app(|c| {
        c.as_object_mut().unwrap().remove("command");
    });
    assert_eq!(err(&t), RenderError::NoCommand { index: 1 });
}

#[test]
fn named_probe_ports_resolve_to_numbers_on_every_container() {
    let t = app(|c| {
        c["readinessProbe"] = json!({"httpGet": {"path": "/ok", "port": "http"}});
        c["livenessProbe"] = json!({"tcpSocket": {"port": "http"}});
    });
    let out = render(&t, &hot_swap("app"), &AgentImage::new("zdr:1"), "r").unwrap();
    let v = serde_json::to_value(&out).unwrap();
    let sidecar = &v["spec"]["initContainers"][0];
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["port"], 8080);
    assert_eq!(sidecar["readinessProbe"]["httpGet"]["path"], "/ok");
    for slot in [&v["spec"]["containers"][1], &v["spec"]["containers"][2]] {
        assert_eq!(slot["livenessProbe"]["tcpSocket"]["port"], 8080);
        assert_eq!(slot["readinessProbe"]["httpGet"]["port"], 9901);
    }
    assert_eq!(v["spec"]["containers"][2]["name"], "zdr-slot-b");
    // The other container is untouched.
    assert_eq!(
        v["spec"]["containers"][0],
        json!({"name": "log", "image": "log:1"})
    );
}

#[test]
fn grace_period_covers_the_drain() {
    let grace = |user: Option<i64>, drain: i32| {
        let mut t = app(|_| ());
        t.spec.as_mut().unwrap().termination_grace_period_seconds = user;
        let mut hs = hot_swap("app");
        hs.drain_timeout_seconds = drain;
        let out = render(&t, &hs, &AgentImage::new("zdr:1"), "r").unwrap();
        out.spec.unwrap().termination_grace_period_seconds.unwrap()
    };
    assert_eq!(grace(None, 5), 30);
    assert_eq!(grace(None, 30), 40);
    assert_eq!(grace(Some(100), 30), 100);
    assert_eq!(grace(Some(1), 0), 10);
}

#[test]
fn the_agent_image_and_its_pull_policy_go_to_the_sidecar_and_the_parked_slot() {
    let agent = AgentImage {
        image: "registry.example/zdr:9".into(),
        pull_policy: Some("Always".into()),
    };
    let out = render(&app(|_| ()), &hot_swap("app"), &agent, "r").unwrap();
    let spec = out.spec.unwrap();
    let sidecar = &spec.init_containers.unwrap()[0];
    assert_eq!(sidecar.image.as_deref(), Some("registry.example/zdr:9"));
    assert_eq!(sidecar.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        spec.containers[2].image.as_deref(),
        Some("registry.example/zdr:9")
    );
    assert_eq!(spec.containers[1].image.as_deref(), Some("web:1"));
}
