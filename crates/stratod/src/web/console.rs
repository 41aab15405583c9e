//! The browser console: a WebSocket per viewer. The daemon sends the log's latest 64 KiB
//! first, then each chunk as the guest writes it (binary frames, from the domain's console
//! follow, as StreamConsole sends them); what the viewer types (binary or text frames)
//! goes to the guest's serial line through the domain's SendConsoleInput. Notices for the
//! viewer (the instance stopped taking input, the console ended) come as text frames of
//! JSON `{"notice"}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::{Web, WebError};

/// The largest frame a viewer may send.
const MAX_FRAME: usize = crate::cloud::compute::console::MAX_CONSOLE_INPUT;

/// How often input the monitor's queue had no room for is offered again.
const INPUT_RETRY: Duration = Duration::from_millis(20);

/// How long input may make no progress (the guest reads nothing) before the rest is
/// dropped.
const INPUT_STALL: Duration = Duration::from_secs(10);

/// GET /api/instances/{id}/console: the WebSocket.
pub(super) async fn console(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, WebError> {
    let account = web.caller(&headers)?;
    // A page of another site may open a WebSocket here with the viewer's cookie: only
    // this origin's pages may.
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, h)| h);
        if host.is_none() || origin_host != host {
            return Err(WebError::Bad(
                "the console may only be opened from this web view's own pages".into(),
            ));
        }
    }
    let output = web.cloud.follow_console(&account, &id)?;
    // Typed input comes in keystrokes and pastes: a frame larger than one console input
    // request is refused by the WebSocket layer.
    Ok(ws
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| run(web, account, id, output, socket)))
}

fn notice(text: &str) -> Message {
    Message::Text(serde_json::json!({ "notice": text }).to_string().into())
}

async fn run(
    web: Arc<Web>,
    account: String,
    id: String,
    mut output: tokio::sync::mpsc::Receiver<Vec<u8>>,
    mut socket: WebSocket,
) {
    loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Some(c) => {
                    if socket.send(Message::Binary(c.into())).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = socket.send(notice("The instance is terminated: the console has ended.")).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            msg = socket.recv() => {
                let data: Vec<u8> = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                };
                if let Err(n) = send_input(&web, &account, &id, &data).await {
                    if socket.send(notice(&n)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Delivers all of `data`, offering what the monitor's queue had no room for again; `Err`
/// is a notice for the viewer.
async fn send_input(web: &Web, account: &str, id: &str, data: &[u8]) -> Result<(), String> {
    let mut rest = data;
    let mut progress = std::time::Instant::now();
    while progress.elapsed() < INPUT_STALL {
        if rest.is_empty() {
            return Ok(());
        }
        let chunk = &rest[..rest
            .len()
            .min(crate::cloud::compute::console::MAX_CONSOLE_INPUT)];
        let done = web
            .cloud
            .console_input(account, id, chunk, false)
            .await
            .map_err(|e| e.message)?;
        let n = usize::try_from(done.accepted)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        rest = &rest[n..];
        if n == 0 {
            tokio::time::sleep(INPUT_RETRY).await;
        } else {
            progress = std::time::Instant::now();
        }
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} bytes of input were dropped: the guest is not reading its serial line.",
            rest.len()
        ))
    }
}
