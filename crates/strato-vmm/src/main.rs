//! The `strato-vmm` binary: parse the configuration, build the VM, run it, and exit with
//! a status that says how it ended (see `state::ExitReason::exit_code`).

use std::process::ExitCode;

use strato_vmm::cli::{self, Command};
use strato_vmm::emulation;
use strato_vmm::state::EXIT_BAD_CONFIG;
use strato_vmm::vmm::Vmm;

/// Prints an error with its whole source chain, once, at the edge.
fn report(prefix: &str, err: &dyn std::error::Error) {
    let mut msg = format!("{prefix}: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{msg}");
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
        let name = match d.template {
            strato_vmm::config::CpuTemplate::Host => "host",
            strato_vmm::config::CpuTemplate::EmulatedKvm => "emulated-kvm",
        };
        println!("{name}\t{}", d.reason);
        return ExitCode::SUCCESS;
    }
    let config = match cli::parse_args(&args) {
        Ok(Command::Run(c)) => c,
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
            return ExitCode::from(EXIT_BAD_CONFIG as u8);
        }
    };
    let vmm = match Vmm::build(config) {
        Ok(v) => v,
        Err(e) => {
            report("strato-vmm: cannot start the VM", &e);
            return ExitCode::from(1);
        }
    };
    match vmm.run() {
        Ok(reason) => {
            match &reason {
                strato_vmm::state::ExitReason::GuestCrash(m) => {
                    eprintln!("strato-vmm: guest crashed: {m}")
                }
                strato_vmm::state::ExitReason::Error(m) => eprintln!("strato-vmm: {m}"),
                _ => {}
            }
            tracing::info!(?reason, "VM exited");
            ExitCode::from(reason.exit_code() as u8)
        }
        Err(e) => {
            report("strato-vmm", &e);
            ExitCode::from(1)
        }
    }
}
