//! `kubectl zdr validate` and `plan`'s checks: the table of cases in tests/validate/ through the
//! library, then the real `kubectl-zdr` binary (exit codes, stdin, multi-document manifests,
//! `plan` refusing what `validate` refuses, the subcommands' arguments).

#[path = "validate/cases.rs"]
mod cases;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use cases::{Expect, cases};
use zdr::schema::{Checked, check_document};

/// What `check_document` says about a case, in the table's terms.
fn found(doc: &serde_json::Value) -> Expect {
    match check_document(doc) {
        Checked::Other(what) => Expect::Other(what),
        Checked::Rollout { problems, .. } if problems.is_empty() => Expect::Valid,
        Checked::Rollout { problems, .. } => {
            Expect::Problems(problems.into_iter().map(|p| (p.source, p.line)).collect())
        }
    }
}

#[test]
fn every_case_gives_exactly_its_expected_lines() {
    let cases = cases();
    assert!(cases.len() >= 10, "the table lost cases: {}", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let got = found(&c.doc);
            (got != c.expect).then(|| format!("{}: expected {:?}\n  got {got:?}", c.name, c.expect))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_table_covers_every_source_and_the_issue_examples() {
    let cases = cases();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for needed in [
        "both-zero",
        "canary-no-steps",
        "unknown-field",
        "deployment",
    ] {
        assert!(names.contains(&needed), "case {needed} is missing");
    }
    let sources: Vec<zdr::schema::Source> = cases
        .iter()
        .flat_map(|c| match &c.expect {
            Expect::Problems(p) => p.iter().map(|(s, _)| *s).collect(),
            _ => Vec::new(),
        })
        .collect();
    use zdr::schema::Source::*;
    for s in [Schema, Rule, Controller] {
        assert!(sources.contains(&s), "no case of {s:?}");
    }
}

fn case_path(name: &str) -> String {
    cases::dir()
        .join(format!("{name}.yaml"))
        .to_string_lossy()
        .into_owned()
}

/// Runs the plugin with `args`, `stdin` piped in.
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-zdr"))
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl-zdr runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> (i32, String, String) {
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn validate_exits_0_valid_1_invalid_2_unreadable() {
    let (code, out, _) = text(&run(&["validate", &case_path("valid-rolling")], ""));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("document 1: ZeroDowntimeRollout web: valid\n"),
        "{out}"
    );
    let (code, out, _) = text(&run(&["validate", &case_path("unknown-field")], ""));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ZeroDowntimeRollout web: 1 problem(s)\n  unknown field \"spec.strategy.rolling.maxSurgeTypo\"\n"),
        "{out}"
    );
    let (code, out, _) = text(&run(&["validate", &case_path("deployment")], ""));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("document 1 is a apps/v1 Deployment, not a zdr.dev/v1alpha1 ZeroDowntimeRollout; see docs/migrating.md"), "{out}");
    let (code, out, err) = text(&run(&["validate", "/nonexistent/zdr.yaml"], ""));
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("cannot read /nonexistent/zdr.yaml"), "{err}");
    let (code, _, err) = text(&run(&["validate", "-"], "a: [unclosed\n"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot parse <stdin> as YAML"), "{err}");
    let (code, _, err) = text(&run(&["validate", "-"], "---\n"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("<stdin> holds no document"), "{err}");
}

#[test]
fn validate_reads_multi_document_stdin() {
    let valid = std::fs::read_to_string(case_path("valid-canary")).unwrap();
    let zero = std::fs::read_to_string(case_path("both-zero")).unwrap();
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web-stable\n";
    let (code, out, _) = text(&run(&["validate", "-"], &format!("{service}---\n{valid}")));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("<stdin>: document 1 is a v1 Service, not a zdr.dev/v1alpha1 ZeroDowntimeRollout; see docs/migrating.md (not checked)\n<stdin>: document 2: ZeroDowntimeRollout web: valid\n"), "{out}");
    let (code, out, _) = text(&run(&["validate", "-"], &format!("{valid}---\n{zero}")));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("<stdin>: document 2: ZeroDowntimeRollout web: 1 problem(s)\n  spec.strategy.rolling: Invalid value: maxSurge and maxUnavailable cannot both be zero: no pod could ever be replaced\n"), "{out}");
}

#[test]
fn plan_refuses_what_validate_refuses() {
    for case in [
        "both-zero",
        "canary-no-steps",
        "unknown-field",
        "analysis-step-without-analysis",
    ] {
        let (code, out, err) = text(&run(&["plan", &case_path(case)], ""));
        assert_eq!((code, out.as_str()), (1, ""), "{case}: {err}");
        assert!(
            err.contains(": not planned, the spec is invalid:\n  "),
            "{case}: {err}"
        );
    }
    let (code, _, err) = text(&run(&["plan", &case_path("deployment")], ""));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no ZeroDowntimeRollout to plan:\n  document 1 is a apps/v1 Deployment"),
        "{err}"
    );
    let yaml = std::fs::read_to_string(case_path("valid-rolling")).unwrap();
    let (code, out, err) = text(&run(&["plan", "-"], &yaml));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("rollout web: rolling update of 6 replicas"),
        "{out}"
    );
}

#[test]
fn plan_fresh_promises_no_floor_and_plan_names_the_hot_swap() {
    let (code, out, err) = text(&run(&["plan", "--fresh", &case_path("valid-rolling")], ""));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("never fall below"), "{out}");
    assert!(
        out.contains("first install: no pods run yet, so availability starts at 0"),
        "{out}"
    );
    let (code, out, err) = text(&run(&["plan", &case_path("valid-hotswap")], ""));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  HotSwap: updates that change only the image of container app are swapped inside the running pods (rolling strategy, maxUnavailable of at least 1, 2 replicas or more); other changes replace pods; pass --from FILE (the manifest applied now) to see which path this change takes\n"),
        "{out}"
    );
    // With the running manifest: the same file at another image is swapped in place, or not.
    let mut yaml = std::fs::read_to_string(case_path("valid-hotswap")).unwrap();
    if !yaml.contains("command:") {
        // The agent wraps an explicit command only.
        yaml = yaml.replace(
            "          image: nginx:1.27\n",
            "          image: nginx:1.27\n          command: [nginx]\n",
        );
    }
    let dir = std::env::temp_dir().join(format!("zdr-plan-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let running = dir.join("running.yaml");
    std::fs::write(&running, yaml.replace("nginx:1.27", "nginx:1.26")).unwrap();
    let new = dir.join("new.yaml");
    let in_place = yaml.replace(
        "  strategy:\n",
        "  strategy:\n    rolling: {maxSurge: 0, maxUnavailable: 1}\n",
    );
    std::fs::write(&new, &in_place).unwrap();
    let from = running.to_str().unwrap();
    let (code, out, err) = text(&run(&["plan", new.to_str().unwrap(), "--from", from], ""));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  HotSwap: this change swaps container app in place (nginx:1.26 -> nginx:1.27): no pod is created or deleted\n  in place: 2 wave(s) of at most 1 pod(s) (maxUnavailable)"),
        "{out}"
    );
    assert!(!out.contains("timeline:"), "{out}");
    // The default rolling strategy (maxUnavailable 0) replaces pods, and says why.
    let (code, out, err) = text(&run(
        &["plan", &case_path("valid-hotswap"), "--from", from],
        "",
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  HotSwap: this update is not swapped in place in container app: maxUnavailable is 0, and a swap takes each pod out of traffic while its slot restarts: pods are replaced, drained first\n"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn name_is_described_and_namespace_belongs_to_in_cluster_subcommands() {
    for sub in [
        "status", "promote", "retry", "pause", "resume", "abort", "history", "undo",
    ] {
        let (code, out, err) = text(&run(&[sub, "--help"], ""));
        assert_eq!(code, 0, "{sub}: {err}");
        assert!(
            out.contains("Name of the ZeroDowntimeRollout"),
            "{sub}: {out}"
        );
        assert!(out.contains("-n, --namespace <NAMESPACE>"), "{sub}: {out}");
    }
    for sub in ["plan", "validate"] {
        let (code, out, _) = text(&run(&[sub, "--help"], ""));
        assert_eq!(code, 0);
        assert!(!out.contains("--namespace"), "{sub}: {out}");
        let (code, _, err) = text(&run(&[sub, "-n", "x", &case_path("valid-rolling")], ""));
        assert_eq!(code, 2, "{sub} must refuse -n: {err}");
    }
}
