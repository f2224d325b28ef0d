//! A small, fixed pool of threads for the blocking work the API handlers hand off (SQLite queries, deletes,
//! registry calls before a stream starts), so that the async executor never blocks and a crowd of clients never
//! becomes a crowd of threads: with 100 clients at once, 100 jobs wait in the queue, not 100 threads (each with
//! its own stack and malloc arena). The byte pipeline of downloads has its own threads (see `transfer`).

use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// The queue and the number of threads that serve it.
static POOL: OnceLock<(async_channel::Sender<Job>, usize)> = OnceLock::new();

/// Threads of the pool when [`init`] was not called first (tests, tools).
const DEFAULT_THREADS: usize = 4;

/// Start the pool with `threads` workers; later calls (and the first [`run`] without one) keep the first size.
pub fn init(threads: usize) {
    POOL.get_or_init(|| start(threads.max(1)));
}

/// The pool's threads (starting it at the default size if nothing did).
pub fn threads() -> usize {
    POOL.get_or_init(|| start(DEFAULT_THREADS)).1
}

fn start(threads: usize) -> (async_channel::Sender<Job>, usize) {
    let (tx, rx) = async_channel::unbounded::<Job>();
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("pool-{i}"))
            // The jobs are shallow (a query, a file operation): a small stack keeps the daemon small.
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(job) = rx.recv_blocking() {
                    job();
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start pool thread {i}: {e}");
        }
    }
    (tx, threads)
}

/// Run `f` on the pool and wait for its result without blocking the executor.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let _ = tx.try_send(f());
    });
    let (pool, _) = POOL.get_or_init(|| start(DEFAULT_THREADS));
    pool.send(job).await.expect("the pool's queue is never closed");
    // The job always sends unless it panicked, and a panic aborts the process (panic = "abort").
    rx.recv().await.expect("a pool job ended without an answer")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn many_jobs_few_threads() {
        init(3);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        smol::block_on(async {
            let jobs: Vec<_> = (0..60)
                .map(|i| {
                    let (running, peak, names) = (running.clone(), peak.clone(), names.clone());
                    smol::spawn(run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        names
                            .lock()
                            .unwrap()
                            .insert(std::thread::current().name().unwrap_or("").to_string());
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        i * 2
                    }))
                })
                .collect();
            let mut sum = 0;
            for j in jobs {
                sum += j.await;
            }
            assert_eq!(sum, (0..60).map(|i| i * 2).sum::<usize>());
        });
        // tests share a process under `cargo test`: another may have started the pool at its own size first
        let n = threads();
        assert!((3..=DEFAULT_THREADS).contains(&n), "{n}");
        assert!(peak.load(Ordering::SeqCst) <= n, "at most the pool's threads at once");
        assert!(names.lock().unwrap().iter().all(|n| n.starts_with("pool-")));
    }
}
