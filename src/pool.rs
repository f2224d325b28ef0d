//! A small, fixed pool of threads for the blocking work the API handlers hand off (SQLite queries, deletes,
//! registry calls before a stream starts), so that the async executor never blocks and a crowd of clients never
//! becomes a crowd of threads: with 100 clients at once, 100 jobs wait in the queue, not 100 threads (each with
//! its own stack and malloc arena). The byte pipeline of downloads has its own threads (see `transfer`).
//!
//! A second pool ([`read`]) serves the chunk reads of streamed bodies (the LAN registry's blobs): a crowd of
//! LAN clients reading from a slow disk waits in its queue, never in the API's, so the owner's page and the
//! socket stay quick.

use std::sync::OnceLock;

type Job = Box<dyn FnOnce() + Send>;

/// The queue and the number of threads that serve it.
static POOL: OnceLock<(async_channel::Sender<Job>, usize)> = OnceLock::new();

/// Threads of the pool when [`init`] was not called first (tests, tools).
const DEFAULT_THREADS: usize = 4;

/// The pool of streamed bodies' chunk reads, and its threads: enough to keep a disk and the page cache busy.
static READS: OnceLock<(async_channel::Sender<Job>, usize)> = OnceLock::new();
const READ_THREADS: usize = 4;

/// Start the pool with `threads` workers; later calls (and the first [`run`] without one) keep the first size.
pub fn init(threads: usize) {
    POOL.get_or_init(|| start("pool", threads.max(1)));
}

/// The pool's threads (starting it at the default size if nothing did).
pub fn threads() -> usize {
    POOL.get_or_init(|| start("pool", DEFAULT_THREADS)).1
}

fn start(name: &str, threads: usize) -> (async_channel::Sender<Job>, usize) {
    let (tx, rx) = async_channel::unbounded::<Job>();
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-{i}"))
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
    on(POOL.get_or_init(|| start("pool", DEFAULT_THREADS)), f).await
}

/// Run `f`, one chunk read of a streamed body, on the reads' pool.
pub async fn read<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    on(READS.get_or_init(|| start("read", READ_THREADS)), f).await
}

async fn on<T: Send + 'static>(
    pool: &(async_channel::Sender<Job>, usize),
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = async_channel::bounded(1);
    let job: Job = Box::new(move || {
        let _ = tx.try_send(f());
    });
    pool.0.send(job).await.expect("the pool's queue is never closed");
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
