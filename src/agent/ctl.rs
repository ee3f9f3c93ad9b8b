//! `zdr-agent ctl`: the local client that drives and inspects a sidecar over its control
//! socket (`swap`, `status`), for people, tests, the demo and the controller.

use std::path::Path;
use std::time::Duration;

use super::conn::{Conn, ConnError};
use super::sidecar::control_path;
use crate::contract::protocol::{FromSidecar, ToSidecar};
use crate::contract::status::{Status, SwapRecord};

/// Errors of a `ctl` request.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Could not reach the sidecar.
    #[error("cannot reach the sidecar at {0}: {1}")]
    Connect(String, std::io::Error),
    /// The connection failed.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The sidecar refused the request.
    #[error("sidecar: {0}")]
    Refused(String),
    /// The answer was not the expected kind.
    #[error("unexpected answer from the sidecar: {0}")]
    Unexpected(String),
}

/// Sends one request and waits (at most `timeout`) for its answer.
pub async fn request(
    dir: &Path,
    msg: &ToSidecar,
    timeout: Duration,
) -> Result<FromSidecar, CtlError> {
    let path = control_path(dir);
    let mut conn = Conn::connect(&path)
        .await
        .map_err(|e| CtlError::Connect(path.display().to_string(), e))?;
    conn.send(msg, &[]).await?;
    let (answer, _) = conn.recv_timeout::<FromSidecar>(timeout).await?;
    match answer {
        FromSidecar::Error { message } => Err(CtlError::Refused(message)),
        other => Ok(other),
    }
}

/// `ctl status`.
pub async fn status(dir: &Path) -> Result<Status, CtlError> {
    match request(dir, &ToSidecar::Status, Duration::from_secs(10)).await? {
        FromSidecar::Status { status } => Ok(*status),
        other => Err(CtlError::Unexpected(format!("{other:?}"))),
    }
}

/// `ctl swap`: waits for the swap to finish (succeeded or failed) and returns its record.
pub async fn swap(
    dir: &Path,
    to: Option<String>,
    timeout: Duration,
) -> Result<SwapRecord, CtlError> {
    match request(dir, &ToSidecar::Swap { to }, timeout).await? {
        FromSidecar::SwapResult { record } => Ok(record),
        other => Err(CtlError::Unexpected(format!("{other:?}"))),
    }
}

/// Polls `status` until `pred` holds or `timeout` passes; returns the last status.
pub async fn wait_status(
    dir: &Path,
    timeout: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Result<Status, CtlError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = status(dir).await;
        match &last {
            Ok(s) if pred(s) => return last,
            _ if tokio::time::Instant::now() >= deadline => {
                return match last {
                    Ok(s) => Err(CtlError::Unexpected(format!(
                        "condition not met in {timeout:?}; last status: {}",
                        serde_json::to_string(&s).unwrap_or_default()
                    ))),
                    Err(e) => Err(e),
                };
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
