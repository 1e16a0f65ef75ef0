//! A scheduler's stderr, kept so that a failed callback can say why. A Rust
//! scheduler that panics prints the panic's message to stderr and then
//! traps (`unreachable`); with stderr closed, the host could only report the
//! bare trap, and the message the author wrote would be lost (its `log`
//! lines are dropped with the failed callback too). Only the last [`KEEP`]
//! bytes written during the current callback are kept; writing never
//! blocks, fails or grows memory, whatever the guest writes.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of stderr kept: room for a panic message, its location and some
/// lines before it, yet nothing a chatty scheduler can grow.
const KEEP: usize = 4096;

/// The tail of what the guest wrote to stderr. Clones share the buffer: the
/// WASI context writes through one, the instance reads through another.
#[derive(Clone, Default)]
pub(crate) struct GuestStderr(Arc<Mutex<VecDeque<u8>>>);

impl GuestStderr {
    fn append(&self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(KEEP)..];
        let mut tail = self.lock();
        let overflow = (tail.len() + bytes.len()).saturating_sub(KEEP);
        tail.drain(..overflow);
        tail.extend(bytes);
    }

    /// What the guest wrote since the last [`clear`](Self::clear), as text
    /// (lossily: the tail may start mid-character), trimmed.
    pub(crate) fn text(&self) -> String {
        let mut tail = self.lock();
        String::from_utf8_lossy(tail.make_contiguous())
            .trim()
            .to_string()
    }

    /// Forgets earlier output, so that a trap reports only its own callback's.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<u8>> {
        // The buffer is plain bytes: a panic elsewhere cannot leave it
        // inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Any amount: whatever does not fit in the tail pushes out the oldest.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestStderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_clears() {
        let s = GuestStderr::default();
        s.append(b"  first\n");
        assert_eq!(s.text(), "first");
        s.append(&vec![b'x'; KEEP]);
        s.append(b"last words\n");
        let text = s.text();
        assert_eq!(text.len(), KEEP - 1, "trimmed newline");
        assert!(text.ends_with("xlast words"), "{text}");
        s.clear();
        assert_eq!(s.text(), "");
        s.append(&vec![b'y'; 3 * KEEP]);
        assert_eq!(s.text().len(), KEEP);
    }
}
