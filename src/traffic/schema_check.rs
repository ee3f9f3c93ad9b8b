//! Test-only: checks objects against the real third-party CRDs (HTTPRoute v1 of Gateway API
//! v1.5.1, standard and experimental channels; Istio's VirtualService v1), read from
//! `$ZDR_THIRD_PARTY_CRDS` or `<CARGO_MANIFEST_DIR>/../shared/crds` and never copied here. The CRDs' CEL rules (`x-kubernetes-validations`) run through
//! kube's client-side CEL validator, which applies the schema defaults first, as the API
//! server does. The structural checker is the product's (`crate::schema::structural`), shared
//! with `kubectl zdr validate`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::schema::structural::check;

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

#[path = "schema_check_tests.rs"]
mod tests;
