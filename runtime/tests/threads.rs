//! The thread count changes no result: the logits of a 250-token prompt batch
//! and of the decode steps after it are equal, bit for bit, with 1, 2, 3
//! and 4 threads (matrix rows and attention units are split across threads, never
//! a sum), with an F16 and with a Q8_0 KV cache.

mod support;

use ember::tokenizer::Tokenizer;
use ember::{KvType, Model, PlanConfig, Session};

fn run(
    model: &Model,
    prompt: &[u32],
    steps: usize,
    threads: usize,
    kv_type: KvType,
) -> Vec<Vec<f32>> {
    let mut s = Session::new(
        model,
        PlanConfig {
            n_ctx: 512,
            n_batch: 64,
            n_threads: threads,
            kv_type,
            ..Default::default()
        },
    )
    .unwrap();
    s.eval(prompt).unwrap();
    let mut out = vec![s.logits().to_vec()];
    for _ in 0..steps {
        let last = out.last().unwrap();
        let next = (0..last.len())
            .max_by(|&a, &b| last[a].total_cmp(&last[b]))
            .unwrap() as u32;
        s.eval(&[next]).unwrap();
        out.push(s.logits().to_vec());
    }
    out
}

#[test]
fn logits_do_not_depend_on_the_thread_count() {
    let Some(path) = support::default_model() else {
        return;
    };
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&model.gguf().unwrap()).unwrap();
    let text = std::fs::read_to_string(support::fixture("apache-2.0.txt")).unwrap();
    let mut prompt = tok.encode(&text, false, false).unwrap();
    // Decode crosses a key-chunk boundary (256).
    prompt.truncate(250);
    for kv in [KvType::F16, KvType::Q8_0] {
        let one = run(&model, &prompt, 10, 1, kv);
        // 2 and 3 threads compute their heads' scores in the values job, 4
        // share the key chunks in a job before it (`own_scores_pay`).
        for t in [2, 3, 4] {
            let many = run(&model, &prompt, 10, t, kv);
            for (step, (a, b)) in one.iter().zip(&many).enumerate() {
                let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{kv:?} step {step}: logits differ between 1 and {t} threads"
                );
            }
        }
    }
}
