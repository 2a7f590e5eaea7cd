//! The signals that stop a serving process: SIGTERM (from an orchestrator: drain first) and
//! SIGINT (Ctrl-C).

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::ServeError;

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Terminate,
    Interrupt,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Terminate => "SIGTERM",
            Stop::Interrupt => "SIGINT",
        }
    }
}

/// SIGTERM and SIGINT, caught from the moment this is made. Must be made inside a tokio
/// runtime (actix's is one).
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub fn install() -> Result<Self, ServeError> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).map_err(ServeError::Signals)?,
            interrupt: signal(SignalKind::interrupt()).map_err(ServeError::Signals)?,
        })
    }

    /// The next signal of either kind.
    pub async fn recv(&mut self) -> Stop {
        tokio::select! {
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.interrupt.recv() => Stop::Interrupt,
        }
    }
}
