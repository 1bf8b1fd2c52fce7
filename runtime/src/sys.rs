//! What not every platform has: threads (WASI has none) and process ids.

use std::sync::{Mutex, PoisonError};

/// A number that tells this process from others running now: the process
/// id where the platform has one, else random bits (WASI has no `getpid`).
pub fn process_tag() -> u64 {
    #[cfg(not(target_os = "wasi"))]
    {
        u64::from(std::process::id())
    }
    #[cfg(target_os = "wasi")]
    {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    }
}

/// Runs `side` on a scoped thread while `main` runs on this one, and returns
/// both results. Where no thread can be started (WASI without threads, or a
/// process at its thread limit) it runs `main`, then `side`, on this thread.
///
/// A panic in `side` is resumed on this thread.
pub fn join<A, B: Send>(main: impl FnOnce() -> A, side: impl FnOnce() -> B + Send) -> (A, B) {
    // Whoever runs `side` takes it from here: the thread if it starts, else
    // this thread after `main` (a builder that fails drops only the borrow).
    let slot = Mutex::new(Some(side));
    let run = || {
        let f = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        f.map(|f| f())
    };
    std::thread::scope(|s| {
        let h = std::thread::Builder::new().spawn_scoped(s, run).ok();
        let a = main();
        let b = match h.map(|h| h.join()) {
            Some(Ok(b)) => b,
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => None,
        };
        match b.or_else(run) {
            Some(b) => (a, b),
            None => unreachable!("`side` is taken exactly once, by the thread or here"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_results_come_back() {
        let v: Vec<u32> = (0..1000).collect();
        let (a, b) = join(
            || v.iter().sum::<u32>(),
            || v.iter().map(|x| x * 2).sum::<u32>(),
        );
        assert_eq!((a, b), (499_500, 999_000));
    }

    #[test]
    fn a_panic_on_the_side_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| join(|| 1, || -> u32 { panic!("side") }));
        assert!(r.is_err());
    }
}
