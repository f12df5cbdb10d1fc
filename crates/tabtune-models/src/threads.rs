//! Worker threads of a fit: the count is checked against the machine (`threads` above its cores
//! only oversubscribes them: `threads=100000` once brought the load average to 738), and a
//! thread that cannot be started fails the fit with [`ModelError::Threads`], never a panic.

use std::num::NonZeroUsize;

use crate::error::{ModelError, Result};

/// The most worker threads a fit may ask for: this machine's cores (as the OS and any cgroup
/// quota report them); at least 1.
pub fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Checks a `threads` parameter: 0 (all cores) up to [`max_threads`].
pub(crate) fn check(threads: usize) -> Result<()> {
    let max = max_threads();
    if threads > max {
        return Err(ModelError::param(
            "threads",
            threads,
            &format!("an integer in 0..={max} (this machine's cores; 0 = all of them)"),
        ));
    }
    Ok(())
}

/// A pool of `threads` workers (0: one per core).
pub(crate) fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    pool_with(threads, |thread| {
        let mut builder = std::thread::Builder::new();
        if let Some(name) = thread.name() {
            builder = builder.name(name.to_owned());
        }
        if let Some(size) = thread.stack_size() {
            builder = builder.stack_size(size);
        }
        builder.spawn(|| thread.run()).map(|_| ())
    })
}

/// [`pool`] with the thread spawner given (tests make it fail).
fn pool_with(
    threads: usize,
    spawn: impl FnMut(rayon::ThreadBuilder) -> std::io::Result<()>,
) -> Result<rayon::ThreadPool> {
    check(threads)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tabtune-fit-{i}"))
        .spawn_handler(spawn)
        .build()
        .map_err(|e| ModelError::Threads {
            threads,
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_threads_than_cores_are_refused_by_name() {
        check(0).expect("all cores");
        check(max_threads()).expect("every core");
        let err = check(100_000).expect_err("too many");
        assert!(err.is_bad_input());
        let text = err.to_string();
        assert!(
            text.contains("`threads` = 100000") && text.contains("this machine's cores"),
            "{text}"
        );
    }

    #[test]
    fn a_thread_that_cannot_start_is_a_typed_error() {
        let threads = max_threads();
        let err = pool_with(threads, |_thread| {
            Err(std::io::Error::other("Resource temporarily unavailable"))
        });
        match err {
            Err(ModelError::Threads {
                threads: asked,
                message,
            }) => {
                assert_eq!(asked, threads);
                assert!(
                    message.contains("Resource temporarily unavailable"),
                    "{message}"
                );
            }
            other => panic!("expected a Threads error, got {other:?}"),
        }
        let err = ModelError::Threads {
            threads: 4,
            message: "no".into(),
        };
        assert!(!err.is_bad_input(), "a system limit is a runtime failure");
        pool(1).expect("one thread starts");
    }
}
