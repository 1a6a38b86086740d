//! Where CPU-heavy sign-in work runs: XML signature verification must not occupy a proxy
//! worker (every authenticated request queued behind it would wait), and an unauthenticated
//! flood must neither queue unbounded work nor take the CPU from authenticated traffic.
//!
//! A few threads of our own run the jobs at the lowest scheduling priority (nice 19, per
//! thread), so on a busy core the proxy workers win and verification gets what is left. Jobs
//! wait in a short queue; a job that finds it full is refused at once, and the caller answers
//! 503 with `Retry-After`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// Why a job did not run to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue was full: more sign-ins at once than the budget allows.
    #[error("all sign-in workers are busy")]
    Saturated,
    /// The job panicked (a bug; logged by the caller).
    #[error("a sign-in job failed")]
    Failed,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of low-priority threads with a bounded queue.
#[derive(Debug, Clone)]
pub struct SignInPool {
    queue: SyncSender<Job>,
}

impl SignInPool {
    /// Starts `workers` threads; at most `queue` jobs wait beyond those running.
    pub fn new(workers: usize, queue: usize) -> Self {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("vestibule-sign-in-{n}"))
                .spawn(move || work(&receiver))
                .expect("a thread can be started at start-up");
        }
        Self { queue: sender }
    }

    /// Runs `job` on a pool thread.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(job)));
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PoolError::Saturated),
            Err(TrySendError::Disconnected(_)) => return Err(PoolError::Failed),
        }
        match result.await {
            Ok(Ok(value)) => Ok(value),
            _ => Err(PoolError::Failed),
        }
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    if let Err(e) =
        thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
    {
        tracing::warn!(error = ?e, "sign-in worker keeps the normal priority");
    }
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// The calling thread's nice value, from /proc (Linux).
    fn my_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the parenthesised command name; nice is field 19 overall.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(16).unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_at_the_lowest_priority_and_a_full_queue_refuses_at_once() {
        let pool = SignInPool::new(1, 1);
        assert_eq!(
            pool.run(my_nice).await,
            Ok(19),
            "sign-in work yields the CPU"
        );
        assert_eq!(my_nice(), 0, "the caller's own priority is untouched");
        // One job running (held), one waiting: the third is refused.
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let running = {
            let pool = pool.clone();
            tokio::spawn(async move {
                pool.run(move || {
                    started_tx.send(()).unwrap();
                    gate.recv().is_ok()
                })
                .await
            })
        };
        started.recv().unwrap();
        // Two more while the worker is held: one fits the queue, the other is refused at
        // once (which one depends on the scheduler).
        let (a, b) = {
            let (pa, pb) = (pool.clone(), pool.clone());
            (
                tokio::spawn(async move { pa.run(|| 2).await }),
                tokio::spawn(async move { pb.run(|| 3).await }),
            )
        };
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                if a.is_finished() || b.is_finished() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            refused.is_ok(),
            "the job that did not fit was answered at once"
        );
        release.send(()).unwrap();
        assert_eq!(running.await.unwrap(), Ok(true));
        let mut outcomes = [a.await.unwrap(), b.await.unwrap()];
        outcomes.sort_by_key(|o| o.is_ok());
        assert_eq!(outcomes[0], Err(PoolError::Saturated));
        assert!(matches!(outcomes[1], Ok(2) | Ok(3)));
        assert_eq!(pool.run(|| 4).await, Ok(4), "room again");
        assert_eq!(
            pool.run(|| -> u8 { panic!("bug") }).await,
            Err(PoolError::Failed)
        );
        assert_eq!(
            pool.run(|| 5).await,
            Ok(5),
            "a panicking job keeps its worker"
        );
    }
}
