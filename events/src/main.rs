use anyhow::Context;
use clap::Parser;
use voucher_events::EventsApp;
use voucher_events::config::EventsConfig;
use voucher_serve::signals::Signals;

fn main() -> anyhow::Result<()> {
    let config = EventsConfig::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    log::info!(
        "starting voucher-events {}: {config:?}",
        env!("CARGO_PKG_VERSION")
    );
    actix_web::rt::System::new().block_on(async {
        let app = EventsApp::build(&config).context("cannot start voucher-events")?;
        // Before the log lines below: tests (and operators) signal as soon as they see them.
        let signals = Signals::install().context("cannot handle SIGINT and SIGTERM")?;
        for address in app.addresses() {
            log::info!("health, readiness and metrics on http://{address}");
        }
        app.run_until_stopped(signals)
            .await
            .context("voucher-events failed")
    })
}
