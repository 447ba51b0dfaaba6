//! The shutdown signal: SIGTERM or Ctrl-C in, a future that resolves out. (The shared
//! runtime crate is to take this over.)

/// SIGTERM (what Kubernetes sends a pod it stops) or Ctrl-C.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
