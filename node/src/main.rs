use clap::Parser;

#[tokio::main]
async fn main() {
    init_logs();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = htx_node::cli::Cli::parse();
    match htx_node::cli::main(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Logs go to stderr (journald under systemd): `RUST_LOG` filters them
/// (default `info`); colour only on a terminal (and never with `NO_COLOR`);
/// `HTX_LOG_FORMAT=json` writes one JSON object per line.
fn init_logs() {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("HTX_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        logs.with_ansi(colour).init();
    }
}
