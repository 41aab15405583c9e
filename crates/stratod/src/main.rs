//! The `stratod` binary: configuration, start-up (database, host network, adoption of
//! running monitors), background work (status checks, reaping), and the API until SIGTERM
//! or SIGINT. Monitors run in sessions of their own and keep running when the daemon stops.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use stratod::cloud::Cloud;
use stratod::config::Config;
use stratod::error::chain;

/// strato's control daemon.
#[derive(Debug, Parser)]
#[command(name = "stratod", version, about)]
struct Args {
    /// Data directory (database, images, volumes, instances).
    #[arg(long, env = "STRATOD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where to serve the API: unix:PATH, tcp:HOST:PORT (TLS) or tcp+plain:HOST:PORT;
    /// repeatable. Default: unix:<data-dir>/stratod.sock.
    #[arg(long)]
    listen: Vec<String>,
    /// JSON config file for the other settings (docs/daemon.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// CPU template for every VM: host or emulated-kvm (default: detected).
    #[arg(long)]
    cpu_template: Option<String>,
    /// Serve Prometheus counters on http://ADDR/metrics.
    #[arg(long, env = "STRATOD_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Run monitors without the jail (development only; logged as a warning at start and on
    /// every launch). Same as `"jail": false` in the config file.
    #[arg(long)]
    no_jail: bool,
}

fn main() -> ExitCode {
    use std::io::IsTerminal;
    // Colour only for a person at a terminal: the journal, a log file or a pipe gets plain
    // lines (NO_COLOR turns it off at a terminal too).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRATO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = match Config::build(
        args.config.as_deref(),
        args.data_dir,
        &args.listen,
        args.cpu_template,
    ) {
        Ok(mut c) => {
            c.jail &= !args.no_jail;
            c
        }
        Err(e) => {
            eprintln!("stratod: {}", chain(&e));
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stratod: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg, args.metrics)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stratod: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cfg: Config, metrics: Option<std::net::SocketAddr>) -> Result<(), String> {
    // Before anything else touches the directory: one daemon per data directory.
    let _lock = stratod::datadir::lock(&cfg.data_dir).map_err(|e| chain(&e))?;
    let tls = if stratod::tls::needed(&cfg) {
        let id = stratod::tls::server_identity(&cfg).map_err(|e| chain(&e))?;
        tracing::info!(fingerprint = %id.fingerprint, ca = ?id.ca_file, "TLS CA (SHA-256)");
        match &id.ca_file {
            Some(ca) => eprintln!(
                "stratod: TLS CA {} SHA-256 fingerprint {}",
                ca.display(),
                id.fingerprint
            ),
            None => eprintln!(
                "stratod: TLS server certificate SHA-256 fingerprint {}",
                id.fingerprint
            ),
        }
        Some(id)
    } else {
        None
    };
    let peer_roots = stratod::tls::peer_roots(&cfg).map_err(|e| chain(&e))?;
    let cloud = Cloud::open(
        cfg,
        Box::new(stratod::api::peer::GrpcRegions::new(peer_roots)),
    )
    .map_err(|e| chain(&e))?;
    cloud
        .ensure_default_network()
        .await
        .map_err(|e| chain(&e))?;
    // Before the firewall and the overlay: a default VPC that becomes the region's takes
    // its ID (and VXLAN device) now. Without etcd the mirror settles it later.
    cloud.join_region_default().await;
    // Before any monitor is adopted or booted: no instance runs unfiltered.
    cloud.start_firewall().await.map_err(|e| chain(&e))?;
    // After the firewall: no VXLAN port is up before its filters are.
    cloud.start_overlay().await.map_err(|e| chain(&e))?;
    cloud.start_public_network().await.map_err(|e| chain(&e))?;
    cloud.start_ipv6_routing().await;
    // DHCP first: guests whose boots the restore starts over ask for their address at once.
    cloud.start_dhcp();
    cloud.restore().await;
    let prober = stratod::prober::Prober::new(
        cloud.clone(),
        cloud.clone(),
        cloud.metrics.clone(),
        cloud.cfg.status_interval,
        cloud.cfg.status_grace,
    );
    tokio::spawn(Arc::new(prober).run(cloud.boots.take()));
    tokio::spawn(cloud.clone().run_reaper());
    if let Some(region) = cloud.cluster.clone() {
        tokio::spawn(region.clone().run_lease());
        tokio::spawn(region.run_view());
        tokio::spawn(stratod::cluster::reconcile::run(cloud.clone()));
        tokio::spawn(stratod::cluster::mirror::run(cloud.clone()));
        tokio::spawn(cloud.clone().follow_region());
    }
    let imds = stratod::imds::Imds::new(cloud.clone(), cloud.metrics.clone());
    tokio::spawn(Arc::new(imds).run(cloud.network_changed.clone()));
    // The lab's history, sampled only when something shows it.
    let lab = Arc::new(stratod::lab::History::default());
    if metrics.is_some() || !cloud.cfg.web_listen.is_empty() {
        tokio::spawn(
            lab.clone()
                .run(cloud.clone() as Arc<dyn stratod::prober::ProbeTargets>),
        );
    }
    if let Some(addr) = metrics {
        let (c, l) = (cloud.clone(), lab.clone());
        tokio::spawn(async move {
            if let Err(e) = stratod::server::serve_metrics(c, l, addr).await {
                tracing::error!(error = %chain(&e), "metrics listener failed");
            }
        });
    }
    let (query_stop, query_stop_rx) = tokio::sync::watch::channel(false);
    if !cloud.cfg.ec2_api_listen.is_empty() {
        let api = stratod::query::QueryApi::new(cloud.clone()).map_err(|e| chain(&e))?;
        stratod::query::serve(
            std::sync::Arc::new(api),
            &cloud.cfg.ec2_api_listen,
            tls.as_ref(),
            query_stop_rx.clone(),
        )
        .await
        .map_err(|e| chain(&e))?;
    }
    if !cloud.cfg.web_listen.is_empty() {
        stratod::web::serve(
            stratod::web::Web::new(cloud.clone(), lab.clone()),
            &cloud.cfg.web_listen,
            tls.as_ref(),
            query_stop_rx.clone(),
        )
        .await
        .map_err(|e| chain(&e))?;
    }
    let leaving = cloud.cluster.clone();
    let shutdown = async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down; VMs keep running");
        let _ = query_stop.send(true);
        // Leave the region at once rather than a lease TTL later.
        if let Some(region) = &leaving {
            region.leave().await;
        }
    };
    stratod::server::serve(cloud, tls.as_ref(), shutdown)
        .await
        .map_err(|e| chain(&e))
}
