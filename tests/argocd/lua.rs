//! Runs the chart's Argo CD Lua (`charts/zdr/argocd`) as Argo CD does: Lua 5.1, only the
//! libraries Argo CD opens (`os` through `require("os")`, no `io`), the rollout as the global
//! `obj`; and applies what an action returns as Argo CD does, by a JSON merge patch. Shared by
//! tests/argocd_lua.rs and the e2e test e2e/argocd.rs.

use std::path::PathBuf;

use mlua::{Lua, LuaSerdeExt};
use serde_json::{Value, json};

/// The path (for error messages) and text of `rel` under `charts/zdr/argocd`.
pub fn lua_file(rel: &str) -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("charts/zdr/argocd")
        .join(rel);
    let src = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    (path.display().to_string(), src)
}

/// What Argo CD runs for `rel` under `charts/zdr/argocd`, as the chart assembles it: the action
/// scripts (`actions/...`) after `actions/guards.lua`, which they share. The path names `rel`.
pub fn script(rel: &str) -> (String, String) {
    let (name, src) = lua_file(rel);
    if rel.starts_with("actions/") {
        let (_, guards) = lua_file("actions/guards.lua");
        return (name, guards + &src);
    }
    (name, src)
}

/// A Lua state with what Argo CD's offers: base, table, string, math, and a safe `os` (time and
/// date) only through `require("os")`.
fn argocd_lua() -> Lua {
    let lua = Lua::new();
    lua.load(
        r#"
        local date, time = os.date, os.time
        package.preload["os"] = function() return { date = date, time = time } end
        os, io, debug, dofile, loadfile = nil, nil, nil, nil, nil
        "#,
    )
    .exec()
    .expect("the sandbox set-up runs");
    lua
}

/// Runs `rel` with `obj` as the global `obj`; its result as JSON, or the Lua error's message.
pub fn run(rel: &str, obj: &Value) -> Result<Value, String> {
    let (name, src) = script(rel);
    let lua = argocd_lua();
    let value = lua.to_value(obj).expect("JSON converts to Lua");
    lua.globals().set("obj", value).expect("set obj");
    let out: mlua::Value = lua
        .load(src.as_str())
        .set_name(name)
        .eval()
        .map_err(|e| e.to_string())?;
    let json: Value = lua.from_value(out).map_err(|e| e.to_string())?;
    Ok(integers(json))
}

/// Lua 5.1 has only floats: whole numbers back to integers, as Argo CD's JSON round trip does.
fn integers(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 9e15 {
                json!(f as i64)
            } else {
                Value::Number(n)
            }
        }
        Value::Array(a) => Value::Array(a.into_iter().map(integers).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integers(v))).collect()),
        v => v,
    }
}

/// A JSON merge patch (RFC 7386) applied, as the API server applies kubectl zdr's.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("an object");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: what Argo CD sends after an
/// action returned `to`.
pub fn merge_patch(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = serde_json::Map::new();
            for (k, v) in t {
                match f.get(k) {
                    Some(old) if old == v => {}
                    Some(old) => {
                        patch.insert(k.clone(), merge_patch(old, v));
                    }
                    None => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                patch.insert(k.clone(), Value::Null);
            }
            Value::Object(patch)
        }
        (_, to) => to.clone(),
    }
}
