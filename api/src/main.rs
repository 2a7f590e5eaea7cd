use anyhow::Context;
use clap::Parser;
use voucher_api::config::{Cli, Command};
use voucher_api::http::routes;
use voucher_api::server::Application;
use voucher_serve::signals::Signals;

// See the dependency's comment in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let Cli { command, config } = Cli::parse();
    if let Some(Command::Routes) = command {
        println!("{}", routes::table_json());
        return Ok(());
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // The token's Debug form is redacted, so the whole config can be logged.
    log::info!(
        "starting voucher-api {}: {config:?}",
        env!("CARGO_PKG_VERSION")
    );
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(&config).context("cannot start voucher-api")?;
        // Before the logs below: tests (and operators) signal as soon as they see them.
        let signals = Signals::install().context("cannot handle SIGINT and SIGTERM")?;
        let scheme = if app.tls() { "https" } else { "http" };
        for address in app.addresses() {
            log::info!(
                "listening on {scheme}://{address} with {} workers",
                config.worker_count()
            );
        }
        log::info!(
            "gRPC listening on {} ({}; voucher.v1.VoucherService, grpc.health.v1, reflection)",
            app.grpc_address(),
            if app.tls() { "TLS" } else { "plain text" }
        );
        app.run_until_stopped(signals)
            .await
            .context("voucher-api failed")
    })
}
