//! `ember inspect`: a GGUF file's version, metadata and tensors.

use crate::{model, Failure};
use ember::gguf::{Gguf, GgufFile, Value};
use ember::GgmlType;
use serde_json::{json, Map};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// Arguments of `ember inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF file (default: the default model, fetched on first use).
    model: Option<PathBuf>,
    /// Output JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// How many array elements to show before `...`.
const ARRAY_HEAD: usize = 5;
/// Longest value shown in text output (longer ones are cut with `...`).
const MAX_VALUE_LEN: usize = 60;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => escape(s),
        Value::Array(a) => {
            let mut s = String::from("[");
            for (i, e) in a.iter().take(ARRAY_HEAD).enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                match e {
                    Ok(Value::Str(x)) => {
                        let _ = write!(s, "\"{}\"", escape(x));
                    }
                    Ok(Value::Array(inner)) => {
                        let _ = write!(s, "arr[{},{}]", inner.elem_type().name(), inner.len());
                    }
                    Ok(x) => {
                        let _ = write!(s, "{x}");
                    }
                    Err(_) => s.push('?'),
                }
            }
            if a.len() > ARRAY_HEAD {
                s.push_str(", ...");
            }
            s.push(']');
            s
        }
        v => v.to_string(),
    }
}

fn type_text(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("arr[{},{}]", a.elem_type().name(), a.len()),
        v => v.ty().name().to_string(),
    }
}

fn value_json(v: &Value<'_>) -> serde_json::Value {
    match *v {
        Value::Str(s) => json!(s),
        Value::Bool(b) => json!(b),
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Array(a) => {
            let head: Vec<serde_json::Value> = a
                .iter()
                .take(ARRAY_HEAD)
                .map(|e| match e {
                    Ok(Value::Array(inner)) => {
                        json!({"type": inner.elem_type().name(), "len": inner.len()})
                    }
                    Ok(x) => value_json(&x),
                    Err(_) => serde_json::Value::Null,
                })
                .collect();
            json!({"type": "arr", "elem_type": a.elem_type().name(), "len": a.len(), "head": head})
        }
        ref v => match v.as_i128() {
            Some(i) => i64::try_from(i)
                .map(|i| json!(i))
                .unwrap_or_else(|_| json!(i as u64)),
            None => serde_json::Value::Null,
        },
    }
}

struct Totals {
    per_type: BTreeMap<GgmlType, (usize, u64, u64)>,
    params: u64,
    bytes: u64,
}

fn totals(g: &Gguf<'_>) -> Totals {
    let mut per_type = BTreeMap::new();
    let (mut params, mut bytes) = (0u64, 0u64);
    for t in g.tensors() {
        let e = per_type.entry(t.ty).or_insert((0usize, 0u64, 0u64));
        e.0 += 1;
        e.1 += t.n_elements;
        e.2 += t.n_bytes;
        params += t.n_elements;
        bytes += t.n_bytes;
    }
    Totals {
        per_type,
        params,
        bytes,
    }
}

fn human(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.2} K", n / 1e3)
    } else {
        format!("{n}")
    }
}

fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / (1024.0 * 1024.0))
}

/// `ember inspect`.
pub fn run(a: Args) -> Result<(), Failure> {
    let path = model::resolve(a.model)?;
    let file =
        GgufFile::open(&path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    let g = file.parse()?;
    let t = totals(&g);
    let mut out = String::with_capacity(64 * 1024);
    if a.json {
        let mut md = Map::new();
        for (k, v) in g.metadata() {
            md.insert(
                k.to_string(),
                json!({"type": type_text(v), "value": value_json(v)}),
            );
        }
        let tensors: Vec<_> = g
            .tensors()
            .iter()
            .map(|x| {
                json!({"name": x.name, "type": x.ty.name(), "shape": x.shape(), "bytes": x.n_bytes, "offset": g.data_offset() + x.offset})
            })
            .collect();
        let per_type: Map<String, serde_json::Value> = t
            .per_type
            .iter()
            .map(|(ty, (n, el, by))| {
                (
                    ty.name().to_string(),
                    json!({"tensors": n, "elements": el, "bytes": by}),
                )
            })
            .collect();
        let doc = json!({
            "path": path.display().to_string(),
            "file_size": g.file_len(),
            "version": g.version(),
            "alignment": g.alignment(),
            "data_offset": g.data_offset(),
            "metadata": md,
            "tensors": tensors,
            "totals": per_type,
            "parameters": t.params,
            "tensor_bytes": t.bytes,
        });
        out = serde_json::to_string_pretty(&doc).unwrap_or_default();
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "{}: GGUF v{}, {} metadata keys, {} tensors, alignment {}, data at byte {}",
            path.display(),
            g.version(),
            g.metadata().len(),
            g.tensors().len(),
            g.alignment(),
            g.data_offset()
        );
        let _ = writeln!(out, "\nmetadata:");
        for (i, (k, v)) in g.metadata().iter().enumerate() {
            let mut val = value_text(v);
            if val.chars().count() > MAX_VALUE_LEN {
                val = val.chars().take(MAX_VALUE_LEN - 3).collect::<String>() + "...";
            }
            let _ = writeln!(out, "  - kv {i:3}: {k:>42} {:<16} = {val}", type_text(v));
        }
        let _ = writeln!(out, "\ntensors:");
        let _ = writeln!(
            out,
            "  {:>4}  {:<32} {:<7} {:<22} {:>12} {:>12}",
            "#", "name", "type", "shape", "bytes", "offset"
        );
        for (i, x) in g.tensors().iter().enumerate() {
            let shape = x
                .shape()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(" x ");
            let _ = writeln!(
                out,
                "  {i:>4}  {:<32} {:<7} {:<22} {:>12} {:>12}",
                x.name,
                x.ty.name(),
                shape,
                x.n_bytes,
                g.data_offset() + x.offset
            );
        }
        let _ = writeln!(out, "\ntotals per type:");
        for (ty, (n, el, by)) in &t.per_type {
            let _ = writeln!(
                out,
                "  {:<7} {n:>5} tensors {:>12} elements {:>12}",
                ty.name(),
                human(*el),
                mib(*by)
            );
        }
        let _ = writeln!(
            out,
            "\nparameters: {} ({})\ntensor data: {}\nfile size: {} ({} bytes)",
            human(t.params),
            t.params,
            mib(t.bytes),
            mib(g.file_len()),
            g.file_len()
        );
    }
    let mut so = std::io::stdout().lock();
    if let Err(e) = so.write_all(out.as_bytes()).and_then(|_| so.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure::new(format!("writing output: {e}")));
        }
    }
    Ok(())
}
