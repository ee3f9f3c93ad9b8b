//! The structural half of an `openAPIV3Schema`: what the API server checks before any CEL rule,
//! worded like its field errors. Covers type (with `nullable` and `x-kubernetes-int-or-string`),
//! properties with unknown-field detection as strict field validation reports it (not under
//! `x-kubernetes-preserve-unknown-fields`, `additionalProperties` or an embedded resource's
//! metadata), required, enum, min/maxItems, min/maxLength, min/maxProperties, minimum/maximum,
//! pattern (the `regex` crate, close to the API server's RE2), allOf/anyOf/oneOf/not, and unique
//! keys of `map` and `set` lists. `format` is not checked.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

/// `path` joined with `key`, as the API server writes field paths (`spec.strategy.rolling`).
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The structural errors of `value` at `path` under `schema`, one line each.
pub fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let before = errors.len();
    check_type(schema, value, path, errors);
    if errors.len() > before || value.is_null() {
        return;
    }
    check_combinators(schema, value, path, errors);
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        errors.push(format!(
            "{path}: Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    match value {
        Value::Object(map) => check_object(schema, map, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), path, errors),
        _ => {}
    }
}

/// The JSON type name of `value`, as the API server's messages say it.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_type(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    let found = type_name(value);
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!(
                "{path}: Invalid value: \"{found}\": must be an integer or a string"
            ));
        }
        return;
    }
    let Some(want) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    let ok = match want {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        // A schema type this checker does not know: say so rather than pass it silently.
        other => {
            errors.push(format!(
                "{path}: schema type {other:?} is unknown to this checker"
            ));
            return;
        }
    };
    if !ok {
        errors.push(format!(
            "{path}: Invalid value: \"{found}\": must be of type {want}"
        ));
    }
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    let bound = |k: &str| schema.get(k).and_then(Value::as_u64);
    if let Some(m) = bound("minLength").filter(|m| len < *m) {
        errors.push(format!(
            "{path}: Invalid value: {s:?}: should be at least {m} chars long"
        ));
    }
    if let Some(m) = bound("maxLength").filter(|m| len > *m) {
        errors.push(format!("{path}: Too long: may not be more than {m} bytes"));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str)
        && !matches_pattern(p, s, path, errors)
    {
        errors.push(format!("{path}: Invalid value: {s:?}: should match '{p}'"));
    }
}

fn check_number(schema: &Value, n: f64, path: &str, errors: &mut Vec<String>) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(m) = num("minimum").filter(|m| n < *m) {
        errors.push(format!(
            "{path}: Invalid value: {n}: should be greater than or equal to {m}"
        ));
    }
    if let Some(m) = num("maximum").filter(|m| n > *m) {
        errors.push(format!(
            "{path}: Invalid value: {n}: should be less than or equal to {m}"
        ));
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
        errors.push(format!(
            "{path}: Invalid value: {value}: must match at least one schema (anyOf)"
        ));
    }
    let one = list("oneOf");
    if !one.is_empty() && one.iter().filter(|s| passes(s)).count() != 1 {
        errors.push(format!(
            "{path}: Invalid value: {value}: must validate one and only one schema (oneOf)"
        ));
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errors.push(format!(
            "{path}: Invalid value: {value}: must not validate the schema (not)"
        ));
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, errors: &mut Vec<String>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties");
    let flag = |k: &str| schema.get(k) == Some(&Value::Bool(true));
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let embedded = flag("x-kubernetes-embedded-resource");
    for (key, value) in map {
        let at = join(path, key);
        // The API server checks these itself at the root and in embedded resources.
        if (path.is_empty() || embedded)
            && ["apiVersion", "kind", "metadata"].contains(&key.as_str())
        {
            continue;
        }
        match (props.and_then(|p| p.get(key)), extra) {
            (Some(s), _) => check(s, value, &at, errors),
            (None, Some(s)) if s.is_object() => check(s, value, &at, errors),
            (None, Some(Value::Bool(true))) => {}
            _ if preserve || (props.is_none() && schema.get("type").is_none()) => {}
            _ => errors.push(format!("unknown field \"{at}\"")),
        }
    }
    let required = schema.get("required").and_then(Value::as_array);
    for key in required.into_iter().flatten().filter_map(Value::as_str) {
        if !map.contains_key(key) {
            errors.push(format!("{}: Required value", join(path, key)));
        }
    }
    let len = map.len() as u64;
    let bound = |k: &str| schema.get(k).and_then(Value::as_u64);
    if let Some(m) = bound("minProperties").filter(|m| len < *m) {
        errors.push(format!(
            "{path}: Invalid value: {len}: should have at least {m} properties"
        ));
    }
    if let Some(m) = bound("maxProperties").filter(|m| len > *m) {
        errors.push(format!(
            "{path}: Too many: {len}: must have at most {m} items"
        ));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<String>) {
    let len = items.len() as u64;
    let bound = |k: &str| schema.get(k).and_then(Value::as_u64);
    if let Some(m) = bound("minItems").filter(|m| len < *m) {
        errors.push(format!(
            "{path}: Invalid value: {len}: should have at least {m} items"
        ));
    }
    if let Some(m) = bound("maxItems").filter(|m| len > *m) {
        errors.push(format!(
            "{path}: Too many: {len}: must have at most {m} items"
        ));
    }
    if let Some(item) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            check(item, v, &format!("{path}[{i}]"), errors);
        }
    }
    let keys: Vec<Value> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => items.to_vec(),
        Some("map") => {
            let names: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let key_of = |v: &Value| Value::Array(names.iter().map(|k| v[*k].clone()).collect());
            items.iter().map(key_of).collect()
        }
        _ => return,
    };
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            errors.push(format!("{path}[{i}]: Duplicate value: {k}"));
        }
    }
}

/// Whether `s` matches the schema pattern `p` (compiled once per thread); a pattern the `regex`
/// crate cannot compile is reported as an error and counts as a match.
fn matches_pattern(p: &str, s: &str, path: &str, errors: &mut Vec<String>) -> bool {
    thread_local!(static CACHE: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new()));
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let re = cache
            .entry(p.to_string())
            .or_insert_with(|| Regex::new(p).ok());
        match re {
            Some(re) => re.is_match(s),
            None => {
                errors.push(format!(
                    "{path}: the schema's pattern {p:?} cannot be checked offline"
                ));
                true
            }
        }
    })
}
