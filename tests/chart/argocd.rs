//! The chart's Argo CD snippet (`templates/argocd-customizations.yaml`): off by default; when
//! enabled, one ConfigMap whose argocd-cm keys carry the Lua files of `charts/zdr/argocd`
//! verbatim, the action scripts after the checks they share (`actions/guards.lua`), every action
//! under its folder's name.

use serde_json::Value;

use super::{all_of, one, render};

#[path = "../argocd/lua.rs"]
#[allow(dead_code)]
mod lua;

/// The text of `rel` under `charts/zdr/argocd` as Argo CD must get it (`lua::script`).
fn file(rel: &str) -> String {
    lua::script(rel).1
}

#[test]
fn argocd_customizations_render_only_when_enabled_and_carry_the_lua_verbatim() {
    let Some(off) = render(&[]) else {
        return;
    };
    assert!(
        all_of(&off, "ConfigMap").is_empty(),
        "no ConfigMap by default"
    );
    let Some(docs) = render(&[
        "argocd.customizations.enabled=true",
        "argocd.customizations.namespace=gitops",
        "argocd.customizations.configMapName=argocd-cm",
    ]) else {
        return;
    };
    super::assert_common(&docs);
    let cm = one(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    assert_eq!(cm["metadata"]["namespace"], "gitops");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/part-of"],
        "argocd"
    );
    let data = &cm["data"];
    assert_eq!(
        data["resource.customizations.health.zdr.dev_ZeroDowntimeRollout"].as_str(),
        Some(file("health.lua").as_str())
    );
    let actions = data["resource.customizations.actions.zdr.dev_ZeroDowntimeRollout"]
        .as_str()
        .expect("the actions key");
    let actions: Value = serde_saphyr::from_str(actions).expect("the actions value is YAML");
    assert_eq!(
        actions["discovery.lua"].as_str(),
        Some(file("actions/discovery.lua").as_str())
    );
    let defs = actions["definitions"].as_array().expect("definitions");
    let names: Vec<&str> = defs.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "promote",
            "promote-full",
            "abort",
            "retry",
            "pause",
            "resume"
        ]
    );
    for d in defs {
        let name = d["name"].as_str().unwrap();
        assert_eq!(
            d["action.lua"].as_str(),
            Some(file(&format!("actions/{name}/action.lua")).as_str()),
            "{name}"
        );
    }
}

#[test]
fn argocd_customizations_refuse_a_bad_name() {
    match super::render_result(&[
        "argocd.customizations.enabled=true",
        "argocd.customizations.namespace=Not_A_Namespace",
    ]) {
        super::Render::Refused(err) => assert!(err.contains("namespace"), "{err}"),
        super::Render::Docs(_) => panic!("an invalid namespace must not render"),
        super::Render::Skipped => {}
    }
}
