//! Decoding allocates nothing: a counting global allocator watches 32 decode
//! steps (evaluation and sampling), with one thread and with several.

mod support;

use ember::sampler::{Sampler, SamplerParams};
use ember::{KvType, Model, PlanConfig, Session};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System.alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn decode_allocs(model: &Model, threads: usize, kv_type: KvType, profiling: bool) -> usize {
    let mut s = Session::new(
        model,
        PlanConfig {
            n_ctx: 256,
            n_batch: 32,
            n_threads: threads,
            kv_type,
            ..Default::default()
        },
    )
    .unwrap();
    let mut sampler = Sampler::new(
        model.hp.n_vocab,
        SamplerParams {
            seed: 42,
            repeat_penalty: 1.1,
            ..Default::default()
        },
    );
    let mut history: Vec<u32> = Vec::with_capacity(256);
    // 140 tokens, so that with 2+ threads decode shares each token's
    // attention by value columns (from 128 positions), after a job sharing
    // the key chunks or with each thread's own scores.
    for _ in 0..28 {
        history.extend([19556u32, 905, 28, 339, 1056]);
    }
    s.run(|ex| {
        ex.set_profiling(profiling);
        ex.eval(&history.clone()).unwrap();
        // One warm-up step, then count 32 more.
        let mut before = 0;
        for step in 0..33 {
            if step == 1 {
                before = ALLOCS.load(Ordering::SeqCst);
            }
            let t = sampler.sample(ex.logits(), &history);
            history.push(t);
            ex.eval(std::slice::from_ref(&t)).unwrap();
        }
        ALLOCS.load(Ordering::SeqCst) - before
    })
}

#[test]
fn decode_steps_allocate_nothing() {
    let Some(path) = support::default_model() else {
        return;
    };
    let model = Model::open(path).unwrap();
    // The counter is live: an allocation moves it.
    let before = ALLOCS.load(Ordering::SeqCst);
    let v = std::hint::black_box(vec![1u8; 64]);
    assert!(ALLOCS.load(Ordering::SeqCst) > before && v.len() == 64);
    // 4 threads share each token's key chunks in a job of their own, 2 and
    // 3 compute their heads' scores in the values job (`own_scores_pay`).
    for threads in [1, 2, 3, 4] {
        let n = decode_allocs(&model, threads, KvType::F16, false);
        eprintln!("{threads} thread(s): {n} allocations in 32 decode steps");
        assert_eq!(n, 0, "{threads} thread(s): decoding allocated {n} times");
    }
    let n = decode_allocs(&model, 2, KvType::Q8_0, false);
    assert_eq!(n, 0, "Q8_0 KV cache: decoding allocated {n} times");
    // Timing the stages (`ember bench --profile`) allocates nothing either.
    let n = decode_allocs(&model, 2, KvType::F16, true);
    assert_eq!(n, 0, "profiling: decoding allocated {n} times");
}
