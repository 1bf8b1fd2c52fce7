//! Stage timing (`Exec::set_profiling`, `ember bench --profile`): it counts
//! the tokens evaluated, gives every stage of a forward pass some time,
//! accounts for the evaluation's wall time, and changes no result.

mod support;

use ember::{KvType, Model, PlanConfig, Profile, Session, Stage};
use std::time::Instant;

/// Logits after a 40-token prompt and 8 greedy steps, the profile, and the
/// wall time of those evaluations.
fn run(model: &Model, threads: usize, profiling: bool) -> (Vec<Vec<f32>>, Profile, f64) {
    let mut s = Session::new(
        model,
        PlanConfig {
            n_ctx: 128,
            n_batch: 16,
            n_threads: threads,
            kv_type: KvType::F16,
            ..Default::default()
        },
    )
    .unwrap();
    let prompt: Vec<u32> = (0..40u32).map(|i| 100 + 37 * i).collect();
    s.run(|ex| {
        ex.set_profiling(profiling);
        let t0 = Instant::now();
        ex.eval(&prompt).unwrap();
        let mut out = vec![ex.logits().to_vec()];
        for _ in 0..8 {
            let last = out.last().unwrap();
            let next = (0..last.len())
                .max_by(|&a, &b| last[a].total_cmp(&last[b]))
                .unwrap() as u32;
            ex.eval(&[next]).unwrap();
            out.push(ex.logits().to_vec());
        }
        (out, ex.profile(), t0.elapsed().as_secs_f64())
    })
}

#[test]
fn profile_accounts_for_every_token_and_changes_nothing() {
    let Some(path) = support::default_model() else {
        return;
    };
    let model = Model::open(&path).unwrap();
    for threads in [1, 2] {
        let (plain, off, _) = run(&model, threads, false);
        assert_eq!(off, Profile::default(), "profiling off records nothing");
        let (timed, p, wall) = run(&model, threads, true);
        for (step, (a, b)) in plain.iter().zip(&timed).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{threads} thread(s), step {step}: profiling changed the logits"
            );
        }
        assert_eq!(p.tokens, 48, "{threads} thread(s)");
        for s in Stage::ALL {
            assert!(
                p.ms_per_token(s) > 0.0,
                "{threads} thread(s): no time in {}",
                s.name()
            );
        }
        // The stages follow one another inside the timed evaluations: they
        // add up to most of that wall time and never to more.
        let sum: f64 = p.ns.iter().map(|&n| n as f64 / 1e9).sum();
        assert!(
            sum <= wall,
            "{threads} thread(s): stages {sum} s > wall {wall} s"
        );
        assert!(
            sum >= 0.8 * wall,
            "{threads} thread(s): stages {sum} s of {wall} s"
        );
        // What `ember bench` reports per measured run.
        let half = Profile {
            tokens: p.tokens / 2,
            ns: p.ns.map(|n| n / 2),
        };
        let rest = p.since(&half);
        assert_eq!(rest.add(&half), p);
    }
}
