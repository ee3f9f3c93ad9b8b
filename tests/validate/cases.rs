//! The table of offline-validation cases: one YAML file each in tests/validate/, its expected
//! result in `# expect…:` comment lines (`# expect: valid`, `# expect rule: LINE`, `# expect
//! schema: LINE`, `# expect controller: LINE`, `# expect other: TEXT`). Shared by
//! tests/validate.rs (offline) and e2e/validate.rs (the real API server).

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use zdr::schema::Source;

/// What `kubectl zdr validate` must say about a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No problem.
    Valid,
    /// Exactly these problems, in order.
    Problems(Vec<(Source, String)>),
    /// Not a ZeroDowntimeRollout: this text.
    Other(String),
}

impl Expect {
    /// Whether the API server must refuse the object (create with strict field validation).
    pub fn refused_at_admission(&self) -> bool {
        match self {
            Expect::Valid | Expect::Other(_) => false,
            Expect::Problems(p) => p.iter().any(|(s, _)| s.refused_at_admission()),
        }
    }
}

/// One case.
pub struct Case {
    /// File stem.
    pub name: String,
    /// The object.
    pub doc: Value,
    /// What validate must say.
    pub expect: Expect,
}

/// The folder of the cases.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/validate")
}

/// Every case, sorted by name; panics on a malformed case file (a broken table must fail).
pub fn cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/validate")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths.iter().map(parse).collect()
}

fn parse(path: &PathBuf) -> Case {
    let text = std::fs::read_to_string(path).expect("case file");
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let mut valid = false;
    let mut other = None;
    let mut problems = Vec::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("# expect")) {
        let (kind, rest) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("{name}: {line}"));
        let source = match kind.trim() {
            "" if rest == "valid" => {
                valid = true;
                continue;
            }
            "other" => {
                other = Some(rest.to_string());
                continue;
            }
            "rule" => Source::Rule,
            "schema" => Source::Schema,
            "controller" => Source::Controller,
            k => panic!("{name}: unknown expectation kind {k:?}"),
        };
        problems.push((source, rest.to_string()));
    }
    let expect = match (valid, other, problems.is_empty()) {
        (true, None, true) => Expect::Valid,
        (false, Some(o), true) => Expect::Other(o),
        (false, None, false) => Expect::Problems(problems),
        _ => {
            panic!("{name}: give exactly one of `# expect: valid`, `# expect other:`, or problems")
        }
    };
    let doc = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    Case { name, doc, expect }
}
