//! Where CPU-heavy sign-in work runs: XML signature verification must not occupy a proxy
//! worker (it would stall every authenticated request queued behind it), and an
//! unauthenticated flood must not be able to queue unbounded work. At most `workers` jobs
//! run at once on the blocking pool; a job that cannot start within `wait` is refused, and
//! the caller answers 503 with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Why a job did not run to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every worker stayed busy for the whole wait.
    #[error("all sign-in workers are busy")]
    Saturated,
    /// The job panicked (a bug; logged by the caller).
    #[error("a sign-in job failed")]
    Failed,
}

/// A bounded set of blocking workers for sign-in verification.
#[derive(Debug, Clone)]
pub struct SignInPool {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl SignInPool {
    /// A pool running at most `workers` jobs at once; a job waits at most `wait` to start.
    pub fn new(workers: usize, wait: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            wait,
        }
    }

    /// Runs `job` on a blocking thread once a worker is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| PoolError::Saturated)?
            .map_err(|_| PoolError::Saturated)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|_| PoolError::Failed)
    }

    /// Jobs that could start now.
    pub fn idle(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_pool_refuses_after_the_wait_and_frees_up_afterwards() {
        let pool = SignInPool::new(1, Duration::from_millis(50));
        let (release, gate) = mpsc::channel::<()>();
        let busy = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(move || gate.recv().is_ok()).await })
        };
        while pool.idle() != 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.run(|| 1).await, Err(PoolError::Saturated));
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(true));
        assert_eq!(pool.run(|| 2).await, Ok(2));
        assert_eq!(
            pool.run(|| -> u8 { panic!("bug") }).await,
            Err(PoolError::Failed)
        );
        assert_eq!(pool.idle(), 1, "a panicking job gives its worker back");
    }
}
