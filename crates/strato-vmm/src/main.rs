//! The `strato-vmm` binary: parse the configuration, open what the VM needs, enter the jail
//! if asked, build the VM, run it, and exit with a status that says how it ended
//! (`strato_vmm_api::exit::ExitStatus`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::ExitCode;

use strato_vmm::cli::{self, Command};
use strato_vmm::config::VmConfig;
use strato_vmm::resources::Resources;
use strato_vmm::vmm::Vmm;
use strato_vmm::{emulation, error_chain, jail};
use strato_vmm_api::exit::{ExitRecord, ExitStatus};

/// Prints an error with its whole source chain, once, at the edge.
fn report(prefix: &str, err: &dyn std::error::Error) {
    eprintln!("{prefix}: {}", error_chain(err));
}

/// Test builds only: takes `--test-seccomp-violation=KIND` out of the arguments.
#[cfg(feature = "test-hooks")]
fn take_test_flags(args: &mut Vec<String>) {
    use strato_vmm::seccomp::{set_test_violation, ThreadKind};
    args.retain(|a| match a.strip_prefix("--test-seccomp-violation=") {
        Some(kind) => {
            match ThreadKind::parse(kind) {
                Some(k) => set_test_violation(k),
                None => eprintln!("strato-vmm: unknown thread kind {kind:?}"),
            }
            false
        }
        None => true,
    });
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // The daemon points stderr at the instance's vmm.log: colour only at a terminal.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    #[allow(unused_mut)]
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    #[cfg(feature = "test-hooks")]
    take_test_flags(&mut args);
    match args.first().map(String::as_str) {
        Some("--detect-cpu-template") => {
            let d = emulation::detect_template();
            println!("{}\t{}", d.template.name(), d.reason);
            return ExitCode::SUCCESS;
        }
        Some("--check-jail") => return ExitCode::from(jail::check::report() as u8),
        Some("--serve-empty-mount-ns") => {
            return match jail::serve_empty_mount_ns() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    report("strato-vmm: cannot make an empty mount namespace", &e);
                    ExitCode::from(ExitStatus::Failed.code() as u8)
                }
            };
        }
        _ => {}
    }
    let config = match cli::parse_args(&args) {
        Ok(Command::Run(c)) => *c,
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("strato-vmm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            report("strato-vmm: invalid configuration", &e);
            eprintln!("run `strato-vmm --help` for usage");
            return ExitCode::from(ExitStatus::BadConfig.code() as u8);
        }
    };
    let (status, reason, exit_file) = start(config);
    if let Some(file) = exit_file {
        if let Err(e) = ExitRecord::new(status, reason).write_to(&file) {
            eprintln!("strato-vmm: cannot write the exit record: {e}");
        }
    }
    ExitCode::from(status.code() as u8)
}

/// Opens what the VM needs, jails the monitor if asked, and runs the VM. Returns the exit
/// status, a sentence saying why, and where to record them.
fn start(config: VmConfig) -> (ExitStatus, String, Option<File>) {
    let mut resources = match Resources::open(&config) {
        Ok(r) => r,
        Err(e) => {
            report("strato-vmm: cannot start the VM", &e);
            let reason = format!("cannot start the VM: {}", error_chain(&e));
            return (ExitStatus::Failed, reason, None);
        }
    };
    let exit_file = resources.exit_status.take();
    if let Some(jail_config) = &config.jail {
        let setup = jail::KeeperSetup {
            exit_record: exit_file.as_ref().map(|f| f.as_raw_fd()),
        };
        // Returns in the jailed child only; the keeper exits from inside.
        if let Err(e) = jail::enter(jail_config, &resources.raw_fds(), setup) {
            report("strato-vmm: cannot enter the jail", &e);
            let reason = format!("cannot enter the jail: {}", error_chain(&e));
            return (ExitStatus::Failed, reason, exit_file);
        }
    }
    let (status, reason) = run(config, resources);
    (status, reason, exit_file)
}

/// Builds and runs the VM; returns the exit status and a sentence saying why.
fn run(config: VmConfig, resources: Resources) -> (ExitStatus, String) {
    let vmm = match Vmm::build(config, resources) {
        Ok(v) => v,
        Err(e) => {
            report("strato-vmm: cannot start the VM", &e);
            return (
                ExitStatus::Failed,
                format!("cannot start the VM: {}", error_chain(&e)),
            );
        }
    };
    match vmm.run() {
        Ok(reason) => {
            let text = match &reason {
                strato_vmm::state::ExitReason::GuestCrash(m) => {
                    eprintln!("strato-vmm: guest crashed: {m}");
                    format!("guest crashed: {m}")
                }
                strato_vmm::state::ExitReason::Error(m) => {
                    eprintln!("strato-vmm: {m}");
                    m.clone()
                }
                strato_vmm::state::ExitReason::GuestPowerOff => "guest powered off".to_string(),
                strato_vmm::state::ExitReason::GuestReset => "guest reset".to_string(),
                strato_vmm::state::ExitReason::Stopped => "stopped".to_string(),
            };
            tracing::info!(?reason, "VM exited");
            (reason.status(), text)
        }
        Err(e) => {
            report("strato-vmm", &e);
            (ExitStatus::Failed, error_chain(&e))
        }
    }
}
