//! The HTTP/1.1 server of `plunk serve`: hyper serving the API's router, with the peer address in
//! every request (per-source limits read it) and a graceful stop. Two things it does that
//! `axum::serve` does not:
//!
//! - **Every answer in the envelope.** hyper answers requests it cannot parse itself, with an
//!   empty body: a malformed request line or header (400), a URI over 64 KiB (414), a header
//!   section over its limits (431). The connection's writer recognises those answers (no
//!   `X-Request-Id`: every answer of the API has one) and sends the error envelope instead, with
//!   codes `MALFORMED_REQUEST`, `URI_TOO_LONG` and `HEADERS_TOO_LARGE`.
//! - **Lingering close.** When a request is refused before its body is read (401, 413, 429), the
//!   connection closes with bytes the client is still sending; closing then makes the kernel
//!   reset the connection, and the client may see a broken pipe instead of the answer. So the
//!   write side is shut first and what the client still sends is read and dropped (at most
//!   [`LINGER_BYTES`], for at most [`LINGER_TIME`]) before the socket closes.

use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use plunk_http_kit::{ApiError, ErrorCode};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Headers a request may carry (hyper's default is 100; more reach the API, which ignores them).
pub const MAX_HEADERS: usize = 500;
/// At most this much of an unread request is read and dropped when a connection closes.
pub const LINGER_BYTES: usize = 8 << 20;
/// For at most this long.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// How long a graceful stop waits for open connections.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `stop` completes, then lets open connections finish.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    stop: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: tower::Service<
            http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send,
{
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A failed accept (out of descriptors, a reset before accept) ends nothing else.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        connections.spawn(connection(stream, peer, app.clone(), stopped.clone()));
        while connections.try_join_next().is_some() {}
    }
    let _ = stopping.send(true);
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One connection: requests until it closes or the server stops, then the lingering close.
async fn connection<S>(
    stream: TcpStream,
    peer: SocketAddr,
    app: S,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) where
    S: tower::Service<
            http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send,
{
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        Box::pin(app.clone().oneshot(req))
    });
    let io = TokioIo::new(EnvelopeWriter::new(stream));
    let mut conn = hyper::server::conn::http1::Builder::new()
        .max_headers(MAX_HEADERS)
        .serve_connection(io, service);
    let mut signal = Box::pin(stopped.wait_for(|stopping| *stopping));
    let mut stopping = false;
    let served = std::future::poll_fn(|cx| {
        if !stopping && signal.as_mut().poll(cx).is_ready() {
            stopping = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        conn.poll_without_shutdown(cx)
    })
    .await;
    if let Err(e) = &served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    let stream = conn.into_parts().io.into_inner();
    linger(stream).await;
}

/// Shuts the write side, then reads and drops what the client still sends (bounded).
async fn linger(mut writer: EnvelopeWriter) {
    if writer.shutdown().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match writer.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The envelope for hyper's own answer with `status`, if it is one of those it sends.
fn envelope_for(status: &[u8]) -> Option<(u16, ApiError)> {
    let (code, message) = match status {
        b"400" => (
            ErrorCode::MalformedRequest,
            "The request line or a header is not valid HTTP/1.1",
        ),
        b"414" => (ErrorCode::UriTooLong, "The request URI is too long"),
        b"431" => (
            ErrorCode::HeadersTooLarge,
            "The request has too many headers or they are too large",
        ),
        _ => return None,
    };
    Some((code.status().as_u16(), ApiError::new(code, message)))
}

/// If `buf` is a whole response head hyper wrote by itself (no `X-Request-Id`), the envelope
/// response that replaces it.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    let status = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (code, error) = envelope_for(status)?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("\r\nx-request-id:") {
        return None;
    }
    let request_id = uuid::Uuid::now_v7().to_string();
    let body = plunk_http_kit::pipeline::envelope_bytes(&error, &request_id);
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

/// A connection whose writer swaps hyper's bare error answers for the envelope (see the module
/// documentation). Writes are not vectored, so hyper hands each response over in one buffer.
struct EnvelopeWriter {
    stream: TcpStream,
    /// Replacement bytes still to write.
    pending: Vec<u8>,
}

impl EnvelopeWriter {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Writes out `pending`; ready once it is empty.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for EnvelopeWriter {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for EnvelopeWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_pending(cx))?;
        if let Some(replacement) = replacement(buf) {
            self.pending = replacement;
            // The original is taken whole; the replacement goes out from here on.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_answers_are_replaced() {
        let bare =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let replaced = String::from_utf8(replacement(bare).unwrap()).unwrap();
        assert!(replaced.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(
            replaced.contains("\"code\":\"HEADERS_TOO_LARGE\""),
            "{replaced}"
        );
        assert!(replaced.contains("x-request-id: "));
        let ours = b"HTTP/1.1 400 Bad Request\r\nx-request-id: abc\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(replacement(ours), None);
        assert_eq!(replacement(b"HTTP/1.1 200 OK\r\n\r\n"), None);
        assert!(replacement(b"HTTP/1.1 414 URI Too Long\r\n\r\n").is_some());
    }
}
