//! One job must never stall its partition. The consume loop commits a
//! partition only up to its oldest unfinished event, so a job that never
//! finishes holds every later commit back until a restart. Two ways a job
//! could leave its event unfinished are closed here:
//!
//! - it panics: the panic is caught, and the job ends as a failure with the
//!   panic's message as its reason (dead letter, `failed` record), like any
//!   permanent error, instead of vanishing with its event;
//! - it ends [`JobEnd::Unannounced`] (it gave up but Kafka did not take the
//!   dead letter): it is run again here after a pause that grows to
//!   [`MAX_PAUSE`], instead of waiting for a restart to redeliver it.

use crate::job::JobEnd;
use crate::run::stopped;
use futures::FutureExt as _;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::sync::watch;

/// Longest pause between two runs of an unannounced job.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Runs `job` until it ends with anything but [`JobEnd::Unannounced`],
/// pausing `first_pause` (doubling up to [`MAX_PAUSE`]) between runs. A
/// panic ends it through `on_panic`, given the panic's message. Once `stop`
/// turns true a pending rerun is dropped and the job is
/// [`JobEnd::Released`] for redelivery.
pub async fn supervise<Job, Run, OnPanic, Fail>(
    mut job: Job,
    on_panic: OnPanic,
    mut stop: watch::Receiver<bool>,
    first_pause: Duration,
) -> JobEnd
where
    Job: FnMut() -> Run,
    Run: Future<Output = JobEnd>,
    OnPanic: FnOnce(String) -> Fail,
    Fail: Future<Output = JobEnd>,
{
    let mut pause = first_pause;
    loop {
        match AssertUnwindSafe(job()).catch_unwind().await {
            Ok(JobEnd::Unannounced) => {
                tracing::warn!(
                    ?pause,
                    "the job's end could not be announced; running it again after a pause"
                );
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopped(&mut stop) => return JobEnd::Released,
                }
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Ok(end) => return end,
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                tracing::error!(%message, "the job panicked; failing the video");
                return on_panic(message).await;
            }
        }
    }
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn never_stop() -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        rx
    }

    #[tokio::test(start_paused = true)]
    async fn an_unannounced_job_runs_again_until_it_ends() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let end = supervise(
            move || {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run < 3 {
                        JobEnd::Unannounced
                    } else {
                        JobEnd::Failed
                    }
                }
            },
            |_| async { unreachable!("no panic") },
            never_stop(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(end, JobEnd::Failed);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_to_the_cap() {
        let started = tokio::time::Instant::now();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        supervise(
            move || {
                let run = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if run < 6 {
                        JobEnd::Unannounced
                    } else {
                        JobEnd::Ready
                    }
                }
            },
            |_| async { unreachable!("no panic") },
            never_stop(),
            Duration::from_secs(5),
        )
        .await;
        // 5 + 10 + 20 + 40 + 60 + 60 seconds of pauses.
        assert_eq!(started.elapsed(), Duration::from_secs(195));
    }

    #[tokio::test]
    async fn a_panic_ends_the_job_through_on_panic_with_its_message() {
        let end = supervise(
            || async {
                if true {
                    panic!("index out of bounds in the ladder");
                }
                JobEnd::Ready
            },
            |message| async move {
                assert_eq!(message, "index out of bounds in the ladder");
                JobEnd::Failed
            },
            never_stop(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(end, JobEnd::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_during_the_pause_releases_the_job() {
        let (tx, rx) = watch::channel(false);
        let supervised = tokio::spawn(supervise(
            || async { JobEnd::Unannounced },
            |_| async { unreachable!("no panic") },
            rx,
            Duration::from_secs(30),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(true).unwrap();
        assert_eq!(supervised.await.unwrap(), JobEnd::Released);
    }
}
