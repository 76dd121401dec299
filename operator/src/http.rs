//! The HTTP endpoints: `/livez` (the process runs), `/readyz` (a standby replica, or a
//! leader whose controllers' caches synced and whose every group loop has read its
//! record) and `/metrics`. A small HTTP/1.1
//! responder: probes and a scrape need nothing more.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::warn;

use crate::controllers::Shared;

/// Listen on `addr` (a port taken is an error at start, not a silent probe failure).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serve the endpoints on `listener` for ever.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match stream.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    warn!(error = %e, "probe connection");
                    return;
                }
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/livez" => (200, "ok".to_string()),
                "/readyz" => ready(&shared).await,
                "/metrics" => (200, shared.metrics.render()),
                _ => (404, "not found".to_string()),
            };
            let reason = if code == 200 {
                "OK"
            } else {
                "Service Unavailable"
            };
            let reason = if code == 404 { "Not Found" } else { reason };
            let response = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// Ready once every group loop has read its record (a loop that cannot reach DynamoDB
/// keeps the process unready, so a rollout waits).
async fn ready(shared: &Shared) -> (u16, String) {
    if let Some(missing) = shared.missing.lock().expect("missing").clone() {
        return (503, missing);
    }
    if !shared.leading.load(std::sync::atomic::Ordering::Relaxed) {
        return (200, "ok: standby replica".into());
    }
    let watched = shared.config.namespaces.len().max(1);
    let synced = shared.synced.load(std::sync::atomic::Ordering::Relaxed);
    if synced < watched {
        return (
            503,
            format!("caches synced for {synced} of {watched} namespaces"),
        );
    }
    let loops = shared.loops.lock().await;
    let waiting: Vec<&String> = loops
        .iter()
        .filter(|(_, r)| r.handle.view.borrow().record.is_none())
        .map(|(k, _)| k)
        .collect();
    if waiting.is_empty() {
        (200, format!("ok: {} groups", loops.len()))
    } else {
        (503, format!("records not read yet: {waiting:?}"))
    }
}
