//! A control-socket connection: JSON lines over a Unix stream socket, with SCM_RIGHTS
//! descriptors queued in arrival order and claimed by the line that announces them.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::net::UnixStream;

use super::fds::{self, MAX_FDS_PER_MSG};
use crate::contract::protocol::{self, DecodeError, MAX_LINE};

/// Errors on a control connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The line is longer than [`MAX_LINE`]: framing is lost, the connection must close.
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    /// A line announced more descriptors than arrived with it.
    #[error("message announced {0} fds but {1} arrived")]
    MissingFds(usize, usize),
    /// The line is not a valid message (the connection may go on).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No answer in time.
    #[error("timed out waiting for the sidecar")]
    Timeout,
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
}

impl ConnError {
    /// Whether the connection can go on after this error (a bad message, answered with an
    /// error reply), as opposed to a broken stream.
    pub fn recoverable(&self) -> bool {
        matches!(self, ConnError::Decode(_) | ConnError::MissingFds(..))
    }
}

/// One framed connection.
pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    consumed: u64,
    /// Received descriptors, each with the stream offset of the last byte of the read it came
    /// with: a descriptor belongs to a line only if that read held part of the line.
    fds: VecDeque<(u64, OwnedFd)>,
    eof: bool,
}

impl Conn {
    /// Wraps a connected stream.
    pub fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            consumed: 0,
            fds: VecDeque::new(),
            eof: false,
        }
    }

    /// Connects to the control socket at `path`.
    pub async fn connect(path: &Path) -> io::Result<Self> {
        Ok(Conn::new(UnixStream::connect(path).await?))
    }

    /// The underlying socket (for SO_PEERCRED).
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Receives the next message and the descriptors it announced. `Ok(None)` at end of stream.
    /// Cancel-safe: partial input stays buffered in `self`.
    pub async fn recv<T: DeserializeOwned>(
        &mut self,
    ) -> Result<Option<(T, Vec<OwnedFd>)>, ConnError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line_start = self.consumed;
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                self.consumed += line.len() as u64;
                let line = &line[..line.len() - 1];
                // Descriptors that came with earlier bytes were not claimed by their line:
                // they belong to nobody, close them.
                while self.fds.front().is_some_and(|(end, _)| *end < line_start) {
                    self.fds.pop_front();
                }
                let announced = protocol::announced_fds(line);
                let take = announced.min(self.fds.len());
                let got: Vec<OwnedFd> = self.fds.drain(..take).map(|(_, fd)| fd).collect();
                if take < announced {
                    return Err(ConnError::MissingFds(announced, take));
                }
                let (msg, _) = protocol::decode::<T>(line)?;
                return Ok(Some((msg, got)));
            }
            if self.buf.len() > MAX_LINE {
                return Err(ConnError::TooLong);
            }
            if self.eof {
                return Ok(None);
            }
            let mut chunk = [0u8; 8192];
            let fd = self.stream.as_fd();
            let fdq = &mut self.fds;
            let mut got = Vec::new();
            let n = self
                .stream
                .async_io(Interest::READABLE, || {
                    fds::recv_with_fds(fd, &mut chunk, &mut got)
                })
                .await?;
            let end = self.consumed + (self.buf.len() + n.max(1)) as u64 - 1;
            fdq.extend(got.into_iter().map(|fd| (end, fd)));
            if n == 0 {
                self.eof = true;
                if !self.buf.is_empty() {
                    // A last line without newline is still a line.
                    self.buf.push(b'\n');
                }
            } else {
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }
    }

    /// Like [`Conn::recv`], with a deadline; end of stream is [`ConnError::Closed`].
    pub async fn recv_timeout<T: DeserializeOwned>(
        &mut self,
        timeout: Duration,
    ) -> Result<(T, Vec<OwnedFd>), ConnError> {
        match tokio::time::timeout(timeout, self.recv()).await {
            Err(_) => Err(ConnError::Timeout),
            Ok(Ok(None)) => Err(ConnError::Closed),
            Ok(Ok(Some(m))) => Ok(m),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Sends one message with `fds` attached. More than 253 descriptors are split over several
    /// SCM_RIGHTS messages, each riding on its own slice of the same line.
    pub async fn send<T: Serialize>(
        &mut self,
        msg: &T,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), ConnError> {
        let mut line = protocol::encode(msg, fds.len());
        let groups: Vec<&[BorrowedFd<'_>]> = fds.chunks(MAX_FDS_PER_MSG).collect();
        // Every group needs at least one byte to ride on: pad with JSON whitespace if needed.
        while line.len() < groups.len() + 1 {
            line.insert(line.len() - 1, b' ');
        }
        let mut off = 0;
        for (i, group) in groups.iter().enumerate() {
            let end = if i + 1 == groups.len() {
                line.len()
            } else {
                off + 1
            };
            off = self.write_all_with(&line[off..end], group).await? + off;
        }
        if off < line.len() {
            self.write_all_with(&line[off..], &[]).await?;
        }
        Ok(())
    }

    /// Writes `bytes`, the descriptors riding on the first write; returns `bytes.len()`.
    async fn write_all_with(
        &mut self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<usize, ConnError> {
        let mut sent = 0;
        let mut first = true;
        while sent < bytes.len() {
            let sock = self.stream.as_fd();
            let attach: &[BorrowedFd<'_>] = if first { fds } else { &[] };
            let n = self
                .stream
                .async_io(Interest::WRITABLE, || {
                    fds::send_with_fds(sock, &bytes[sent..], attach)
                })
                .await?;
            if n == 0 {
                return Err(ConnError::Closed);
            }
            first = false;
            sent += n;
        }
        Ok(bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::protocol::{FromSidecar, ToSidecar};

    #[tokio::test]
    async fn more_than_253_fds_arrive_in_order_with_their_line() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut tx, mut rx) = (Conn::new(a), Conn::new(b));
        // 300 distinct descriptors: more than one SCM_RIGHTS message can carry.
        let pairs: Vec<(
            std::os::unix::net::UnixStream,
            std::os::unix::net::UnixStream,
        )> = (0..150)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        let fds: Vec<BorrowedFd<'_>> = pairs
            .iter()
            .flat_map(|(x, y)| [x.as_fd(), y.as_fd()])
            .collect();
        let names: Vec<String> = (0..fds.len()).map(|i| format!("s{i}")).collect();
        tx.send(
            &FromSidecar::Start {
                names: names.clone(),
            },
            &fds,
        )
        .await
        .unwrap();
        tx.send(&FromSidecar::Standby, &[]).await.unwrap();
        let (m, got) = rx.recv::<FromSidecar>().await.unwrap().unwrap();
        assert_eq!(m, FromSidecar::Start { names });
        assert_eq!(got.len(), 300);
        // Same sockets, same order: compare inode numbers.
        let ino = |fd: BorrowedFd<'_>| nix::sys::stat::fstat(fd).unwrap().st_ino;
        for (sent, recv) in fds.iter().zip(&got) {
            assert_eq!(ino(*sent), ino(recv.as_fd()));
            assert!(fds::is_cloexec(recv.as_fd()).unwrap());
        }
        let (m, got) = rx.recv::<FromSidecar>().await.unwrap().unwrap();
        assert_eq!((m, got.len()), (FromSidecar::Standby, 0));
    }

    #[tokio::test]
    async fn stray_fds_are_not_given_to_a_later_line() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut rx = Conn::new(b);
        let (x, _y) = std::os::unix::net::UnixStream::pair().unwrap();
        // A line that announces nothing but carries an fd, then a line that announces one but
        // carries none: the stray fd must not be handed to the second line.
        fds::send_with_fds(a.as_fd(), b"{\"v\":1,\"type\":\"status\"}\n", &[x.as_fd()]).unwrap();
        let (m, got) = rx.recv::<ToSidecar>().await.unwrap().unwrap();
        assert_eq!((m, got.len()), (ToSidecar::Status, 0));
        fds::send_with_fds(a.as_fd(), b"{\"v\":1,\"type\":\"status\",\"fds\":1}\n", &[]).unwrap();
        let e = rx.recv::<ToSidecar>().await.unwrap_err();
        assert!(matches!(e, ConnError::MissingFds(1, 0)), "{e}");
    }
}
