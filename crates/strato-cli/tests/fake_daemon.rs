//! Runs the `strato` binary against an in-process fake daemon on a Unix socket: proves the
//! connector, the bearer token, paging, console streaming, output, error printing and
//! exit statuses end to end.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Output;

use strato_proto::v1::compute_server::{Compute, ComputeServer};
use strato_proto::v1::{
    ConsoleChunk, DescribeInstanceStatusRequest, DescribeInstanceStatusResponse,
    DescribeInstanceTypesRequest, DescribeInstanceTypesResponse, DescribeInstancesRequest,
    DescribeInstancesResponse, GetConsoleOutputRequest, GetConsoleOutputResponse, Instance,
    InstanceState, InstanceStateChanges, ModifyInstanceAttributeRequest,
    ModifyInstanceAttributeResponse, ModifyInstanceMetadataOptionsRequest,
    ModifyInstanceMetadataOptionsResponse, RebootInstancesRequest, RebootInstancesResponse,
    RunInstancesRequest, RunInstancesResponse, SendConsoleInputRequest, SendConsoleInputResponse,
    StartInstancesRequest, StopInstancesRequest, StreamConsoleRequest, TerminateInstancesRequest,
};
use strato_proto::ERROR_CODE_METADATA;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

const TOKEN: &str = "s3cret";

/// A Status as the daemon shapes it: code in the metadata and as the message prefix.
fn ec2_error(code: &'static str, message: &str) -> Status {
    let mut status = Status::invalid_argument(format!("{code}: {message}"));
    status
        .metadata_mut()
        .insert(ERROR_CODE_METADATA, MetadataValue::from_static(code));
    status
}

fn authorize<T>(request: &Request<T>) -> Result<(), Status> {
    match request.metadata().get("authorization") {
        Some(value) if value == format!("Bearer {TOKEN}").as_str() => Ok(()),
        _ => Err(ec2_error("AuthFailure", "missing or wrong token")),
    }
}

fn instance(id: &str) -> Instance {
    Instance {
        instance_id: id.into(),
        instance_type: "t3.micro".into(),
        state: Some(InstanceState {
            code: 16,
            name: "running".into(),
        }),
        ..Default::default()
    }
}

/// The fake's echo console (instance `i-0000000000000000e`): input comes back on its
/// stream as `echo:<bytes>` or `break`, two bytes taken per call (so the CLI must send the
/// rest again), and the stream ends after a `quit` line.
#[derive(Default)]
struct FakeCompute {
    echo: std::sync::Mutex<Option<tokio::sync::mpsc::Sender<Result<ConsoleChunk, Status>>>>,
    /// Everything the echo console took so far.
    typed: std::sync::Mutex<Vec<u8>>,
}

const ECHO: &str = "i-0000000000000000e";

type Unary<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Compute for FakeCompute {
    async fn describe_instances(
        &self,
        request: Request<DescribeInstancesRequest>,
    ) -> Unary<DescribeInstancesResponse> {
        authorize(&request)?;
        let request = request.into_inner();
        if request.instance_ids.iter().any(|id| id == "i-missing") {
            return Err(ec2_error(
                "InvalidInstanceID.NotFound",
                "The instance ID 'i-missing' does not exist",
            ));
        }
        // Two pages, to prove that the CLI follows next_token.
        let (id, next_token) = match request.next_token.as_str() {
            "" => ("i-00000000000000001", "page-2"),
            _ => ("i-00000000000000002", ""),
        };
        Ok(Response::new(DescribeInstancesResponse {
            instances: vec![instance(id)],
            next_token: next_token.into(),
        }))
    }

    type StreamConsoleStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<ConsoleChunk, Status>> + Send>>;

    async fn stream_console(
        &self,
        request: Request<StreamConsoleRequest>,
    ) -> Unary<Self::StreamConsoleStream> {
        authorize(&request)?;
        if request.get_ref().instance_id == ECHO {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            *self.echo.lock().unwrap() = Some(tx);
            return Ok(Response::new(Box::pin(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            )));
        }
        let chunks = ["booting\n", "login: "].map(|text| Ok(ConsoleChunk { data: text.into() }));
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks.to_vec()))))
    }

    async fn send_console_input(
        &self,
        request: Request<SendConsoleInputRequest>,
    ) -> Unary<SendConsoleInputResponse> {
        authorize(&request)?;
        let r = request.into_inner();
        let Some(tx) = self.echo.lock().unwrap().clone() else {
            return Err(ec2_error(
                "IncorrectInstanceState",
                "The instance is not running.",
            ));
        };
        let taken = &r.data[..r.data.len().min(2)];
        let mut out = Vec::new();
        if !taken.is_empty() {
            out.push(format!("echo:{}|", String::from_utf8_lossy(taken)));
        }
        let break_sent = r.send_break && taken.len() == r.data.len();
        if break_sent {
            out.push("break|".into());
        }
        for text in out {
            let _ = tx
                .send(Ok(ConsoleChunk {
                    data: text.into_bytes(),
                }))
                .await;
        }
        let mut typed = self.typed.lock().unwrap();
        typed.extend_from_slice(taken);
        if typed.ends_with(b"quit\n") {
            // The console closes, as when the instance is terminated.
            self.echo.lock().unwrap().take();
        }
        Ok(Response::new(SendConsoleInputResponse {
            accepted: taken.len() as i64,
            break_sent,
        }))
    }

    async fn run_instances(&self, _: Request<RunInstancesRequest>) -> Unary<RunInstancesResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn stop_instances(
        &self,
        _: Request<StopInstancesRequest>,
    ) -> Unary<InstanceStateChanges> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn start_instances(
        &self,
        _: Request<StartInstancesRequest>,
    ) -> Unary<InstanceStateChanges> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn reboot_instances(
        &self,
        _: Request<RebootInstancesRequest>,
    ) -> Unary<RebootInstancesResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn terminate_instances(
        &self,
        _: Request<TerminateInstancesRequest>,
    ) -> Unary<InstanceStateChanges> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn modify_instance_attribute(
        &self,
        _: Request<ModifyInstanceAttributeRequest>,
    ) -> Unary<ModifyInstanceAttributeResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn modify_instance_metadata_options(
        &self,
        _: Request<ModifyInstanceMetadataOptionsRequest>,
    ) -> Unary<ModifyInstanceMetadataOptionsResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn describe_instance_types(
        &self,
        _: Request<DescribeInstanceTypesRequest>,
    ) -> Unary<DescribeInstanceTypesResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn describe_instance_status(
        &self,
        _: Request<DescribeInstanceStatusRequest>,
    ) -> Unary<DescribeInstanceStatusResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
    async fn get_console_output(
        &self,
        _: Request<GetConsoleOutputRequest>,
    ) -> Unary<GetConsoleOutputResponse> {
        Err(Status::unimplemented("not in the fake"))
    }
}

/// A fake daemon's `--endpoint`; its socket file goes when the test ends.
struct Fake {
    endpoint: String,
    path: PathBuf,
}

impl std::ops::Deref for Fake {
    type Target = str;

    fn deref(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the fake on a fresh socket and returns its `--endpoint`.
fn start_fake(name: &str) -> Fake {
    let path: PathBuf =
        std::env::temp_dir().join(format!("strato-cli-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind the fake daemon's socket");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ComputeServer::new(FakeCompute::default()))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    Fake {
        endpoint: format!("unix:{}", path.display()),
        path,
    }
}

/// Runs `strato` with `args` against `endpoint`, isolated from the caller's environment.
async fn strato(endpoint: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_strato"))
        .env_remove("STRATO_TOKEN")
        .env_remove("STRATO_OUTPUT")
        .env("STRATO_ENDPOINT", endpoint)
        .args(args)
        .output()
        .await
        .expect("run strato")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8 output")
}

#[tokio::test(flavor = "multi_thread")]
async fn json_output_follows_pages_and_sends_the_token() {
    let endpoint = start_fake("json");
    let out = strato(
        &endpoint,
        &["--token", TOKEN, "--output", "json", "describe-instances"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    let ids: Vec<&str> = value["Reservations"]
        .as_array()
        .expect("Reservations")
        .iter()
        .map(|r| {
            r["Instances"][0]["InstanceId"]
                .as_str()
                .expect("InstanceId")
        })
        .collect();
    assert_eq!(ids, ["i-00000000000000001", "i-00000000000000002"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn table_output_has_a_header_and_rows() {
    let endpoint = start_fake("table");
    let out = strato(&endpoint, &["--token", TOKEN, "describe-instances"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<&str> = text(&out.stdout).lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("INSTANCE "));
    assert!(lines[1].starts_with("i-00000000000000001  "));
}

#[tokio::test(flavor = "multi_thread")]
async fn service_errors_print_like_the_aws_cli() {
    let endpoint = start_fake("errors");
    let out = strato(
        &endpoint,
        &[
            "--token",
            TOKEN,
            "describe-instances",
            "--instance-ids",
            "i-missing",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(254));
    assert_eq!(
        text(&out.stderr),
        "An error occurred (InvalidInstanceID.NotFound) when calling the DescribeInstances \
         operation: The instance ID 'i-missing' does not exist\n"
    );
    assert!(out.stdout.is_empty());

    let out = strato(&endpoint, &["describe-instances"]).await;
    assert_eq!(out.status.code(), Some(254));
    assert!(text(&out.stderr).starts_with("An error occurred (AuthFailure) when calling"));
}

#[tokio::test(flavor = "multi_thread")]
async fn console_streams_until_the_end() {
    let endpoint = start_fake("console");
    let out = strato(
        &endpoint,
        &["--token", TOKEN, "console", "i-00000000000000001"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "booting\nlogin: ");
}

#[tokio::test(flavor = "multi_thread")]
async fn console_types_piped_lines_and_breaks() {
    use tokio::io::AsyncWriteExt;
    let endpoint = start_fake("console-input");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_strato"))
        .env_remove("STRATO_TOKEN")
        .env("STRATO_ENDPOINT", &*endpoint)
        .args(["--token", TOKEN, "console", "--instance-id", ECHO])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run strato");
    // ~B takes its whole line: BREAK, then "b" with no newline in between (SysRq's key).
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n~B\nb\nquit\n").await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("console ended")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "echo:he|echo:ll|echo:o\n|break|echo:b\n|echo:qu|echo:it|echo:\n|"
    );
    assert!(
        text(&out.stderr).contains("Ctrl-] detaches"),
        "{}",
        text(&out.stderr)
    );
}

/// The terminal settings of `fd`.
fn termios(fd: i32) -> libc::termios {
    // SAFETY: termios is plain data, filled by tcgetattr (checked).
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open terminal and `t` a valid termios.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    t
}

#[tokio::test(flavor = "multi_thread")]
async fn console_on_a_terminal_types_keys_raw_and_restores_the_terminal() {
    use std::os::fd::FromRawFd;
    use tokio::io::AsyncReadExt;
    let endpoint = start_fake("console-tty");
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes the two descriptors; the name, termios and size are optional.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    // SAFETY: both descriptors are new and owned here alone.
    let (mut master, slave_file) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    let before = termios(slave);
    assert_ne!(before.c_lflag & libc::ICANON, 0);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_strato"))
        .env_remove("STRATO_TOKEN")
        .env("STRATO_ENDPOINT", &*endpoint)
        .args(["--token", TOKEN, "console", ECHO])
        .stdin(std::process::Stdio::from(slave_file.try_clone().unwrap()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run strato");
    // Raw mode: no line discipline, no signals from Ctrl-C.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while termios(slave).c_lflag & (libc::ICANON | libc::ISIG | libc::ECHO) != 0 {
        assert!(std::time::Instant::now() < deadline, "no raw mode");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    use std::io::Write;
    // Keys go as typed: CR is not turned into LF, Ctrl-C reaches the guest.
    master.write_all(b"hi\r~Bx\x03").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut shown = Vec::new();
    let want = b"echo:hi|echo:\r|break|echo:x\x03|";
    while !shown.ends_with(want) {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .expect("echo shown")
            .unwrap();
        assert!(n > 0, "output ended: {:?}", String::from_utf8_lossy(&shown));
        shown.extend_from_slice(&buf[..n]);
    }
    assert_eq!(shown, want);
    // Ctrl-] detaches.
    master.write_all(b"\x1d").unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("detached")
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(stderr.contains("Ctrl-] detaches"), "{stderr}");
    assert!(stderr.contains("Detached"), "{stderr}");
    let after = termios(slave);
    assert_eq!(
        (after.c_iflag, after.c_oflag, after.c_lflag),
        (before.c_iflag, before.c_oflag, before.c_lflag),
        "the terminal's settings are back"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_daemon_exits_255() {
    let endpoint = format!(
        "unix:{}/strato-cli-no-such.sock",
        std::env::temp_dir().display()
    );
    let out = strato(&endpoint, &["describe-instances"]).await;
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "Could not connect to the endpoint URL: \"{endpoint}\""
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    let out = strato(
        "unix:/nonexistent",
        &["describe-instances", "--filters", "Name=x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--filters"),
        "{}",
        text(&out.stderr)
    );
}
