//! Hot-swap eligibility (pure, no Kubernetes I/O): does a template change touch only the image of
//! the named container, so an in-place swap could carry it, or must pods be replaced, and why.
//!
//! The specs are compared as JSON values with the named container's image made equal, so fields
//! Kubernetes adds later are covered without listing them here. Template labels and annotations
//! may differ freely.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Map, Value};

/// Which path a template change takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapPath {
    /// Only the named container's image changed. Whether the template can be rendered as a
    /// hot-swap pod at all is [`crate::hotswap::render`]'s question, asked by validation.
    InPlace {
        /// The container swapped.
        container: String,
        /// Its image in the old template.
        from_image: String,
        /// Its image in the new template.
        to_image: String,
    },
    /// Pods must be replaced.
    Replace(NotEligible),
}

/// The old or the new template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The running (stable) template.
    Old,
    /// The update's template.
    New,
}

/// Why a change cannot be swapped in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotEligible {
    /// The named container is not in one of the templates.
    ContainerMissing {
        /// The container named by `hotSwap.container`.
        container: String,
        /// Where it is missing.
        side: Side,
    },
    /// The named container's image did not change (nothing to swap).
    ImageUnchanged {
        /// The container.
        container: String,
    },
    /// Another container changed (or was added or removed).
    OtherContainerChanged {
        /// Its name.
        container: String,
    },
    /// A field of the named container other than its image changed.
    ContainerFieldChanged {
        /// The container.
        container: String,
        /// The field, as in the manifest (`env`, `args`, `readinessProbe`, ...).
        field: String,
    },
    /// A pod-level field changed.
    PodFieldChanged {
        /// The field, as in the manifest (`volumes`, `initContainers`, ...).
        field: String,
    },
}

/// Classifies the change from `old` to `new` for a hot swap of `container`.
pub fn classify(old: &PodTemplateSpec, new: &PodTemplateSpec, container: &str) -> SwapPath {
    match check(old, new, container) {
        Ok((from_image, to_image)) => SwapPath::InPlace {
            container: container.to_string(),
            from_image,
            to_image,
        },
        Err(why) => SwapPath::Replace(why),
    }
}

fn check(
    old: &PodTemplateSpec,
    new: &PodTemplateSpec,
    container: &str,
) -> Result<(String, String), NotEligible> {
    let mut old_spec = spec_value(old);
    let new_spec = spec_value(new);
    let missing = |side| NotEligible::ContainerMissing {
        container: container.to_string(),
        side,
    };
    let old_c = find(&old_spec, container).ok_or_else(|| missing(Side::Old))?;
    let new_c = find(&new_spec, container).ok_or_else(|| missing(Side::New))?;
    let from = image(old_c);
    let to = image(new_c);
    if let Some(c) = find_mut(&mut old_spec, container) {
        match new_c.get("image") {
            Some(img) => c.insert("image".into(), img.clone()),
            None => c.remove("image"),
        };
    }
    if old_spec != new_spec {
        return Err(first_difference(&old_spec, &new_spec, container));
    }
    if from == to {
        return Err(NotEligible::ImageUnchanged {
            container: container.to_string(),
        });
    }
    Ok((from, to))
}

/// The pod spec as JSON (an absent spec as an empty object).
fn spec_value(t: &PodTemplateSpec) -> Value {
    t.spec
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_else(|| Value::Object(Map::new()))
}

fn containers(spec: &Value) -> &[Value] {
    spec.get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn name_of(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn find<'a>(spec: &'a Value, container: &str) -> Option<&'a Map<String, Value>> {
    containers(spec)
        .iter()
        .find(|c| name_of(c) == container)
        .and_then(Value::as_object)
}

fn find_mut<'a>(spec: &'a mut Value, container: &str) -> Option<&'a mut Map<String, Value>> {
    spec.get_mut("containers")?
        .as_array_mut()?
        .iter_mut()
        .find(|c| name_of(c) == container)?
        .as_object_mut()
}

fn image(c: &Map<String, Value>) -> String {
    c.get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The first field that differs between two specs that are known to differ.
fn first_difference(old: &Value, new: &Value, container: &str) -> NotEligible {
    let Some(field) = first_key(old, new) else {
        return NotEligible::PodFieldChanged {
            field: "spec".into(),
        };
    };
    if field != "containers" {
        return NotEligible::PodFieldChanged { field };
    }
    let (o, n) = (containers(old), containers(new));
    for c in o.iter().chain(n) {
        let name = name_of(c);
        let other = |list: &[Value]| list.iter().find(|x| name_of(x) == name).cloned();
        let (a, b) = (other(o), other(n));
        if a == b {
            continue;
        }
        if name != container {
            return NotEligible::OtherContainerChanged {
                container: name.to_string(),
            };
        }
        let field = a
            .as_ref()
            .zip(b.as_ref())
            .and_then(|(a, b)| first_key(a, b))
            .unwrap_or_else(|| "containers".into());
        return NotEligible::ContainerFieldChanged {
            container: container.to_string(),
            field,
        };
    }
    // Same containers, other order.
    NotEligible::PodFieldChanged {
        field: "containers".into(),
    }
}

/// The first key (in sorted order) whose values differ between two JSON objects.
fn first_key(a: &Value, b: &Value) -> Option<String> {
    let empty = Map::new();
    let a = a.as_object().unwrap_or(&empty);
    let b = b.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).cloned()
}

#[cfg(test)]
mod tests;
