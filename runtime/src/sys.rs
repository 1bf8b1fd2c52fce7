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

/// Where a session's threads run. A thread spawned by a short process can
/// start on its parent's CPU and stay there while another CPU idles: on a
/// two-vCPU machine that made one run in three evaluate a 16-token prompt
/// on one CPU, slower than one thread (see `docs/performance.md`). So each
/// thread of a session is pinned to its own CPU: the calling thread to the
/// one it is on, the others to the next allowed ones. The calling thread's
/// mask is given back when the session's threads stop.
///
/// Nothing is pinned with one thread, with more threads than allowed CPUs,
/// with `EMBER_PIN=0`, or where the platform has no affinity (only Linux
/// and Android have it here).
pub struct Placement {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    allowed: rustix::thread::CpuSet,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    home: usize,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    others: usize,
}

impl Placement {
    /// The placement of `n_threads` threads started from this one, or
    /// `None` where they are left to the OS.
    pub fn new(n_threads: usize) -> Option<Placement> {
        if n_threads < 2 || std::env::var_os("EMBER_PIN").is_some_and(|v| v == "0") {
            return None;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let allowed = rustix::thread::sched_getaffinity(None).ok()?;
            let home = rustix::thread::sched_getcpu();
            let count = allowed.count() as usize;
            if home >= rustix::thread::CpuSet::MAX_CPU || !allowed.is_set(home) || count < n_threads
            {
                return None;
            }
            Some(Placement {
                allowed,
                home,
                others: count - 1,
            })
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        None
    }

    /// The CPU of thread `tid` (0 is the one that made the placement).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn cpu(&self, tid: usize) -> Option<usize> {
        if tid == 0 {
            return Some(self.home);
        }
        (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| c != self.home && self.allowed.is_set(c))
            .nth((tid - 1) % self.others.max(1))
    }

    /// Pins the calling thread, thread `tid` of the session, to its CPU.
    /// A failure leaves it where it is: placement only affects speed.
    pub fn pin(&self, tid: usize) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(cpu) = self.cpu(tid) {
            let mut one = rustix::thread::CpuSet::new();
            one.set(cpu);
            let _ = rustix::thread::sched_setaffinity(None, &one);
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = tid;
    }

    /// Gives the calling thread back the mask it had when the placement was made.
    pub fn unpin(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = rustix::thread::sched_setaffinity(None, &self.allowed);
    }
}

/// Writes `path`'s data out and drops it from the page cache (Linux and
/// Android; elsewhere nothing). For a model just fetched: its pages were
/// cached as they were written, in small folios, and a memory map of them
/// takes 4 KiB pages. Dropped, the first load reads the file back under
/// huge-page advice, into 2 MiB folios that every later load maps with one
/// entry each (`gguf::mmap`; on this machine 1-thread decode of the default
/// model ran 89 → 130 tok/s, see `docs/performance.md`). Only a hint: any
/// failure leaves the cache as it was.
pub fn drop_cached(path: &std::path::Path) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(f) = std::fs::File::open(path) {
        if f.sync_data().is_ok() {
            let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = path;
}

/// A zeroed buffer of `len` bytes in anonymous memory, advised as
/// transparent huge pages on Linux, as a model's weights are mapped where
/// the kernel allows (`gguf::mmap`): for measurements that should see the
/// pages the weights see (`ember bench --roofline`'s read bandwidth).
/// `None` where anonymous maps are unsupported or `len` is 0.
pub fn huge_buffer(len: usize) -> Option<impl std::ops::DerefMut<Target = [u8]>> {
    crate::gguf::mmap::huge_anon(len).ok()
}

/// How much of `b`'s resident memory is mapped in huge pages (2 MiB on
/// x86-64), from 0 to 1, read from `/proc/self/smaps`: every mapping that
/// overlaps `b`, its `FilePmdMapped`, `ShmemPmdMapped` and `AnonHugePages`
/// over its `Rss`. A model's weights decode markedly faster from huge pages
/// (see [`drop_cached`]), and whether the kernel gave them is up to the page
/// cache, so `ember bench` reports it. `None` off Linux, or where nothing
/// of `b` is resident or the file cannot be read.
pub fn huge_page_share(b: &[u8]) -> Option<f64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let (lo, hi) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
        smaps_huge_share(&smaps, lo, hi)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = b;
        None
    }
}

/// [`huge_page_share`] over the text of an smaps file, for the addresses
/// `lo..hi`: a mapping starts at a line `START-END PERMS …` (hexadecimal),
/// and its fields are `Name:   N kB` lines until the next one.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn smaps_huge_share(smaps: &str, lo: usize, hi: usize) -> Option<f64> {
    let (mut rss, mut huge, mut inside) = (0u64, 0u64, false);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, z)) = first.split_once('-') {
            if let (Ok(a), Ok(z)) = (usize::from_str_radix(a, 16), usize::from_str_radix(z, 16)) {
                inside = a < hi && lo < z;
                continue;
            }
        }
        if !inside {
            continue;
        }
        let kb = words
            .next()
            .and_then(|w| w.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" => rss += kb,
            "FilePmdMapped:" | "ShmemPmdMapped:" | "AnonHugePages:" => huge += kb,
            _ => {}
        }
    }
    (rss > 0).then(|| (huge as f64 / rss as f64).min(1.0))
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

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn threads_are_pinned_to_distinct_cpus_and_the_mask_is_given_back() {
        use rustix::thread::{sched_getaffinity, sched_getcpu, CpuSet};
        let mask = |s: &CpuSet| {
            (0..CpuSet::MAX_CPU)
                .filter(|&c| s.is_set(c))
                .collect::<Vec<_>>()
        };
        let before = mask(&sched_getaffinity(None).unwrap());
        assert!(Placement::new(1).is_none(), "one thread is left to the OS");
        assert!(
            Placement::new(before.len() + 1).is_none(),
            "more threads than CPUs are left to the OS"
        );
        if before.len() < 2 || std::env::var_os("EMBER_PIN").is_some_and(|v| v == "0") {
            return;
        }
        let n = before.len().min(4);
        let p = Placement::new(n).expect("a placement with enough CPUs");
        let cpus: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (1..n)
                .map(|tid| {
                    let p = &p;
                    s.spawn(move || {
                        p.pin(tid);
                        (sched_getcpu(), mask(&sched_getaffinity(None).unwrap()))
                    })
                })
                .collect();
            p.pin(0);
            let mut cpus = vec![sched_getcpu()];
            assert_eq!(mask(&sched_getaffinity(None).unwrap()), vec![cpus[0]]);
            for h in hs {
                let (cpu, m) = h.join().unwrap();
                assert_eq!(m, vec![cpu], "a worker runs on the one CPU it is pinned to");
                cpus.push(cpu);
            }
            cpus
        });
        let mut distinct = cpus.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), n, "each thread has its own CPU: {cpus:?}");
        assert!(
            cpus.iter().all(|c| before.contains(c)),
            "{cpus:?} outside {before:?}"
        );
        p.unpin();
        assert_eq!(
            mask(&sched_getaffinity(None).unwrap()),
            before,
            "the mask is given back"
        );
    }

    /// Dropping a file's cached pages loses none of its bytes (they are
    /// written out first), and a missing file is ignored.
    #[test]
    fn drop_cached_keeps_the_data() {
        let p = std::env::temp_dir().join(format!("ember-drop-{}", std::process::id()));
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 253) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        drop_cached(&p);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        std::fs::remove_file(&p).unwrap();
        drop_cached(&p);
    }

    /// Only the mappings that overlap the range count, and each one's huge
    /// pages are weighed against its resident memory.
    #[test]
    fn huge_page_share_reads_the_overlapping_mappings() {
        let smaps = "\
70000000-70600000 r--s 00000000 fd:00 42 /models/a.gguf
Size:               6144 kB
Rss:                6144 kB
FilePmdMapped:      4096 kB
AnonHugePages:         0 kB
70600000-70800000 rw-p 00000000 00:00 0
Size:               2048 kB
Rss:                2048 kB
AnonHugePages:      2048 kB
VmFlags: rd wr mr mw me ac
";
        let share = |lo, hi| smaps_huge_share(smaps, lo, hi);
        assert_eq!(share(0x7000_0000, 0x7060_0000), Some(4096.0 / 6144.0));
        assert_eq!(share(0x7060_0000, 0x7060_1000), Some(1.0));
        assert_eq!(share(0x7010_0000, 0x7070_0000), Some(6144.0 / 8192.0));
        assert_eq!(share(0x1000, 0x2000), None, "nothing mapped there");
        assert_eq!(smaps_huge_share("", 0, usize::MAX), None);
    }

    /// This process's own heap is resident, so its share is known on Linux.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn huge_page_share_of_live_memory_is_a_fraction() {
        let v = vec![1u8; 8 << 20];
        let s = huge_page_share(&v).expect("the heap is resident");
        assert!((0.0..=1.0).contains(&s), "{s}");
    }

    #[test]
    fn a_panic_on_the_side_reaches_the_caller() {
        let r = std::panic::catch_unwind(|| join(|| 1, || -> u32 { panic!("side") }));
        assert!(r.is_err());
    }
}
