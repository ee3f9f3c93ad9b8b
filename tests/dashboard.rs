//! The metrics reference (docs/metrics.md) and the chart's Grafana dashboard
//! (charts/zdr/dashboards/zdr.json) against the metrics the code really registers: every
//! exported metric is documented, every documented one is exported, and every series the
//! dashboard queries exists.

use std::collections::BTreeSet;
use std::path::PathBuf;

use prometheus_client::registry::Registry;
use regex::Regex;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `# TYPE` lines of both binaries' registries: (family name, type).
fn families() -> Vec<(String, String)> {
    // A family with no sample is not encoded at all: record one of each.
    let mut controller = Registry::default();
    let m = zdr::controller::metrics::Metrics::register(&mut controller);
    m.observe(Some("api"), 0.1);
    m.measurement("Failed");
    m.abort("AnalysisFailed");
    m.hot_swap(Some(std::time::Duration::from_millis(500)));
    let mut agent = Registry::default();
    let a = zdr::agent::status::Metrics::new(&mut agent);
    a.swaps
        .get_or_create(&zdr::agent::status::ResultLabel {
            result: zdr::contract::SwapResult::Succeeded,
        })
        .inc();
    let mut out = Vec::new();
    for registry in [&controller, &agent] {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                out.push((name.to_string(), kind.to_string()));
            }
        }
    }
    assert!(out.len() >= 8, "too few metric families found: {out:?}");
    out
}

/// The names a reader uses for each family: `_total` for counters, the family name otherwise.
fn documented_names() -> BTreeSet<String> {
    families()
        .into_iter()
        .map(|(name, kind)| match kind.as_str() {
            "counter" => format!("{name}_total"),
            _ => name,
        })
        .collect()
}

/// Every series name a query can select: counters' `_total`, histograms' `_bucket`, `_sum`,
/// `_count`, gauges' own name.
fn series_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, kind) in families() {
        match kind.as_str() {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                out.insert(name);
            }
        }
    }
    out
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let re = Regex::new(r"\bzdr_(?:controller|agent)_[a-z_]+\b").expect("regex");
    re.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_metrics_reference_lists_exactly_the_exported_metrics() {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).expect("docs/metrics.md");
    // The metric column of the reference tables: rows starting with "| `zdr_".
    let listed: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `zdr_"))
        .filter_map(|l| l.split('`').nth(1))
        .map(str::to_string)
        .collect();
    let exported = documented_names();
    let missing: Vec<_> = exported.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&exported).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/metrics.md is out of step with the code: exported but not listed {missing:?}; \
         listed but not exported {stale:?}"
    );
    // Names in the prose and the example queries exist too.
    let series = series_names();
    let unknown: Vec<_> = metric_names(&doc)
        .into_iter()
        .filter(|n| !series.contains(n) && !exported.contains(n))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/metrics.md names unknown metrics: {unknown:?}"
    );
}

/// Every `expr` of every panel target, nested rows included.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            m.values().for_each(|v| exprs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_series_the_dashboard_queries_is_exported() {
    let path = root().join("charts/zdr/dashboards/zdr.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut all = Vec::new();
    exprs(&dashboard["panels"], &mut all);
    assert!(all.len() >= 8, "the dashboard has too few queries: {all:?}");
    let series = series_names();
    for expr in &all {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "a query uses no zdr metric: {expr}");
        for n in names {
            assert!(
                series.contains(&n),
                "the dashboard queries {n}, which neither binary exports ({expr}); exported: {series:?}"
            );
        }
    }
    // Each exported family is shown somewhere.
    let queried: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    for (name, _) in families() {
        assert!(
            queried.iter().any(|q| q.starts_with(&name)),
            "the dashboard shows nothing of {name}"
        );
    }
    // The panels' template variables are defined.
    for var in ["datasource", "job"] {
        assert!(
            dashboard["templating"]["list"]
                .as_array()
                .is_some_and(|l| l.iter().any(|v| v["name"] == var)),
            "the dashboard uses ${var} without defining it"
        );
    }
}
