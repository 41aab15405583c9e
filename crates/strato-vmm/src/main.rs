//! The `strato-vmm` binary: parse the configuration, build the VM, run it, and exit with
//! a status that says how it ended (`strato_vmm_api::exit::ExitStatus`).

use std::process::ExitCode;

use strato_vmm::cli::{self, Command};
use strato_vmm::emulation;
use strato_vmm::vmm::Vmm;
use strato_vmm_api::exit::{ExitRecord, ExitStatus};

/// Prints an error with its whole source chain, once, at the edge.
fn report(prefix: &str, err: &dyn std::error::Error) {
    eprintln!("{prefix}: {}", chain(err));
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--detect-cpu-template") {
        let d = emulation::detect_template();
        println!("{}\t{}", d.template.name(), d.reason);
        return ExitCode::SUCCESS;
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
    let exit_file = config.exit_status_file.clone();
    let (status, reason) = run(config);
    if let Some(path) = exit_file {
        if let Err(e) = ExitRecord::new(status, reason).write(&path) {
            eprintln!("strato-vmm: cannot write {}: {e}", path.display());
        }
    }
    ExitCode::from(status.code() as u8)
}

/// Builds and runs the VM; returns the exit status and a sentence saying why.
fn run(config: strato_vmm::config::VmConfig) -> (ExitStatus, String) {
    let vmm = match Vmm::build(config) {
        Ok(v) => v,
        Err(e) => {
            report("strato-vmm: cannot start the VM", &e);
            return (
                ExitStatus::Failed,
                format!("cannot start the VM: {}", chain(&e)),
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
            (ExitStatus::Failed, chain(&e))
        }
    }
}

/// An error and its sources as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}
