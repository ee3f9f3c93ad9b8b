//! The chart's Argo CD health check and resource actions (`charts/zdr/argocd`), run as Argo CD
//! runs them: real Lua 5.1 (mlua, vendored) with only the libraries Argo CD opens (`os` through
//! `require("os")`, no `io`), the rollout as the global `obj`. The rollouts are fixtures whose
//! status the controller's own code wrote, one per phase and hold; every action on every fixture
//! must do exactly what `kubectl zdr` does (the same merge patch, built by the same functions in
//! `zdr::plugin::actions`, or a refusal where kubectl zdr refuses), and never touch the spec.

#[path = "argocd/fixtures.rs"]
mod fixtures;
#[path = "argocd/lua.rs"]
mod lua;

use std::path::PathBuf;

use lua::{lua_file, merge, merge_patch, run};
use serde_json::{Value, json};
use zdr::crd::ZeroDowntimeRollout;
use zdr::plugin::actions;

/// Every action, as named in argocd-cm and as a folder under `charts/zdr/argocd/actions`.
const ACTIONS: [&str; 6] = [
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
];

/// The annotation an action writes a fresh token into.
fn token_annotation(action: &str) -> Option<&'static str> {
    match action {
        "retry" => Some("zdr.dev/retry"),
        "pause" => Some("zdr.dev/paused"),
        "resume" => Some("zdr.dev/resume-analysis"),
        _ => None,
    }
}

/// The merge patch `kubectl zdr ACTION` writes on `z` (with `token` where it writes one), or its
/// refusal.
fn kubectl_zdr(action: &str, z: &ZeroDowntimeRollout, token: &str) -> Result<Value, String> {
    match action {
        "promote" => actions::promote_request(z, false).map(|r| actions::promote_patch(&r.value)),
        "promote-full" => {
            actions::promote_request(z, true).map(|r| actions::promote_patch(&r.value))
        }
        "abort" => actions::abort_request(z).map(|r| actions::abort_patch(&r.value)),
        "retry" => actions::retry_request(z).map(|_| actions::retry_patch(token)),
        "pause" => actions::pause_request(z).map(|_| actions::pause_patch(token)),
        "resume" => actions::resume_request(z).map(|_| actions::resume_patch(token)),
        other => panic!("no kubectl zdr action {other}"),
    }
}

/// The fixture as the Rust type, or None for the one whose phase no Rust type knows (health only).
fn typed(f: &fixtures::Fixture) -> Option<ZeroDowntimeRollout> {
    match serde_json::from_value(f.obj.clone()) {
        Ok(z) => Some(z),
        Err(e) => {
            assert_eq!(f.health, "Unknown", "{}: {e}", f.name);
            None
        }
    }
}

#[test]
fn health_of_every_phase_and_hold() {
    for f in fixtures::all() {
        let hs = run("health.lua", &f.obj).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let keys: Vec<&String> = hs.as_object().expect("a table").keys().collect();
        assert_eq!(keys, ["message", "status"], "{}: {hs}", f.name);
        assert_eq!(hs["status"], f.health, "{}: {hs}", f.name);
        let message = hs["message"].as_str().unwrap();
        let st = &f.obj["status"];
        let observed = st["observedGeneration"] == f.obj["metadata"]["generation"];
        let want = match (observed, f.reason) {
            (false, _) if st.is_null() => {
                "waiting for the zdr controller to observe the rollout".to_string()
            }
            (false, _) => "waiting for the zdr controller to observe generation 2".to_string(),
            (true, Some(reason)) => format!("{reason}: {}", st["message"].as_str().unwrap()),
            (true, None) if f.health == "Unknown" => {
                format!(
                    "unknown phase Sideways: {}",
                    st["message"].as_str().unwrap()
                )
            }
            (true, None) => st["message"].as_str().unwrap().to_string(),
        };
        assert_eq!(message, want, "{}", f.name);
        if let Some(reason) = f.reason {
            // The reason is the controller's own: a condition of the fixture's status.
            let conds = st["conditions"].as_array().unwrap();
            assert!(
                conds
                    .iter()
                    .any(|c| c["reason"] == reason && c["status"] == "True"),
                "{}: no True condition with reason {reason} in {conds:?}",
                f.name
            );
        }
    }
}

#[test]
fn every_action_on_every_fixture_does_what_kubectl_zdr_does() {
    let mut outcomes: Vec<(&str, bool)> = Vec::new();
    for f in fixtures::all() {
        let Some(z) = typed(&f) else {
            continue;
        };
        for action in ACTIONS {
            let lua = run(&format!("actions/{action}/action.lua"), &f.obj);
            let token = match (&lua, token_annotation(action)) {
                (Ok(out), Some(key)) => {
                    let t = out["metadata"]["annotations"][key]
                        .as_str()
                        .unwrap_or_else(|| panic!("{} / {action}: no {key} in {out}", f.name));
                    assert_token(t);
                    t.to_string()
                }
                _ => String::new(),
            };
            let want = kubectl_zdr(action, &z, &token);
            outcomes.push((action, want.is_ok()));
            match (want, lua) {
                (Ok(patch), Ok(got)) => {
                    let mut expected = f.obj.clone();
                    merge(&mut expected, &patch);
                    assert_eq!(got, expected, "{} / {action}", f.name);
                    // What Argo CD sends: a merge patch of metadata only (empty when the
                    // annotation is already there).
                    let sent = merge_patch(&f.obj, &got);
                    let keys = sent.as_object().unwrap().keys();
                    assert!(
                        keys.eq(["metadata"].iter()) || sent == json!({}),
                        "{} / {action}: {sent}",
                        f.name
                    );
                }
                (Err(why), Err(lua_err)) => {
                    assert!(!lua_err.is_empty(), "{} / {action}: {why}", f.name);
                }
                (Ok(patch), Err(e)) => {
                    panic!(
                        "{} / {action}: kubectl zdr writes {patch}, Lua refuses: {e}",
                        f.name
                    )
                }
                (Err(why), Ok(_)) => {
                    panic!(
                        "{} / {action}: kubectl zdr refuses ({why}), Lua acts",
                        f.name
                    )
                }
            }
        }
    }
    // Every action is accepted on some fixture and refused on another: the comparison above
    // covers both sides.
    for action in ACTIONS {
        let on = |ok| outcomes.iter().any(|&(a, o)| a == action && o == ok);
        assert!(
            on(true) && on(false),
            "{action}: accepted and refused both needed"
        );
    }
}

/// A token as `kubectl zdr` writes it (the same format: RFC 3339, UTC, nanoseconds), of now.
fn assert_token(t: &str) {
    let at: jiff::Timestamp = t.parse().unwrap_or_else(|e| panic!("token {t}: {e}"));
    assert_eq!(actions::token(at), t, "token format");
    let off = jiff::Timestamp::now().duration_since(at).as_secs().abs();
    assert!(off < 60, "token {t} is {off}s from now");
}

#[test]
fn discovery_enables_only_what_kubectl_zdr_accepts() {
    for f in fixtures::all() {
        let Some(z) = typed(&f) else {
            continue;
        };
        let found =
            run("actions/discovery.lua", &f.obj).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        let table = found.as_object().expect("a table of actions");
        let mut names: Vec<&str> = table.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut all = ACTIONS.to_vec();
        all.sort_unstable();
        assert_eq!(names, all, "{}", f.name);
        let mut enabled = Vec::new();
        for action in ACTIONS {
            let disabled = table[action]["disabled"]
                .as_bool()
                .unwrap_or_else(|| panic!("{} / {action}: disabled is not a boolean", f.name));
            if !disabled {
                enabled.push(action);
                let accepted = kubectl_zdr(action, &z, "t");
                assert!(
                    accepted.is_ok(),
                    "{} / {action}: enabled, but {accepted:?}",
                    f.name
                );
            }
        }
        let mut want = f.enabled.to_vec();
        want.sort_by_key(|a| ACTIONS.iter().position(|x| x == a));
        assert_eq!(enabled, want, "{}", f.name);
    }
}

#[test]
fn the_action_folders_are_exactly_the_actions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/zdr/argocd/actions");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = ACTIONS.iter().map(|a| a.to_string()).collect();
    want.sort();
    assert_eq!(found, want);
    let writes_spec = regex::Regex::new(r#"obj\.spec[\w.\[\]"]*\s*=[^=]"#).unwrap();
    for action in ACTIONS {
        let (_, src) = lua_file(&format!("actions/{action}/action.lua"));
        assert!(!writes_spec.is_match(&src), "{action} writes the spec");
    }
}

#[test]
fn malformed_input_gets_a_status_not_a_crash() {
    // A rollout with no spec.strategy and no status: health Progressing, discovery answers.
    let obj = json!({"apiVersion": "zdr.dev/v1alpha1", "kind": "ZeroDowntimeRollout",
        "metadata": {"name": "web", "generation": 1}, "spec": {}});
    assert_eq!(run("health.lua", &obj).unwrap()["status"], "Progressing");
    let d = run("actions/discovery.lua", &obj).unwrap();
    assert_eq!(d["pause"]["disabled"], false);
    assert_eq!(d["promote"]["disabled"], true);
    let e = run("actions/promote/action.lua", &obj).unwrap_err();
    assert!(e.contains("web is not a canary"), "{e}");
}
