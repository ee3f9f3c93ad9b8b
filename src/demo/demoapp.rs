//! The demo app (`zdr-agent demo-app`): a small HTTP/1.1 keep-alive server that takes its
//! socket the systemd way (or binds one itself, for the benchmark's naive variants), says
//! `READY=1`, answers with an `X-Version` header, and drains without resetting anything.
//!
//! Drain (on the drain signal): stop accepting (the shared socket stays open for the others),
//! finish in-flight requests, answer the next request on each keep-alive connection with
//! `Connection: close`, close connections that stay idle for `idle_close`, half-close and read
//! to EOF before closing (so unread client bytes never turn the close into a reset), then exit.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::agent::{fds, notify, sockets};

/// Settings of the demo app; also its command line (`zdr-agent demo-app`).
#[derive(Clone, Debug, clap::Args)]
pub struct DemoAppConfig {
    /// Value of the `X-Version` header and of the body (under `zdr-agent exec`, the slot's
    /// version label, `ZDR_VERSION`).
    #[arg(long, env = "ZDR_VERSION", default_value = "v1")]
    pub version: String,
    /// Signal that starts the drain.
    #[arg(long, default_value = "SIGTERM", value_parser = crate::agent::cli::parse_signal)]
    pub drain_signal: i32,
    /// Bind this address itself instead of taking LISTEN_FDS (benchmark's naive variants).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// With `bind`: set SO_REUSEPORT (the naive overlap variant).
    #[arg(long)]
    pub reuseport: bool,
    /// Wait this long before `READY=1` (a slow start-up).
    #[arg(long, default_value = "0ms", value_parser = crate::agent::cli::parse_duration)]
    pub ready_delay: Duration,
    /// Never send `READY=1` (a version that never becomes ready).
    #[arg(long)]
    pub never_ready: bool,
    /// A start-up failure: exit with code 3 after this long, without accepting or READY=1.
    #[arg(long, value_parser = crate::agent::cli::parse_duration)]
    pub exit_after: Option<Duration>,
    /// While draining, close a keep-alive connection idle this long.
    #[arg(long, default_value = "2s", value_parser = crate::agent::cli::parse_duration)]
    pub idle_close: Duration,
}

/// Demo app errors.
#[derive(Debug, thiserror::Error)]
pub enum DemoAppError {
    /// Taking the passed sockets failed.
    #[error(transparent)]
    ListenFds(#[from] fds::ListenFdsError),
    /// No socket passed and none to bind.
    #[error("no LISTEN_FDS socket and no --bind address")]
    NoSocket,
    /// I/O.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

fn listener_from(fd: OwnedFd) -> Result<Listener, DemoAppError> {
    let io = |e| DemoAppError::Io("listener", e);
    let addr = sockets::local_addr(fd.as_fd()).map_err(io)?;
    // Note: O_NONBLOCK is set on the shared open file description, i.e. for every holder.
    if addr.starts_with("unix:") {
        let l = std::os::unix::net::UnixListener::from(fd);
        l.set_nonblocking(true).map_err(io)?;
        Ok(Listener::Unix(UnixListener::from_std(l).map_err(io)?))
    } else {
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true).map_err(io)?;
        Ok(Listener::Tcp(TcpListener::from_std(l).map_err(io)?))
    }
}

fn bind_own(addr: std::net::SocketAddr, reuseport: bool) -> Result<OwnedFd, DemoAppError> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, listen,
        setsockopt, socket, sockopt,
    };
    use std::os::fd::AsRawFd;
    let e = |e: nix::Error| DemoAppError::Io("bind", e.into());
    let fam = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(fam, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(e)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(e)?;
    if reuseport {
        setsockopt(&fd, sockopt::ReusePort, &true).map_err(e)?;
    }
    match addr {
        std::net::SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)).map_err(e)?,
        std::net::SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)).map_err(e)?,
    }
    listen(&fd, Backlog::new(1024).map_err(e)?).map_err(e)?;
    Ok(fd)
}

/// Runs the demo app until drained; returns its exit code.
pub async fn run(cfg: DemoAppConfig) -> Result<i32, DemoAppError> {
    let mut passed = fds::take_listen_fds()?;
    let fd = if !passed.is_empty() {
        // The socket named `http`, else the first one; the others are closed.
        let i = passed.iter().position(|(n, _)| n == "http").unwrap_or(0);
        passed.swap_remove(i).1
    } else if let Some(addr) = cfg.bind {
        bind_own(addr, cfg.reuseport)?
    } else {
        return Err(DemoAppError::NoSocket);
    };
    drop(passed);
    let listener = listener_from(fd)?;
    let mut drain_sig = signal(SignalKind::from_raw(cfg.drain_signal))
        .map_err(|e| DemoAppError::Io("signal", e))?;

    if let Some(d) = cfg.exit_after {
        // Like a bad configuration found at start-up: no accept, no READY=1, then exit.
        tokio::time::sleep(d).await;
        eprintln!("demo-app: start-up failure on purpose (--exit-after)");
        return Ok(3);
    }
    if !cfg.never_ready {
        let delay = cfg.ready_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = notify::notify("READY=1") {
                eprintln!("demo-app: READY=1 not sent: {e}");
            }
        });
    }

    let (drain_tx, drain_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let version: std::sync::Arc<str> = cfg.version.clone().into();
    let mut listener = Some(listener);
    loop {
        tokio::select! {
            _ = drain_sig.recv() => break,
            acc = accept_some(&listener) => match acc {
                Ok(stream) => {
                    let v = version.clone();
                    let rx = drain_rx.clone();
                    let idle = cfg.idle_close;
                    match stream {
                        Accepted::Tcp(s) => { conns.spawn(serve_conn(s, v, rx, idle)); }
                        Accepted::Unix(s) => { conns.spawn(serve_conn(s, v, rx, idle)); }
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {
                    // The shared listener was shut down (by someone else): nothing more to
                    // accept here; keep serving open connections until told to drain.
                    eprintln!("demo-app: listener is no longer listening; stopped accepting");
                    listener = None;
                }
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    eprintln!("demo-app: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Stop accepting: closing our copy leaves the shared socket (and its queue) to the others.
    drop(listener);
    let _ = drain_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(0)
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Accepts from the listener; pending forever once there is none.
async fn accept_some(l: &Option<Listener>) -> std::io::Result<Accepted> {
    match l {
        Some(l) => accept(l).await,
        None => std::future::pending().await,
    }
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    match l {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            Accepted::Tcp(s)
        }),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Request path.
    pub path: String,
    /// `Content-Length`.
    pub content_length: usize,
    /// The client asked to close (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// Parses a request head (without the final empty line). `None` if malformed.
pub fn parse_head(head: &str) -> Option<RequestHead> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (_method, path, proto) = (first.next()?, first.next()?, first.next()?);
    let mut close = proto == "HTTP/1.0";
    let mut content_length = 0;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        if k.eq_ignore_ascii_case("content-length") {
            content_length = v.parse().ok()?;
        } else if k.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            return None; // Not supported by the demo app.
        }
    }
    Some(RequestHead {
        path: path.to_owned(),
        content_length,
        close,
    })
}

async fn serve_conn<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    version: std::sync::Arc<str>,
    mut drain: watch::Receiver<bool>,
    idle_close: Duration,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        // Read one request head.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            if buf.len() > 16 * 1024 {
                return;
            }
            let idle = buf.is_empty();
            let wait = if *drain.borrow() && idle {
                idle_close
            } else {
                Duration::from_secs(120)
            };
            tokio::select! {
                r = s.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
                _ = drain.changed(), if !*drain.borrow() => {}
                _ = tokio::time::sleep(wait) => {
                    // Idle while draining (or a stuck client): close gracefully.
                    graceful_close(&mut s).await;
                    return;
                }
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let Some(req) = parse_head(&head) else {
            let _ = s
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            graceful_close(&mut s).await;
            return;
        };
        // Discard a body, if any.
        while buf.len() < req.content_length {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..req.content_length);
        if let Some(ms) = req
            .path
            .strip_prefix("/sleep/")
            .and_then(|m| m.parse::<u64>().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
        }
        let close = req.close || *drain.borrow();
        let body = format!("hello from {version}\n");
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Version: {version}\r\nConnection: {}\r\n\r\n{body}",
            body.len(),
            if close { "close" } else { "keep-alive" }
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        if close {
            graceful_close(&mut s).await;
            return;
        }
    }
}

/// Half-closes, then reads until the client closes (at most 2 s), so that bytes the client sent
/// meanwhile do not make the kernel answer our close with a reset.
async fn graceful_close<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) {
    let _ = s.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close").unwrap();
        assert_eq!(
            h,
            RequestHead {
                path: "/x".into(),
                content_length: 0,
                close: true
            }
        );
        let h = parse_head("POST / HTTP/1.1\r\nContent-Length: 5").unwrap();
        assert_eq!((h.content_length, h.close), (5, false));
        assert!(parse_head("GET / HTTP/1.0").unwrap().close);
        assert!(parse_head("garbage").is_none());
        assert!(parse_head("GET / HTTP/1.1\r\nTransfer-Encoding: chunked").is_none());
    }
}
