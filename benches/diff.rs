//! How long a diff of two ~100 KB policy versions with ~50 scattered edits takes, uncached;
//! and, for scale, rendering one such version (what publishing costs).
//!
//! `cargo bench --bench diff`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

const SEED: &str = include_str!("../policies/privacy-policy/v2.md");

/// A ~100 KB policy: the sample privacy policy's sections repeated under new numbers.
fn large_policy() -> String {
    let body = SEED.splitn(3, "---\n").nth(2).unwrap_or(SEED);
    let mut out = String::new();
    let mut copy = 0;
    while out.len() < 100_000 {
        copy += 1;
        out.push_str(&format!("## Part {copy}\n\n"));
        out.push_str(&body.replace("## ", &format!("### {copy}.")));
        out.push('\n');
    }
    out
}

/// About 50 edits spread through the text: reworded sentences, a removed and an added item.
fn edited(text: &str) -> String {
    let paragraphs: Vec<&str> = text.split("\n\n").collect();
    let step = (paragraphs.len() / 50).max(1);
    let mut out = Vec::with_capacity(paragraphs.len() + 10);
    for (i, p) in paragraphs.iter().enumerate() {
        if i % step == 0 && i > 0 {
            match (i / step) % 5 {
                0 => out.push(p.replacen("developers", "the operators", 1)),
                1 => out.push(format!("{p} This applies only where the law allows it.")),
                2 => out.push(p.replacen("your", "the subject's", 2)),
                3 => {
                    out.push((*p).to_owned());
                    out.push("a) A new clause added in this version, with a few words of its own.".to_owned());
                }
                _ => {} // removed
            }
        } else {
            out.push((*p).to_owned());
        }
    }
    out.join("\n\n")
}

fn benches(c: &mut Criterion) {
    let old = large_policy();
    let new = edited(&old);
    eprintln!("old {} bytes, new {} bytes", old.len(), new.len());
    let d = assent::render::diff::diff(&old, &new);
    let changed = d.blocks.iter().filter(|b| b.change != assent::render::diff::Change::Unchanged).count();
    eprintln!("{} blocks, {changed} changed, +{} -{} words", d.blocks.len(), d.insertions, d.deletions);

    c.bench_function("diff 100 KB, ~50 edits (uncached)", |b| {
        b.iter(|| assent::render::diff::diff(black_box(&old), black_box(&new)))
    });
    c.bench_function("unified diff 100 KB", |b| {
        b.iter(|| assent::render::diff::unified(black_box(&old), black_box(&new), "a", "b"))
    });
    c.bench_function("render 100 KB (publish)", |b| b.iter(|| assent::render::render(black_box(&new))));
}

criterion_group! {
    name = diff;
    config = Criterion::default().sample_size(30);
    targets = benches
}
criterion_main!(diff);
