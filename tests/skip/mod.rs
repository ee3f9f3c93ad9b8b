//! The one way a test of `tests/` skips for a missing tool: a line written straight to the
//! stderr handle (libtest captures `eprintln!`, not this), naming the test, what is missing and
//! the command that installs it as `.ci/run` does; or a failure when the tool's `ZDR_REQUIRE_*`
//! variable is `1` (set by `.ci/run`), so that a run meant to test everything cannot skip.
#![allow(dead_code)]

use std::io::Write;

/// A tool some tests need, and how to get it.
pub struct Tool {
    /// What the tests need, as a user would name it.
    pub what: &'static str,
    /// The variable that turns a skip into a failure.
    pub require_env: &'static str,
    /// The command that installs it (the one `.ci/run` runs).
    pub install: &'static str,
}

/// The Prometheus server and promtool (tests/analysis_prometheus.rs).
pub const PROMETHEUS: Tool = Tool {
    what: "the prometheus and promtool binaries on PATH",
    require_env: "ZDR_REQUIRE_PROMETHEUS",
    install: "apt-get install prometheus",
};

/// The openssl command, for the test CA of the TLS case (tests/analysis_prometheus.rs).
pub const OPENSSL: Tool = Tool {
    what: "the openssl command",
    require_env: "ZDR_REQUIRE_PROMETHEUS",
    install: "apt-get install openssl",
};

/// The Helm library for Python, which renders the chart (tests/chart.rs).
pub const HELM: Tool = Tool {
    what: "helm-python-sdk (the Helm library, used by hack/helm-render.py)",
    require_env: "ZDR_REQUIRE_HELM",
    install: "python3 -m pip install helm-python-sdk==0.2.2",
};

/// Whether the tool's `ZDR_REQUIRE_*` variable demands it.
pub fn required(tool: &Tool) -> bool {
    std::env::var(tool.require_env).is_ok_and(|v| v == "1")
}

/// The name of the running test (libtest names each test's thread after it).
pub fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_string(),
        _ => "this test".to_string(),
    }
}

/// The skip line: the test, what it lacks and why, and how to get it.
pub fn message(tool: &Tool, test: &str, why: &str) -> String {
    format!(
        "\n*** SKIPPED {test}: it needs {what}: {why}\n*** get it with `{install}` (as .ci/run does), \
         or set {env}=1 to make this a failure ***\n\n",
        what = tool.what,
        install = tool.install,
        env = tool.require_env,
    )
}

/// Skips the running test loudly, or fails it when the tool is required. The caller returns
/// after this call.
pub fn skip(tool: &Tool, why: &str) {
    let test = current_test();
    assert!(
        !required(tool),
        "{test}: {}=1, and this test needs {}, which is missing: {why}; get it with `{}`",
        tool.require_env,
        tool.what,
        tool.install
    );
    // One write of the whole message, so that it does not interleave with other output.
    let _ = std::io::stderr().write_all(message(tool, &test, why).as_bytes());
}
