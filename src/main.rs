//! The `pgcache` binary: parse the command line, load the configuration, run
//! the chosen command. Exit codes: 0 success, 1 runtime failure, 2 invalid
//! configuration or usage.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tracing::{error, info};

use pgcache::admin::{self, Metrics};
use pgcache::cli::{Cli, Command};
use pgcache::config::Config;
use pgcache::{check, demo, logging, proxy, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match pgcache::cli::load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pgcache: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pgcache: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match cli.command() {
        Command::Run => runtime.block_on(run(config)),
        Command::Check => runtime.block_on(run_check(config)),
        Command::Demo(args) => runtime
            .block_on(demo::run(
                config,
                demo::DemoOptions {
                    seconds: args.seconds,
                    clients: args.clients,
                    exit_after_workload: args.exit,
                },
            ))
            .map_err(|e| e.to_string()),
        Command::Verify(args) => runtime.block_on(pgcache::verify::command(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pgcache: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `pgcache run`: serve until SIGINT/SIGTERM.
async fn run(config: Config) -> Result<(), String> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (listen): {e}", config.listen))?;
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(addr) = &config.admin.listen {
        let admin_listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} (admin.listen): {e}"))?;
        info!(address = %addr, "admin endpoint: /metrics, /healthz");
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let stopped = async {
                let _ = admin_stopped.await;
            };
            if let Err(e) = admin::serve(admin_listener, metrics, stopped).await {
                error!(error = %e, "admin endpoint failed");
            }
        });
    }
    info!(
        listen = %config.listen,
        origin = %format_args!("{}:{}", config.origin.host, config.origin.port),
        "pgcache is accepting connections"
    );
    let shutdown = async {
        signal::terminate().await;
        info!("shutdown requested; send the signal again to stop at once");
        tokio::spawn(async {
            signal::terminate().await;
            eprintln!("pgcache: second signal, exiting now");
            std::process::exit(1);
        });
    };
    let served = proxy::serve(listener, Arc::clone(&config), metrics, shutdown).await;
    let _ = stop_admin.send(());
    served.map_err(|e| format!("proxy failed: {e}"))
}

/// `pgcache check`: report CDC prerequisites; exit 1 if any is missing.
async fn run_check(config: Config) -> Result<(), String> {
    let report = check::run(&config).await.map_err(|e| e.to_string())?;
    print!("{report}");
    if report.all_ok() {
        Ok(())
    } else {
        Err("some prerequisites are not met (see the fixes above)".into())
    }
}
