//! Offline checks of a manifest, the same the API server and the controller would make:
//! the generated CRD's structural schema ([`structural`]), its CEL rules (kube's client-side CEL
//! interpreter, schema defaults applied first, as admission does), then the controller's own
//! validation ([`crate::validate`]). One line per problem, naming the field. `kubectl zdr
//! validate` prints them and `kubectl zdr plan` refuses a manifest that has any.

pub mod structural;

use std::cell::RefCell;

use kube::CustomResourceExt;
use kube::core::cel::{CompiledSchema, ErrorKind, compile_schema, validate_compiled};
use serde_json::Value;

use crate::crd::{GROUP, ZeroDowntimeRollout};

/// The apiVersion of every ZeroDowntimeRollout this build knows.
pub const API_VERSION: &str = "zdr.dev/v1alpha1";

/// The kind the checks are for.
pub const KIND: &str = "ZeroDowntimeRollout";

/// Who would refuse or report a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The API server, from the CRD's structural schema (types, required, bounds, unknown fields).
    Schema,
    /// The API server, from one of the CRD's CEL rules (`x-kubernetes-validations`).
    Rule,
    /// The controller: the API server accepts the object, then the rollout stays Degraded with
    /// the reason named.
    Controller,
}

impl Source {
    /// Whether the API server refuses an object with this problem.
    pub fn refused_at_admission(self) -> bool {
        matches!(self, Source::Schema | Source::Rule)
    }
}

/// One thing wrong with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Who would refuse or report it.
    pub source: Source,
    /// For people: the field path, then what is wrong with it.
    pub line: String,
}

/// What one YAML document of a manifest is, once checked.
#[derive(Clone, Debug)]
pub enum Checked {
    /// A ZeroDowntimeRollout: its name, its problems (none when valid) and, when it
    /// deserializes, the typed object.
    Rollout {
        /// `metadata.name`, or `<unnamed>`.
        name: String,
        /// Every problem, admission ones first.
        problems: Vec<Problem>,
        /// The typed object, when the document deserializes into one.
        rollout: Option<Box<ZeroDowntimeRollout>>,
    },
    /// Anything else: what it is instead, for people.
    Other(String),
}

/// What a document is, for people: `a apps/v1 Deployment`.
fn what(doc: &Value) -> String {
    let api = doc.get("apiVersion").and_then(Value::as_str);
    let kind = doc.get("kind").and_then(Value::as_str);
    match (api, kind) {
        (Some(a), Some(k)) => format!("a {a} {k}"),
        (None, Some(k)) => format!("a {k} without apiVersion"),
        (Some(a), None) => format!("an object of {a} without kind"),
        (None, None) if doc.is_object() => "an object without apiVersion and kind".into(),
        (None, None) => format!("not an object but {doc}"),
    }
}

/// Checks one document of a manifest.
pub fn check_document(doc: &Value) -> Checked {
    let api = doc.get("apiVersion").and_then(Value::as_str);
    let kind = doc.get("kind").and_then(Value::as_str);
    let group = api.and_then(|a| a.split_once('/')).map(|(g, _)| g);
    let ours = kind == Some(KIND) && (api == Some(API_VERSION) || group == Some(GROUP));
    if !ours || api != Some(API_VERSION) {
        let hint = if ours {
            "this build knows only v1alpha1"
        } else {
            "see docs/migrating.md"
        };
        return Checked::Other(format!(
            "is {}, not a {API_VERSION} {KIND}; {hint}",
            what(doc)
        ));
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let mut problems = admission_problems(doc);
    let rollout = serde_json::from_value::<ZeroDowntimeRollout>(doc.clone()).ok();
    if problems.is_empty() {
        match &rollout {
            Some(r) => problems.extend(controller_problems(r)),
            None => problems.push(Problem {
                source: Source::Schema,
                line: "the object does not decode as a ZeroDowntimeRollout".into(),
            }),
        }
    }
    Checked::Rollout {
        name,
        problems,
        rollout: rollout.map(Box::new),
    }
}

/// What the API server would refuse: metadata, the structural schema, then the CEL rules (only
/// when the structure is sound, as the API server skips rules on malformed objects).
pub fn admission_problems(doc: &Value) -> Vec<Problem> {
    let mut lines = metadata_problems(doc);
    if let (Some(meta), Some(meta_schema)) = (doc.get("metadata"), object_meta_schema()) {
        structural::check(meta_schema, meta, "metadata", &mut lines);
    }
    structural::check(schema(), doc, "", &mut lines);
    let mut problems: Vec<Problem> = lines
        .into_iter()
        .map(|line| Problem {
            source: Source::Schema,
            line,
        })
        .collect();
    if problems.is_empty() {
        problems.extend(rule_problems(doc));
    }
    problems
}

/// The checks of `metadata.name` the API server makes on every object (its type and the other
/// fields are checked against the ObjectMeta schema).
fn metadata_problems(doc: &Value) -> Vec<String> {
    let meta = doc.get("metadata");
    let name = meta.and_then(|m| m.get("name"));
    let generate = meta.and_then(|m| m.get("generateName"));
    match name {
        None if generate.is_none() => {
            vec!["metadata.name: Required value: name or generateName is required".into()]
        }
        Some(Value::String(n)) if !is_dns_subdomain(n) => vec![format!(
            "metadata.name: Invalid value: {n:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        )],
        _ => Vec::new(),
    }
}

/// Whether `s` is a lowercase RFC 1123 subdomain, as object names must be.
fn is_dns_subdomain(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(alnum)
                && label.ends_with(alnum)
                && label.chars().all(|c| alnum(c) || c == '-')
        })
}

/// The CRD's CEL rules on `doc`, one problem per failed rule.
fn rule_problems(doc: &Value) -> Vec<Problem> {
    thread_local!(static COMPILED: RefCell<Option<CompiledSchema>> = const { RefCell::new(None) });
    let result = COMPILED.with(|c| {
        let mut c = c.borrow_mut();
        let compiled = c.get_or_insert_with(|| compile_schema(schema()));
        validate_compiled(compiled, doc, None)
    });
    let Err(errors) = result else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| {
            let path = if e.field_path.is_empty() {
                "<root>"
            } else {
                &e.field_path
            };
            let line = match e.kind {
                ErrorKind::ValidationFailure => format!("{path}: Invalid value: {}", e.message),
                _ => format!(
                    "{path}: the rule {:?} cannot be evaluated offline: {}",
                    e.rule, e.message
                ),
            };
            Problem {
                source: Source::Rule,
                line,
            }
        })
        .collect()
}

/// What the controller's validation reports for an object the API server accepts.
fn controller_problems(r: &ZeroDowntimeRollout) -> Vec<Problem> {
    match crate::validate::validate(&r.spec) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Problem {
            source: Source::Controller,
            line: format!(
                "{} (the API server accepts this; the controller would report {} and not roll)",
                e.message, e.reason
            ),
        }],
    }
}

/// The schema of an ObjectMeta: the CRD leaves the root `metadata` to the API server, which
/// decodes it strictly as an ObjectMeta; the pod template's `metadata` in the same CRD is one.
fn object_meta_schema() -> Option<&'static Value> {
    schema().pointer("/properties/spec/properties/template/properties/metadata")
}

/// The generated CRD's `openAPIV3Schema`.
pub fn schema() -> &'static Value {
    static SCHEMA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let crd = ZeroDowntimeRollout::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        serde_json::to_value(schema).unwrap_or(Value::Null)
    })
}

#[cfg(test)]
mod tests;
