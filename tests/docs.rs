//! The docs cite only what exists: every repository path a doc names (`src/...`, `tests/...`,
//! `e2e/...`, `charts/...`, `hack/...`, `examples/...`, `docs/...`, `crds/...`) and every
//! relative link (with its `#anchor` when it points into a Markdown file) of README.md and
//! docs/*.md must resolve in this checkout.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

/// Docs being written on other branches at the time of writing: citing them is allowed while
/// they are missing here. Whoever merges the branch that adds one removes it from this list
/// (`pending_docs_are_still_missing` fails until then).
const PENDING: &[&str] = &[];

/// Links that leave the repository on purpose: the files beside a checkout that `.ci/run` and
/// the e2e tests use (see README.md).
const OUTSIDE_REPO: &[&str] = &["../shared/k8s/README.md"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as paths relative to the crate root.
fn docs() -> Vec<String> {
    let mut out = vec!["README.md".to_string()];
    let dir = std::fs::read_dir(root().join("docs")).expect("docs/ is readable");
    for entry in dir {
        let name = entry.expect("docs/ entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            out.push(format!("docs/{name}"));
        }
    }
    out.sort();
    out
}

/// `*` in the last component of `rel` matches any run of characters.
fn glob_exists(root: &Path, rel: &str) -> bool {
    let (dir, pattern) = rel.rsplit_once('/').unwrap_or(("", rel));
    let Some((head, tail)) = pattern.split_once('*') else {
        return root.join(rel).exists();
    };
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.len() >= head.len() + tail.len() && name.starts_with(head) && name.ends_with(tail)
    })
}

/// `rel` exists under `root`, or is a pending doc.
fn exists(root: &Path, rel: &str) -> bool {
    PENDING.contains(&rel) || glob_exists(root, rel.trim_end_matches('/'))
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// `base/target` with `.` and `..` resolved, or `None` when it leaves the repository.
fn resolve(base: &Path, target: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in base.join(target).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    Some(parts.join("/"))
}

/// Every problem of one doc (`rel`, its text), one line each, checked against `root`.
fn problems(root: &Path, rel: &str, text: &str) -> Vec<String> {
    let cited = Regex::new(
        r"(?:^|[^A-Za-z0-9_./-])((?:src|tests|e2e|charts|hack|examples|docs|crds)/[A-Za-z0-9_./*-]*[A-Za-z0-9_/*-])",
    )
    .unwrap();
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let line_of = |at: usize| text[..at].matches('\n').count() + 1;
    let mut out = Vec::new();
    for m in cited.captures_iter(text) {
        let path = m.get(1).unwrap();
        // A link's target is checked with the links below, relative to the doc.
        let in_link = text[..path.start()].ends_with("](");
        if !in_link && !exists(root, path.as_str()) {
            let line = line_of(path.start());
            out.push(format!(
                "{rel}:{line}: cites {} which does not exist",
                path.as_str()
            ));
        }
    }
    let base = Path::new(rel).parent().unwrap_or(Path::new(""));
    for m in link.captures_iter(text) {
        let target = m.get(1).unwrap();
        let t = target.as_str();
        if t.contains("://") || t.starts_with("mailto:") || t.starts_with('#') {
            continue;
        }
        let line = line_of(target.start());
        let (file, anchor) = t.split_once('#').unwrap_or((t, ""));
        if OUTSIDE_REPO.contains(&file) {
            continue;
        }
        let Some(path) = resolve(base, file) else {
            out.push(format!(
                "{rel}:{line}: link {t} leaves the repository (not in OUTSIDE_REPO)"
            ));
            continue;
        };
        if !exists(root, &path) {
            out.push(format!(
                "{rel}:{line}: link {t} points to {path}, which does not exist"
            ));
        } else if !anchor.is_empty() && path.ends_with(".md") && !PENDING.contains(&path.as_str()) {
            let target_text = std::fs::read_to_string(root.join(&path)).unwrap_or_default();
            if !anchors(&target_text).contains(anchor) {
                out.push(format!(
                    "{rel}:{line}: link {t}: {path} has no heading #{anchor}"
                ));
            }
        }
    }
    out
}

#[test]
fn docs_cite_only_paths_and_links_that_exist() {
    let root = root();
    let mut all = Vec::new();
    for rel in docs() {
        let text = std::fs::read_to_string(root.join(&rel)).expect("doc is readable");
        all.extend(problems(&root, &rel, &text));
    }
    assert!(
        all.is_empty(),
        "docs cite what does not exist:\n{}",
        all.join("\n")
    );
}

#[test]
fn pending_docs_are_still_missing() {
    for rel in PENDING {
        assert!(
            !root().join(rel).exists(),
            "{rel} exists now: remove it from PENDING in tests/docs.rs so that it is checked"
        );
    }
}

#[test]
fn the_checker_finds_missing_paths_links_and_anchors() {
    let text = "see `src/nope.rs`, tests/agent_*.rs and src/planner/\n\
                [a](docs/agent.md) [b](docs/gone.md) [c](docs/agent.md#no-such-heading)\n\
                [d](../../etc/passwd) [e](https://example.com/x) [f](#local)\n";
    let found = problems(&root(), "README.md", text);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].contains("README.md:1: cites src/nope.rs"),
        "{found:#?}"
    );
    assert!(
        found[1].contains("README.md:2: link docs/gone.md points to"),
        "{found:#?}"
    );
    assert!(
        found[2].contains("no heading #no-such-heading"),
        "{found:#?}"
    );
    assert!(found[3].contains("leaves the repository"), "{found:#?}");
}

#[test]
fn slugs_follow_github() {
    assert_eq!(
        slug(" Commands and annotations"),
        "commands-and-annotations"
    );
    assert_eq!(slug("`kubectl zdr` (plugin)"), "kubectl-zdr-plugin");
}
