//! `strato console`: an instance's serial console, as `virsh console` gives a domain's.
//! Output comes live from StreamConsole (what is buffered first); what the user types goes
//! to the guest's serial line through SendConsoleInput, read out of a terminal in raw mode
//! key by key, or out of a pipe line by line. The escapes are in [`escape`].

mod escape;
mod terminal;

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::Duration;

use strato_proto::v1::{SendConsoleInputRequest, StreamConsoleRequest};
use tokio::sync::mpsc;

use crate::conn::Conn;
use crate::error::CliError;
use escape::{Action, Escapes};

/// How long to wait before typing again what the guest's input queue had no room for.
const RETRY: Duration = Duration::from_millis(50);

/// Most bytes one SendConsoleInput carries (the daemon's limit).
const MAX_INPUT: usize = 16 * 1024;

/// How a console session ended.
enum End {
    /// The instance is gone (terminated): its console stream ended.
    Closed,
    /// The user detached.
    Detached,
}

/// Opens the console of `instance_id` until it ends, the user detaches, or (input not from
/// a terminal) Ctrl-C.
pub async fn run(conn: &Conn, instance_id: String) -> Result<(), CliError> {
    let mut stream = conn
        .compute()
        .stream_console(StreamConsoleRequest {
            instance_id: instance_id.clone(),
        })
        .await
        .map_err(conn.error("StreamConsole"))?
        .into_inner();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let raw = if interactive {
        Some(terminal::RawMode::enter(&stdin)?)
    } else {
        None
    };
    // In raw mode the terminal no longer turns LF into CR LF.
    let nl = if interactive { "\r\n" } else { "\n" };
    eprint!(
        "Connected to the console of {instance_id}. Ctrl-] detaches; ~B at the start of a \
         line sends a BREAK; ~? lists the escapes.{nl}"
    );
    let keys = read_input(interactive);
    let output = async {
        let mut stdout = std::io::stdout();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(conn.error("StreamConsole"))?
        {
            // Flush every chunk: a person is watching, live.
            stdout.write_all(&chunk.data)?;
            stdout.flush()?;
        }
        Ok::<End, CliError>(End::Closed)
    };
    let input = type_input(conn, &instance_id, keys, Escapes::new(!interactive), nl);
    let ctrl_c = async {
        // A terminal in raw mode sends Ctrl-C to the guest; only a pipe's reader stops here.
        if interactive {
            std::future::pending::<()>().await;
        }
        let _ = tokio::signal::ctrl_c().await;
    };
    let end = tokio::select! {
        end = output => end,
        end = input => end,
        _ = ctrl_c => Ok(End::Detached),
    };
    drop(raw);
    if let Ok(End::Detached) = end {
        eprintln!("\nDetached from the console of {instance_id}.");
    }
    end.map(drop)
}

/// What the user types, chunk by chunk: a terminal's keys as they come, or a pipe's lines.
/// A plain thread reads (a blocked read of stdin must not keep the runtime from ending);
/// the channel closes at the end of input.
fn read_input(interactive: bool) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            let mut chunk = Vec::new();
            let read = if interactive {
                let mut buf = [0u8; 1024];
                stdin.read(&mut buf).inspect(|&n| {
                    chunk.extend_from_slice(buf.get(..n).unwrap_or_default());
                })
            } else {
                stdin.read_until(b'\n', &mut chunk)
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.blocking_send(chunk).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Types what the user's input asks for until a detach; at the end of input it waits on
/// (the output goes on until the instance is gone).
async fn type_input(
    conn: &Conn,
    instance_id: &str,
    mut keys: mpsc::Receiver<Vec<u8>>,
    mut escapes: Escapes,
    nl: &str,
) -> Result<End, CliError> {
    let mut line = Line::new(conn, instance_id);
    loop {
        let actions = match keys.recv().await {
            Some(chunk) => escapes.feed(&chunk),
            None => {
                for action in escapes.finish() {
                    if let Action::Type(bytes) = action {
                        line.send(&bytes, false, nl).await?;
                    }
                }
                return std::future::pending().await;
            }
        };
        for action in actions {
            match action {
                Action::Type(bytes) => line.send(&bytes, false, nl).await?,
                Action::Break => line.send(&[], true, nl).await?,
                Action::Detach => return Ok(End::Detached),
                Action::Help => eprint!("{}{nl}", escape::HELP.replace('\n', nl)),
            }
        }
    }
}

/// The guest's serial line, through SendConsoleInput.
struct Line<'a> {
    conn: &'a Conn,
    instance_id: &'a str,
    /// Whether the user was told that input is being dropped (the instance is not
    /// running), so that it is said once, not for every key.
    told_dropped: bool,
}

impl<'a> Line<'a> {
    fn new(conn: &'a Conn, instance_id: &'a str) -> Self {
        Self {
            conn,
            instance_id,
            told_dropped: false,
        }
    }

    /// Types `data`, then a BREAK if `send_break`, all of it: what the guest's input queue
    /// has no room for is sent again once the guest has read some. While the instance is
    /// not running, input is dropped (and the user told so).
    async fn send(&mut self, data: &[u8], send_break: bool, nl: &str) -> Result<(), CliError> {
        let mut chunks: Vec<&[u8]> = data.chunks(MAX_INPUT).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut rest = chunk;
            let mut want_break = send_break && i == last;
            loop {
                let request = SendConsoleInputRequest {
                    instance_id: self.instance_id.to_string(),
                    data: rest.to_vec(),
                    send_break: want_break,
                };
                let reply = match self.conn.compute().send_console_input(request).await {
                    Ok(reply) => reply.into_inner(),
                    Err(status) => {
                        let err = self.conn.error("SendConsoleInput")(status);
                        if let CliError::Service { code, .. } = &err {
                            if code == "IncorrectInstanceState" {
                                if !std::mem::replace(&mut self.told_dropped, true) {
                                    eprint!(
                                        "[{} is not running: input dropped]{nl}",
                                        self.instance_id
                                    );
                                }
                                return Ok(());
                            }
                        }
                        return Err(err);
                    }
                };
                self.told_dropped = false;
                let accepted = usize::try_from(reply.accepted).unwrap_or(0).min(rest.len());
                rest = rest.get(accepted..).unwrap_or_default();
                want_break &= !reply.break_sent;
                if rest.is_empty() && !want_break {
                    break;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
        Ok(())
    }
}
