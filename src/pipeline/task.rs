//! Background tasks the stages own: each ends with its owner, and whatever child process it
//! holds ends with it; a stage that ends by itself, or panics, is seen.

use std::future::Future;

/// Stops a background task, and whatever child process it owns, when dropped.
pub(crate) struct AbortOnDrop<T = ()>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    /// Stops the task and waits until it has dropped what it owned.
    pub(crate) async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `stage` on a task of its own and hands how it ended to `ended`: what it returned, or
/// the message it panicked with. Nothing is handed on when the owner stops it (drops the
/// returned task), which is the one way a stage may end unremarked.
pub(crate) fn supervise<T: Send + 'static>(
    stage: impl Future<Output = T> + Send + 'static,
    ended: impl FnOnce(Result<T, String>) + Send + 'static,
) -> AbortOnDrop {
    let mut stage = AbortOnDrop(tokio::spawn(stage));
    AbortOnDrop(tokio::spawn(async move {
        match (&mut stage.0).await {
            Ok(output) => ended(Ok(output)),
            Err(error) if error.is_panic() => ended(Err(panic_message(error.into_panic()))),
            Err(_) => {}
        }
    }))
}

/// What a panic said, for the status and the logs.
pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(message) => *message,
        Err(panic) => panic.downcast_ref::<&str>().map_or_else(
            || "a panic without a message".to_owned(),
            |m| (*m).to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn a_stage_that_returns_or_panics_is_reported_and_one_stopped_is_not() {
        let (told, heard) = oneshot::channel();
        let _task = supervise(async { 7 }, move |end| told.send(end).unwrap());
        assert_eq!(heard.await.unwrap(), Ok(7));

        let (told, heard) = oneshot::channel();
        let _task = supervise(
            async { panic!("poison at offset {}", 41) },
            move |end: Result<(), String>| told.send(end).unwrap(),
        );
        assert_eq!(heard.await.unwrap(), Err("poison at offset 41".to_owned()));

        let (told, heard) = oneshot::channel::<Result<(), String>>();
        let task = supervise(std::future::pending(), move |end| told.send(end).unwrap());
        task.stop().await;
        assert!(
            heard.await.is_err(),
            "a stage its owner stopped is not reported"
        );
    }
}
