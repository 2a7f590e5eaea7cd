//! Serving the gRPC door on its own port, in a thread with its own tokio runtime, next to the
//! HTTP server: health checking follows the live table and the drain as they change, and a
//! stop closes the listener and lets in-flight calls finish.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use voucher_serve::health::Draining;
use voucher_serve::tables::Tables;

use crate::grpc::proto::FILE_DESCRIPTOR_SET;
use crate::grpc::proto::voucher_service_server::VoucherServiceServer;
use crate::grpc::service::VoucherGrpc;

/// Why the gRPC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot listen for gRPC on {address}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot start the gRPC runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot set up gRPC TLS")]
    Tls(#[source] tonic::transport::Error),
    #[error("cannot build the gRPC reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// A running gRPC server.
pub struct GrpcServer {
    address: SocketAddr,
    stopper: Stopper,
    done: Mutex<mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl GrpcServer {
    /// Binds `address` and serves `service` there with `threads` runtime threads, TLS when
    /// `tls` (PEM certificate chain and key) is given. `draining` turns health to NOT_SERVING.
    pub fn start(
        address: &str,
        threads: usize,
        service: VoucherGrpc,
        draining: Draining,
        tls: Option<(&[u8], &[u8])>,
    ) -> Result<Self, GrpcError> {
        let listener = std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| GrpcError::Bind {
                address: address.to_owned(),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| GrpcError::Bind {
            address: address.to_owned(),
            source,
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("grpc")
            .enable_all()
            .build()
            .map_err(GrpcError::Runtime)?;
        let mut builder = Server::builder();
        if let Some((cert, key)) = tls {
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .map_err(GrpcError::Tls)?;
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let (shutdown, stop) = watch::channel(None);
        let (closed, listener_closed) = oneshot::channel::<()>();
        let (finished, done) = mpsc::channel();
        let tables = Arc::clone(service.tables());
        let thread = std::thread::Builder::new()
            .name("grpc-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (reporter, health) = tonic_health::server::health_reporter();
                    tokio::spawn(follow_health(reporter, tables, draining));
                    let incoming = match TcpListener::from_std(listener) {
                        Ok(listener) => until_stopped(listener, stop, closed),
                        Err(e) => {
                            log::error!("gRPC on {bound}: cannot use the listener: {e}");
                            return;
                        }
                    };
                    let served = builder
                        .add_service(health)
                        .add_service(reflection_v1)
                        .add_service(reflection_v1alpha)
                        .add_service(service.into_server())
                        // Shut down (letting calls in flight finish) once the listener is closed.
                        .serve_with_incoming_shutdown(incoming, async move {
                            let _ = listener_closed.await;
                        })
                        .await;
                    match served {
                        Ok(()) => log::info!("gRPC on {bound} stopped"),
                        Err(e) => log::error!("gRPC on {bound} failed: {e}"),
                    }
                });
                let _ = finished.send(());
            })
            .map_err(GrpcError::Runtime)?;
        Ok(GrpcServer {
            address: bound,
            stopper: Stopper(Arc::new(shutdown)),
            done: Mutex::new(done),
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle that stops the server accepting calls, for a signal handler.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Stops accepting and waits for in-flight calls to finish, up to `timeout` after the
    /// stop began: the HTTP server drains meanwhile, and both share the one timeout.
    pub fn stop(mut self, timeout: Duration) {
        let began = self.stopper.stop_accepting();
        let left = (began + timeout).saturating_duration_since(Instant::now());
        let finished = self
            .done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recv_timeout(left);
        match finished {
            Ok(()) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            // The thread is left to end with the process.
            Err(_) => log::warn!(
                "gRPC on {}: calls still running after {timeout:?}; not waiting for them",
                self.address
            ),
        }
    }
}

/// Stops a [`GrpcServer`] accepting calls; those in flight go on. It holds when the stop
/// began.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<watch::Sender<Option<Instant>>>);

impl Stopper {
    /// Idempotent: gives when the stop began, the first time it was asked for.
    pub fn stop_accepting(&self) -> Instant {
        let mut began = Instant::now();
        self.0.send_if_modified(|stopped| match stopped {
            Some(at) => {
                began = *at;
                false
            }
            None => {
                *stopped = Some(began);
                true
            }
        });
        began
    }
}

/// The connections `listener` accepts until `stop` turns true (or its sender is dropped); then
/// the listener is closed, so that new connections are refused at once rather than queued
/// unanswered while the calls in flight finish, and `closed` is sent.
fn until_stopped(
    listener: TcpListener,
    stop: watch::Receiver<Option<Instant>>,
    closed: oneshot::Sender<()>,
) -> impl Stream<Item = std::io::Result<TcpStream>> {
    futures_util::stream::unfold(Some((listener, stop, closed)), |state| async move {
        let (listener, mut stop, closed) = state?;
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted.map(|(stream, _)| stream)),
            _ = stop.wait_for(Option::is_some) => None,
        };
        match accepted {
            Some(accepted) => Some((accepted, Some((listener, stop, closed)))),
            None => {
                drop(listener);
                let _ = closed.send(());
                None
            }
        }
    })
}

/// Keeps `grpc.health.v1` in step with the API: SERVING (overall and for
/// `voucher.v1.VoucherService`) once a table is live, NOT_SERVING before that and while
/// draining. It waits for either to change.
async fn follow_health(reporter: HealthReporter, tables: Arc<Tables>, draining: Draining) {
    let mut versions = tables.subscribe();
    let mut drain = draining.subscribe();
    let mut last = None;
    loop {
        let serving = versions.borrow_and_update().is_some() && !*drain.borrow_and_update();
        if last != Some(serving) {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status(
                    <VoucherServiceServer<VoucherGrpc> as tonic::server::NamedService>::NAME,
                    status,
                )
                .await;
            last = Some(serving);
        }
        let changed = tokio::select! {
            changed = versions.changed() => changed,
            changed = drain.changed() => changed,
        };
        if changed.is_err() {
            // The tables or the drain flag are gone: the process is stopping.
            return;
        }
    }
}
