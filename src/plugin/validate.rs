//! `kubectl zdr validate FILE`: every document of a manifest checked offline as the API server
//! and the controller would check it ([`crate::schema`]), one line per problem. Also reads
//! manifests for `plan` (a file, or `-` for stdin; multi-document YAML).

use std::fmt::Write as _;
use std::io::Read as _;

use serde_json::Value;

use crate::schema::{Checked, check_document};

/// Why a manifest cannot be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file (or stdin) could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// Not YAML.
    #[error("cannot parse {0} as YAML: {1}")]
    Parse(String, String),
    /// Nothing in it.
    #[error("{0} holds no document")]
    Empty(String),
}

/// How `validate` ends; the process exits with [`Outcome::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every ZeroDowntimeRollout is valid (exit 0).
    Valid,
    /// A rollout has a problem, or the manifest holds no rollout (exit 1).
    Invalid,
    /// The manifest cannot be read or parsed (exit 2).
    Unreadable,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> i32 {
        match self {
            Outcome::Valid => 0,
            Outcome::Invalid => 1,
            Outcome::Unreadable => 2,
        }
    }
}

/// The name `path` goes by in messages.
pub fn display_name(path: &str) -> &str {
    if path == "-" { "<stdin>" } else { path }
}

/// The documents of the manifest at `path` (`-` = stdin), empty documents left out.
pub fn read_documents(path: &str) -> Result<Vec<Value>, ReadError> {
    let shown = display_name(path).to_string();
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| ReadError::Read(shown.clone(), e))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| ReadError::Read(shown.clone(), e))?
    };
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| ReadError::Parse(shown.clone(), e.to_string()))?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    if docs.is_empty() {
        return Err(ReadError::Empty(shown));
    }
    Ok(docs)
}

/// The report on `docs` (read from `shown`) and its outcome.
pub fn report(shown: &str, docs: &[Value]) -> (String, Outcome) {
    let mut out = String::new();
    let mut rollouts = 0;
    let mut invalid = 0;
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("{shown}: document {}", i + 1);
        match check_document(doc) {
            Checked::Other(what) => {
                let _ = writeln!(out, "{at} {what} (not checked)");
            }
            Checked::Rollout { name, problems, .. } => {
                rollouts += 1;
                if problems.is_empty() {
                    let _ = writeln!(out, "{at}: ZeroDowntimeRollout {name}: valid");
                    continue;
                }
                invalid += 1;
                let _ = writeln!(
                    out,
                    "{at}: ZeroDowntimeRollout {name}: {} problem(s)",
                    problems.len()
                );
                for p in problems {
                    let _ = writeln!(out, "  {}", p.line);
                }
            }
        }
    }
    if rollouts == 0 {
        let _ = writeln!(out, "{shown}: no ZeroDowntimeRollout to check");
        return (out, Outcome::Invalid);
    }
    let outcome = if invalid == 0 {
        Outcome::Valid
    } else {
        Outcome::Invalid
    };
    (out, outcome)
}

/// `kubectl zdr validate FILE`: the report (stdout) and the outcome; a manifest that cannot be
/// read gives its error as the report.
pub fn validate_file(path: &str) -> (String, Outcome) {
    match read_documents(path) {
        Ok(docs) => report(display_name(path), &docs),
        Err(e) => (format!("{e}\n"), Outcome::Unreadable),
    }
}
