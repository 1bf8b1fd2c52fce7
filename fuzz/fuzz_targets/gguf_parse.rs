//! Parses arbitrary bytes as GGUF. On success, reads everything a loader
//! could: every metadata value (arrays iterated fully, nested arrays with an
//! explicit stack so deep nesting cannot overflow the harness's own stack),
//! every typed accessor, and every tensor's data slice. Reading may fail only
//! where the reader defers a check: the UTF-8 of strings inside arrays.
#![no_main]

use ember::gguf::{Gguf, Value, ValueType};
use ember::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(g) = Gguf::parse(bytes) else {
        return;
    };
    let mut sum = 0u64;
    let mut stack: Vec<Value<'_>> = Vec::new();
    for (key, v) in g.metadata() {
        // The typed accessors: any result is fine, a panic is not.
        let _ = (g.u32(key), g.u64(key), g.i32(key), g.f32(key));
        let _ = (g.bool(key), g.str(key), g.array(key));
        assert!(g.get(key).is_some());
        sum = sum.wrapping_add(v.to_string().len() as u64);
        stack.push(*v);
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(a) => {
                    let mut n = 0usize;
                    let mut failed = false;
                    for e in a.iter() {
                        n += 1;
                        match e {
                            Ok(e) => stack.push(e),
                            // The structure was checked at parse time; only
                            // array strings' UTF-8 is checked on reading.
                            Err(Error::Gguf { msg, .. }) => {
                                assert_eq!(a.elem_type(), ValueType::String, "{msg}");
                                assert!(msg.contains("not valid UTF-8"), "{msg}");
                                failed = true;
                            }
                            Err(e) => panic!("reading an array element: {e:?}"),
                        }
                    }
                    // Iteration stops at a bad element; otherwise it yields them all.
                    assert!(failed || n == a.len());
                    assert!(n <= a.len());
                    assert_eq!(
                        a.iter_bytes().count(),
                        if a.elem_type() == ValueType::String {
                            a.len()
                        } else {
                            0
                        }
                    );
                    let _ = a.to_i32_vec();
                    let _ = a.to_u32_vec();
                    let _ = a.to_f32_vec();
                    for s in a.iter_str() {
                        sum = sum.wrapping_add(s.map_or(1, |s| s.len() as u64));
                    }
                }
                Value::Str(s) => sum = sum.wrapping_add(s.len() as u64),
                v => sum = sum.wrapping_add(v.as_i128().unwrap_or(0) as u64),
            }
        }
    }
    let data_start = g.data_offset() as usize;
    assert!(g.tensor_info_end() <= g.data_offset());
    for t in g.tensors() {
        assert!(g.tensor(t.name).is_some());
        assert!((1..=4).contains(&t.n_dims));
        assert_eq!(t.offset % g.alignment(), 0);
        let d = g.tensor_data(t);
        assert_eq!(d.len() as u64, t.n_bytes);
        let r = g.tensor_range(t);
        assert!(r.start >= data_start && r.end <= bytes.len());
        assert_eq!(&bytes[r], d);
        sum = sum.wrapping_add(d.iter().map(|&b| u64::from(b)).sum::<u64>());
    }
    std::hint::black_box(sum);
});
