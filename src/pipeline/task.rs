//! Background tasks the stages own: each ends with its owner, and whatever child process it
//! holds ends with it.

/// Stops a background task, and whatever child process it owns, when dropped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Stops the task and waits until it has dropped what it owned.
    pub(crate) async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
