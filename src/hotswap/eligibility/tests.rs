//! Unit tests and properties of hot-swap eligibility.

use super::*;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn app(image: &str) -> Container {
    Container {
        name: "app".into(),
        image: Some(image.into()),
        command: Some(vec!["/bin/web".into()]),
        ..Default::default()
    }
}

fn template(containers: Vec<Container>) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers,
            ..Default::default()
        }),
    }
}

fn sidecar() -> Container {
    Container {
        name: "log".into(),
        image: Some("log:1".into()),
        ..Default::default()
    }
}

fn replace(why: NotEligible) -> SwapPath {
    SwapPath::Replace(why)
}

#[test]
fn image_only_is_in_place_and_labels_may_differ() {
    let old = template(vec![app("web:1"), sidecar()]);
    let mut new = template(vec![app("web:2"), sidecar()]);
    new.metadata = Some(ObjectMeta {
        labels: Some(BTreeMap::from([("v".into(), "2".into())])),
        annotations: Some(BTreeMap::from([("a".into(), "b".into())])),
        ..Default::default()
    });
    assert_eq!(
        classify(&old, &new, "app"),
        SwapPath::InPlace {
            container: "app".into(),
            from_image: "web:1".into(),
            to_image: "web:2".into(),
        }
    );
}

#[test]
fn missing_container_names_the_side() {
    let with = template(vec![app("web:1")]);
    let without = template(vec![sidecar()]);
    let missing = |side| {
        replace(NotEligible::ContainerMissing {
            container: "app".into(),
            side,
        })
    };
    assert_eq!(classify(&without, &with, "app"), missing(Side::Old));
    assert_eq!(classify(&with, &without, "app"), missing(Side::New));
    let empty = PodTemplateSpec::default();
    assert_eq!(classify(&empty, &with, "app"), missing(Side::Old));
}

#[test]
fn same_image_is_nothing_to_swap() {
    let t = template(vec![app("web:1")]);
    assert_eq!(
        classify(&t, &t, "app"),
        replace(NotEligible::ImageUnchanged {
            container: "app".into()
        })
    );
}

#[test]
fn another_container_changing_is_named() {
    let old = template(vec![app("web:1"), sidecar()]);
    let mut log2 = sidecar();
    log2.image = Some("log:2".into());
    let new = template(vec![app("web:2"), log2]);
    let other = replace(NotEligible::OtherContainerChanged {
        container: "log".into(),
    });
    assert_eq!(classify(&old, &new, "app"), other);
    // Added or removed counts too.
    let added = template(vec![app("web:2"), sidecar()]);
    assert_eq!(
        classify(&template(vec![app("web:1")]), &added, "app"),
        other
    );
    assert_eq!(classify(&old, &template(vec![app("web:2")]), "app"), other);
}

#[test]
fn a_field_of_the_container_is_named() {
    let old = template(vec![app("web:1")]);
    let mut c = app("web:2");
    c.env = Some(vec![EnvVar {
        name: "A".into(),
        value: Some("1".into()),
        ..Default::default()
    }]);
    let field = |f: &str| {
        replace(NotEligible::ContainerFieldChanged {
            container: "app".into(),
            field: f.into(),
        })
    };
    assert_eq!(classify(&old, &template(vec![c]), "app"), field("env"));
    let mut c = app("web:1");
    c.args = Some(vec!["--port=1".into()]);
    assert_eq!(classify(&old, &template(vec![c]), "app"), field("args"));
    let mut c = app("web:2");
    c.readiness_probe = Some(Default::default());
    assert_eq!(
        classify(&old, &template(vec![c]), "app"),
        field("readinessProbe")
    );
}

#[test]
fn a_pod_field_is_named() {
    let old = template(vec![app("web:1")]);
    let mut new = template(vec![app("web:2")]);
    new.spec.as_mut().unwrap().volumes = Some(vec![Volume {
        name: "v".into(),
        ..Default::default()
    }]);
    assert_eq!(
        classify(&old, &new, "app"),
        replace(NotEligible::PodFieldChanged {
            field: "volumes".into()
        })
    );
    let mut new = template(vec![app("web:2")]);
    new.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([("a".into(), "b".into())]));
    assert_eq!(
        classify(&old, &new, "app"),
        replace(NotEligible::PodFieldChanged {
            field: "nodeSelector".into()
        })
    );
    let reordered = template(vec![sidecar(), app("web:2")]);
    assert_eq!(
        classify(&template(vec![app("web:1"), sidecar()]), &reordered, "app"),
        replace(NotEligible::PodFieldChanged {
            field: "containers".into()
        })
    );
}

#[test]
fn a_missing_command_is_not_the_change_s_concern() {
    // Eligibility is about the change; a template without a command is refused by validation
    // (hotswap::render), whatever the change.
    let mut a = app("web:1");
    let mut b = app("web:2");
    a.command = None;
    b.command = None;
    assert!(matches!(
        classify(&template(vec![a]), &template(vec![b]), "app"),
        SwapPath::InPlace { .. }
    ));
}

/// Fields a change may touch, at pod or container level, other than the image.
#[derive(Clone, Debug)]
enum Change {
    Env(String),
    Args(String),
    Port(i32),
    WorkingDir(String),
    NodeName(String),
    Hostname(String),
    Sidecar(String),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        "[a-z]{1,5}".prop_map(Change::Env),
        "[a-z]{1,5}".prop_map(Change::Args),
        (1..65535i32).prop_map(Change::Port),
        "/[a-z]{1,5}".prop_map(Change::WorkingDir),
        "[a-z]{1,5}".prop_map(Change::NodeName),
        "[a-z]{1,5}".prop_map(Change::Hostname),
        "[a-z]{1,5}".prop_map(Change::Sidecar),
    ]
}

fn apply(t: &mut PodTemplateSpec, ch: &Change) {
    let spec = t.spec.as_mut().unwrap();
    let c = &mut spec.containers[0];
    match ch.clone() {
        Change::Env(v) => {
            c.env = Some(vec![EnvVar {
                name: "X".into(),
                value: Some(v),
                ..Default::default()
            }])
        }
        Change::Args(v) => c.args = Some(vec![v]),
        Change::Port(p) => {
            c.ports = Some(vec![k8s_openapi::api::core::v1::ContainerPort {
                container_port: p,
                ..Default::default()
            }])
        }
        Change::WorkingDir(v) => c.working_dir = Some(v),
        Change::NodeName(v) => spec.node_name = Some(v),
        Change::Hostname(v) => spec.hostname = Some(v),
        Change::Sidecar(v) => spec.containers[1].image = Some(v),
    }
}

fn labels() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
    proptest::option::of(proptest::collection::btree_map(
        "[a-z]{1,4}",
        "[a-z]{0,4}",
        0..3,
    ))
}

proptest! {
    #[test]
    fn image_and_metadata_only_is_in_place(
        from in "[a-z]{1,6}:[0-9]", to in "[a-z]{1,6}:[0-9]",
        l1 in labels(), l2 in labels(), a2 in labels(),
    ) {
        prop_assume!(from != to);
        let mut old = template(vec![app(&from), sidecar()]);
        let mut new = template(vec![app(&to), sidecar()]);
        old.metadata = Some(ObjectMeta { labels: l1, ..Default::default() });
        new.metadata = Some(ObjectMeta { labels: l2, annotations: a2, ..Default::default() });
        prop_assert_eq!(
            classify(&old, &new, "app"),
            SwapPath::InPlace { container: "app".into(), from_image: from, to_image: to }
        );
    }

    #[test]
    fn any_other_change_replaces(
        from in "[a-z]{1,6}:[0-9]", to in "[a-z]{1,6}:[0-9]", ch in change(),
    ) {
        let old = template(vec![app(&from), sidecar()]);
        let mut new = template(vec![app(&to), sidecar()]);
        apply(&mut new, &ch);
        let path = classify(&old, &new, "app");
        prop_assert!(matches!(path, SwapPath::Replace(_)), "{:?} gave {:?}", ch, path);
    }
}

#[test]
fn every_reason_reads_as_a_sentence() {
    use crate::crd::hot_swap::{not_eligible, replace_message};
    let cases = [
        (
            NotEligible::ContainerMissing {
                container: "app".into(),
                side: Side::Old,
            },
            "the running template has no container app",
        ),
        (
            NotEligible::ContainerMissing {
                container: "app".into(),
                side: Side::New,
            },
            "the new template has no container app",
        ),
        (
            NotEligible::ImageUnchanged {
                container: "app".into(),
            },
            "the image of container app does not change",
        ),
        (
            NotEligible::OtherContainerChanged {
                container: "log".into(),
            },
            "container log changed too",
        ),
        (
            NotEligible::ContainerFieldChanged {
                container: "app".into(),
                field: "env".into(),
            },
            "container app's env changed",
        ),
        (
            NotEligible::PodFieldChanged {
                field: "volumes".into(),
            },
            "the pod's volumes changed",
        ),
    ];
    for (why, text) in cases {
        assert_eq!(not_eligible(&why), text);
    }
    let why = NotEligible::PodFieldChanged {
        field: "volumes".into(),
    };
    assert_eq!(
        replace_message("app", &not_eligible(&why)),
        "this update is not swapped in place in container app: the pod's volumes changed: pods are replaced, drained first"
    );
}
