//! Which launchers are alive, seen from the shared directory: each launcher holds an exclusive
//! lock on `launcher-<slot>.lock` for its whole life (the kernel drops it when the process dies,
//! however it ends). A sidecar starting over a previous sidecar's state recovers sockets only
//! from slots whose lock is still held; when none is, nobody holds the sockets and it binds at
//! once instead of waiting `--recover-timeout-seconds` for launchers that are gone.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// The lock file of `slot` in `dir`; bytes outside `[A-Za-z0-9._-]` are percent-encoded, so
/// every slot name maps to its own file name.
pub fn lock_path(dir: &Path, slot: &str) -> PathBuf {
    let mut name = String::from("launcher-");
    for b in slot.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    name.push_str(".lock");
    dir.join(name)
}

/// Why a launcher could not mark itself alive.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Another live launcher holds the slot.
    #[error("slot {0:?} already has a launcher (it holds {1})")]
    Taken(String, PathBuf),
    /// The lock file could not be made or locked.
    #[error("cannot lock {0}: {1}")]
    Io(PathBuf, io::Error),
}

/// Marks the launcher of `slot` alive until the returned file is dropped (or the process ends).
pub fn hold(dir: &Path, slot: &str) -> Result<File, HoldError> {
    let path = lock_path(dir, slot);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| HoldError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(HoldError::Taken(slot.to_string(), path)),
        Err(TryLockError::Error(e)) => Err(HoldError::Io(path, e)),
    }
}

/// Whether the launcher of `slot` is alive: its lock file exists and is locked. When the lock
/// cannot be tested (an I/O error) the answer is yes, so that a live launcher's sockets are
/// never bound over.
pub fn alive(dir: &Path, slot: &str) -> bool {
    let path = lock_path(dir, slot);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot test a launcher's lock: taking it as alive");
            return true;
        }
    };
    match file.try_lock() {
        // Nobody held it: the launcher is gone (our lock goes with `file`).
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot test a launcher's lock: taking it as alive");
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zdr-liveness-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_held_slot_is_alive_until_dropped_and_taken_twice_is_refused() {
        let d = dir("hold");
        assert!(!alive(&d, "a"), "no lock file: gone");
        let held = hold(&d, "a").unwrap();
        assert!(alive(&d, "a"));
        assert!(!alive(&d, "b"));
        assert!(matches!(hold(&d, "a"), Err(HoldError::Taken(..))));
        drop(held);
        assert!(
            !alive(&d, "a"),
            "a dropped lock (a dead launcher) is not alive"
        );
        let _again = hold(&d, "a").unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn slot_names_map_to_distinct_plain_file_names() {
        let d = Path::new("/run/zdr");
        assert_eq!(lock_path(d, "a"), d.join("launcher-a.lock"));
        assert_eq!(lock_path(d, "../x"), d.join("launcher-..%2Fx.lock"));
        assert_ne!(lock_path(d, "a/b"), lock_path(d, "a_b"));
        assert_ne!(lock_path(d, "a%2Fb"), lock_path(d, "a/b"));
    }
}
