//! Runs the job on a cron schedule until SIGTERM or Ctrl-C.
//!
//! Runs never overlap: a tick that fires while a run is still going is skipped (and logged).
//! A failed run is logged and the next tick runs as usual; so is a run the gate held (its
//! version stays held, the live one serves on, and the runs held so far are counted in the log
//! line and the gate metrics). On SIGTERM the scheduler stops
//! taking ticks and waits for a run in progress to finish, so a pod shutdown never leaves a
//! half-published version behind (publishing is atomic anyway; this just avoids wasted work).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use voucher_shared::errors::Chain;

use crate::run::{RunOptions, run};

/// What the cron expression must look like, for messages.
const CRON_FORMAT: &str = "6 fields: second minute hour day-of-month month day-of-week, e.g. \"0 0 3 * * *\" for 03:00 UTC daily";

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "invalid cron expression {expression:?}: it has {fields} fields; expected {CRON_FORMAT}"
    )]
    CronFields { expression: String, fields: usize },
    #[error("invalid cron expression {expression:?}; expected {CRON_FORMAT}")]
    Cron {
        expression: String,
        source: JobSchedulerError,
    },
    #[error("the scheduler failed")]
    Scheduler(#[from] JobSchedulerError),
    #[error("cannot listen for signals")]
    Signal(#[source] std::io::Error),
}

/// Runs `opts` at every tick of `cron` (UTC), and once at start if `run_at_start`.
pub async fn schedule(
    cron: &str,
    opts: RunOptions,
    run_at_start: bool,
) -> Result<(), ScheduleError> {
    let fields = cron.split_whitespace().count();
    if fields != 6 {
        return Err(ScheduleError::CronFields {
            expression: cron.to_owned(),
            fields,
        });
    }
    let busy = Arc::new(Mutex::new(()));
    let opts = Arc::new(opts);
    let tick = {
        let busy = busy.clone();
        let opts = opts.clone();
        move || {
            let busy = busy.clone();
            let opts = opts.clone();
            async move { run_once(&busy, opts).await }
        }
    };

    let scheduler = JobScheduler::new().await?;
    let job_tick = tick.clone();
    let job = Job::new_async(cron, move |_, _| Box::pin(job_tick())).map_err(|source| {
        ScheduleError::Cron {
            expression: cron.to_owned(),
            source,
        }
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    log::info!(
        "scheduled runs at {cron:?} (UTC); input {}, tables {}",
        opts.source,
        opts.tables_dir.display()
    );
    if run_at_start {
        tokio::spawn(tick());
    }

    wait_for_stop().await?;
    log::info!("stopping: no new runs will start");
    let mut scheduler = scheduler;
    if let Err(e) = scheduler.shutdown().await {
        log::warn!("scheduler shutdown: {}", Chain(&e));
    }
    if busy.try_lock().is_err() {
        log::info!("waiting for the run in progress to finish");
    }
    let _idle = busy.lock().await;
    log::info!("stopped");
    Ok(())
}

/// Runs held by the gate since the schedule started.
static HELD: AtomicU64 = AtomicU64::new(0);

async fn run_once(busy: &Arc<Mutex<()>>, opts: Arc<RunOptions>) {
    let Ok(guard) = busy.clone().try_lock_owned() else {
        log::warn!("skipping this tick: the previous run is still going");
        return;
    };
    let result = tokio::task::spawn_blocking(move || {
        let _guard = guard;
        run(&opts)
    })
    .await;
    match result {
        Ok(Ok(report)) if report.held() => {
            let held = HELD.fetch_add(1, Ordering::Relaxed) + 1;
            log::warn!(
                "run held: version {} not made live ({}); {held} run(s) held since the schedule started; the schedule goes on",
                report.manifest.version,
                report.gate.summary()
            );
        }
        Ok(Ok(report)) => log::info!(
            "run finished: version {} ({} rows read, {} kept, {} table rows)",
            report.manifest.version,
            report.manifest.rows_read,
            report.manifest.rows_kept,
            report.manifest.table_rows
        ),
        Ok(Err(e)) => log::error!("run failed, live version unchanged: {}", Chain(&e)),
        Err(e) => log::error!("run crashed, live version unchanged: {e}"),
    }
}

async fn wait_for_stop() -> Result<(), ScheduleError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(ScheduleError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ScheduleError::Signal)?;
    tokio::select! {
        _ = term.recv() => log::info!("received SIGTERM"),
        _ = int.recv() => log::info!("received SIGINT"),
    }
    Ok(())
}
