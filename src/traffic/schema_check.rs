//! Test-only: checks objects against the real third-party CRDs (HTTPRoute v1 of Gateway API
//! v1.5.1, standard and experimental channels; Istio's VirtualService v1), read from
//! `$ZDR_THIRD_PARTY_CRDS` or `<CARGO_MANIFEST_DIR>/../shared/crds` and never copied here. The
//! structural checker covers what these schemas use: type (with `nullable` and
//! `x-kubernetes-int-or-string`), properties with unknown-field detection (unless
//! `x-kubernetes-preserve-unknown-fields` or `additionalProperties`), required, enum,
//! minItems/maxItems, minLength/maxLength, minimum/maximum, pattern (the `regex` crate, close
//! to the API server's RE2), allOf/anyOf/oneOf/not, and unique keys of `map` and `set` lists.
//! `format` is not checked. The CRDs' CEL rules (`x-kubernetes-validations`) run through
//! kube's client-side CEL validator, which applies the schema defaults first, as the API
//! server does.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

/// A CRD schema to check against.
#[derive(Clone, Copy, Debug)]
pub enum Crd {
    /// HTTPRoute v1, standard channel.
    HttpRouteStandard,
    /// HTTPRoute v1, experimental channel.
    HttpRouteExperimental,
    /// VirtualService v1.
    VirtualService,
}

/// The three `openAPIV3Schema`s, in [`Crd`] order.
struct Schemas([Value; 3]);

/// Where the CRD files are.
fn crd_dir() -> PathBuf {
    std::env::var_os("ZDR_THIRD_PARTY_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/crds"))
}

/// The v1 `openAPIV3Schema` of CRD `name` in the multi-document YAML `dir/file`.
fn schema_in(dir: &Path, file: &str, name: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let crd = docs
        .iter()
        .find(|d| d["kind"] == "CustomResourceDefinition" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{} has no CRD {name}", path.display()));
    let versions = crd["spec"]["versions"].as_array().expect("spec.versions");
    let v1 = versions
        .iter()
        .find(|v| v["name"] == "v1")
        .expect("a v1 version");
    v1["schema"]["openAPIV3Schema"].clone()
}

/// The schemas in `dir`, or `None` when it lacks them; with `require`, a panic then.
fn load(dir: &Path, require: bool) -> Option<Schemas> {
    if !dir.join("gateway-api/standard-install.yaml").exists() {
        let msg = format!(
            "{} missing; set ZDR_THIRD_PARTY_CRDS to the folder holding gateway-api/ and istio/",
            dir.display()
        );
        assert!(
            !require,
            "the third-party CRDs are required (ZDR_REQUIRE_CRDS=1): {msg}"
        );
        return None;
    }
    let httproutes = "httproutes.gateway.networking.k8s.io";
    let vs = "virtualservices.networking.istio.io";
    Some(Schemas([
        schema_in(dir, "gateway-api/standard-install.yaml", httproutes),
        schema_in(dir, "gateway-api/experimental-httproutes.yaml", httproutes),
        schema_in(dir, "istio/networking-crds.yaml", vs),
    ]))
}

/// The schemas, or `None` when the files are missing, said on stderr once per test thread (so
/// once per test); with `ZDR_REQUIRE_CRDS=1` missing files fail the tests instead.
fn schemas() -> Option<&'static Schemas> {
    static SCHEMAS: OnceLock<Option<Schemas>> = OnceLock::new();
    thread_local!(static SAID: Cell<bool> = const { Cell::new(false) });
    let require = std::env::var("ZDR_REQUIRE_CRDS").as_deref() == Ok("1");
    let schemas = SCHEMAS.get_or_init(|| load(&crd_dir(), require)).as_ref();
    if schemas.is_none() && !SAID.replace(true) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED schema checks against the third-party CRDs: {} missing; set ZDR_THIRD_PARTY_CRDS to the folder holding gateway-api/ and istio/ (ZDR_REQUIRE_CRDS=1 makes this a failure)",
            crd_dir().display()
        );
    }
    schemas
}

/// Whether the CRDs are there (when not, [`assert_valid`] checks nothing).
pub fn available() -> bool {
    schemas().is_some()
}

/// The `openAPIV3Schema` of `crd`; panics when the CRDs are missing (see [`available`]).
pub fn schema(crd: Crd) -> &'static Value {
    &schemas().expect("the third-party CRDs").0[crd as usize]
}

/// Panics, with every error and the object, unless `object` passes `crd`'s structural schema
/// and CEL rules. Checks nothing (after saying so on stderr) when the CRDs are missing.
pub fn assert_valid(crd: Crd, object: &Value) {
    let errors = errors(crd, object);
    assert!(
        errors.is_empty(),
        "{crd:?} rejects the object:\n  {}\n{}",
        errors.join("\n  "),
        serde_json::to_string_pretty(object).unwrap_or_default()
    );
}

/// What `crd` finds wrong with `object`: structural errors, then CEL errors; nothing when the
/// CRDs are missing.
pub fn errors(crd: Crd, object: &Value) -> Vec<String> {
    let Some(schemas) = schemas() else {
        return Vec::new();
    };
    let schema = &schemas.0[crd as usize];
    let mut errors = Vec::new();
    check(schema, object, "", &mut errors);
    if let Err(cel) = check_cel(crd, schema, object) {
        errors.push(format!("CEL: {cel}"));
    }
    errors
}

/// The CEL rules of `schema` (compiled once per thread) on `object`, defaults applied first.
fn check_cel(
    crd: Crd,
    schema: &Value,
    object: &Value,
) -> Result<(), kube::core::cel::ValidationErrors> {
    use kube::core::cel::{CompiledSchema, compile_schema, validate_compiled};
    thread_local!(static COMPILED: RefCell<HashMap<usize, CompiledSchema>> = RefCell::new(HashMap::new()));
    COMPILED.with(|compiled| {
        let mut compiled = compiled.borrow_mut();
        let schema = compiled
            .entry(crd as usize)
            .or_insert_with(|| compile_schema(schema));
        validate_compiled(schema, object, None)
    })
}

/// The structural errors of `value` at `path` under `schema`.
pub fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let before = errors.len();
    check_type(schema, value, path, errors);
    if errors.len() > before {
        return;
    }
    check_combinators(schema, value, path, errors);
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::String(s) => {
            let len = s.chars().count() as f64;
            if num("minLength").is_some_and(|m| len < m)
                || num("maxLength").is_some_and(|m| len > m)
            {
                errors.push(format!("{path}: length {len} is out of bounds"));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && !matches_pattern(p, s)
            {
                errors.push(format!("{path}: {s:?} does not match {p}"));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or(f64::NAN);
            if num("minimum").is_some_and(|m| n < m) || num("maximum").is_some_and(|m| n > m) {
                errors.push(format!("{path}: {n} is out of bounds"));
            }
        }
        _ => {}
    }
}

fn check_type(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!(
                "{path}: {value} is neither an integer nor a string"
            ));
        }
        return;
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("{path}: schema type {other} unknown to the checker"),
    };
    if !ok {
        errors.push(format!("{path}: {value} is not of type {}", schema["type"]));
    }
}

fn check_combinators(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let passes = |s: &Value| {
        let mut e = Vec::new();
        check(s, value, path, &mut e);
        e.is_empty()
    };
    let list = |k: &str| {
        schema
            .get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for s in list("allOf") {
        check(&s, value, path, errors);
    }
    let any = list("anyOf");
    if !any.is_empty() && !any.iter().any(passes) {
        errors.push(format!("{path}: matches none of anyOf"));
    }
    let one = list("oneOf");
    if !one.is_empty() && one.iter().filter(|s| passes(s)).count() != 1 {
        errors.push(format!("{path}: does not match exactly one of oneOf"));
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errors.push(format!("{path}: matches a `not` schema"));
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties");
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    for (key, value) in map {
        let at = format!("{path}.{key}");
        // The API server handles these itself at the root; CRDs declare them loosely, if at all.
        if path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) {
            continue;
        }
        match (props.and_then(|p| p.get(key)), extra) {
            (Some(s), _) => check(s, value, &at, errors),
            (None, Some(s)) if s.is_object() => check(s, value, &at, errors),
            (None, Some(Value::Bool(true))) => {}
            _ if preserve || (props.is_none() && schema.get("type").is_none()) => {}
            _ => errors.push(format!("{at}: unknown field")),
        }
    }
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(key) = key.as_str()
            && !map.contains_key(key)
        {
            errors.push(format!("{path}: required field {key} missing"));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<String>) {
    let len = items.len() as u64;
    let bound = |k: &str| schema.get(k).and_then(Value::as_u64);
    if bound("minItems").is_some_and(|m| len < m) || bound("maxItems").is_some_and(|m| len > m) {
        errors.push(format!("{path}: {len} items is out of bounds"));
    }
    if let Some(item) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            check(item, v, &format!("{path}[{i}]"), errors);
        }
    }
    let keys: Vec<Value> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => items.to_vec(),
        Some("map") => {
            let names = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let key_of = |v: &Value| {
                Value::Array(
                    names
                        .iter()
                        .map(|k| v[k.as_str().unwrap_or("")].clone())
                        .collect(),
                )
            };
            items.iter().map(key_of).collect()
        }
        _ => return,
    };
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            errors.push(format!("{path}[{i}]: duplicate key {k}"));
        }
    }
}

/// Whether `s` matches the schema pattern `p` (compiled once per thread).
fn matches_pattern(p: &str, s: &str) -> bool {
    thread_local!(static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new()));
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}")));
        re.is_match(s)
    })
}

#[path = "schema_check_tests.rs"]
mod tests;
