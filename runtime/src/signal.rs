//! The signal a process stops on: SIGTERM (what Kubernetes sends a pod it stops) or Ctrl-C.

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // No SIGTERM handler to be had: Ctrl-C still stops the process.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
