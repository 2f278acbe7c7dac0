//! Criterion benchmarks of the batched engine, one group per target of the
//! engine issue (`cargo bench -p lrp-bench`; a group alone with
//! `cargo bench -p lrp-bench -- rules`):
//!
//! - `passes/H`: forward, LRP (the backward pass alone, on a kept trace) and
//!   the gradient (likewise) of a seeded BiLSTM on a batch of 64 sequences
//!   of SST test lengths, at H = 60, 256, 512: LRP against the forward pass;
//! - `cells`: forward and LRP of one bidirectional layer of each built-in
//!   cell (LSTM, GRU, minGRU, minLSTM) at H = 256 on the same batch: each
//!   cell's LRP against its own forward pass;
//! - `rules`: LRP with every linear rule everywhere and with every gate rule,
//!   on one batch at H = 256: each against epsilon;
//! - `sst`: forward + LRP of all 2,210 SST test sentences' lengths with the
//!   published model's shape (E = H = 60), on one and on two threads, f64
//!   and f32, in chunks as the CLI runs them.
//!
//! Timing lives here and in `lrp-bench/scripts/compare_reference.py`, never
//! in the tests.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lrp_bench::{bidirectional_config, bilstm_config, seeded_model, sst_test_lengths};
use lrp_core::Float;
use lrp_layers::{Composite, RuleParameters, GATE_RULES, LINEAR_RULES};
use lrp_models::faithfulness::SplitMix64;
use lrp_models::Model;
use nalgebra::DMatrix;
use rayon::prelude::*;

/// Seeded inputs `[E, T]` in `[-1, 1)`, one per length.
fn inputs<T: Float>(e: usize, lengths: &[usize], seed: u64) -> Vec<DMatrix<T>> {
    let mut values = SplitMix64(seed);
    lengths
        .iter()
        .map(|&t| DMatrix::from_fn(e, t, |_, _| T::of_f64(values.next_signed())))
        .collect()
}

fn explain<T: Float>(model: &Model<T>, xs: Vec<DMatrix<T>>, rules: &Composite<T>) -> usize {
    let traces: Vec<_> = model
        .forward_batch(xs)
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let requests: Vec<_> = traces.iter().map(|t| (t, t.predicted())).collect();
    model.lrp_batch(&requests, rules).len()
}

fn passes(c: &mut Criterion) {
    let rules = Composite::<f64>::epsilon(0.001, 0.0).expect("valid rule");
    let lengths: Vec<usize> = sst_test_lengths().into_iter().take(64).collect();
    let tokens: usize = lengths.iter().sum();
    for hidden in [60, 256, 512] {
        let model = seeded_model::<f64>(&bilstm_config(hidden), 1);
        let xs = inputs::<f64>(hidden, &lengths, 2);
        let traces: Vec<_> = model
            .forward_batch(xs.clone())
            .into_iter()
            .map(|t| t.expect("forward"))
            .collect();
        let requests: Vec<_> = traces.iter().map(|t| (t, t.predicted())).collect();
        let mut group = c.benchmark_group(format!("passes/H{hidden}"));
        group.sample_size(10);
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_function("forward", |b| b.iter(|| model.forward_batch(xs.clone())));
        group.bench_function("lrp", |b| b.iter(|| model.lrp_batch(&requests, &rules)));
        group.bench_function("gradient", |b| b.iter(|| model.gradient_batch(&requests)));
        group.finish();
    }
}

fn cells(c: &mut Criterion) {
    let rules = Composite::<f64>::epsilon(0.001, 0.0).expect("valid rule");
    let lengths: Vec<usize> = sst_test_lengths().into_iter().take(64).collect();
    let hidden = 256;
    let xs = inputs::<f64>(hidden, &lengths, 2);
    let mut group = c.benchmark_group("cells");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lengths.iter().sum::<usize>() as u64));
    for cell in ["lstm", "gru", "mingru", "minlstm"] {
        let model = seeded_model::<f64>(&bidirectional_config(cell, hidden), 1);
        let traces: Vec<_> = model
            .forward_batch(xs.clone())
            .into_iter()
            .map(|t| t.expect("forward"))
            .collect();
        let requests: Vec<_> = traces.iter().map(|t| (t, t.predicted())).collect();
        group.bench_function(BenchmarkId::new("forward", cell), |b| {
            b.iter(|| model.forward_batch(xs.clone()))
        });
        group.bench_function(BenchmarkId::new("lrp", cell), |b| {
            b.iter(|| model.lrp_batch(&requests, &rules))
        });
    }
    group.finish();
}

fn rules(c: &mut Criterion) {
    let hidden = 256;
    let model = seeded_model::<f64>(&bilstm_config(hidden), 1);
    let lengths: Vec<usize> = sst_test_lengths().into_iter().take(64).collect();
    let traces: Vec<_> = model
        .forward_batch(inputs::<f64>(hidden, &lengths, 3))
        .into_iter()
        .map(|t| t.expect("forward"))
        .collect();
    let requests: Vec<_> = traces.iter().map(|t| (t, t.predicted())).collect();
    let p = RuleParameters::default();
    let mut group = c.benchmark_group("rules");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lengths.iter().sum::<usize>() as u64));
    for name in LINEAR_RULES {
        let composite = Composite::<f64>::with_every_rule(name, &p).expect("a rule");
        group.bench_with_input(BenchmarkId::new("linear", name), &composite, |b, rules| {
            b.iter(|| model.lrp_batch(&requests, rules))
        });
    }
    for name in GATE_RULES {
        let composite = Composite::<f64>::epsilon(p.eps, p.bias_factor)
            .expect("a rule")
            .with_boxed_gate_rule(lrp_layers::gate_rule(name, &p).expect("a gate rule"));
        group.bench_with_input(BenchmarkId::new("gate", name), &composite, |b, rules| {
            b.iter(|| model.lrp_batch(&requests, rules))
        });
    }
    group.finish();
}

/// All SST test lengths, in chunks of 128 as the CLI explains them.
fn sst_run<T: Float>(model: &Model<T>, chunks: &[Vec<DMatrix<T>>], rules: &Composite<T>) -> usize {
    chunks.par_iter().map(|xs| explain(model, xs.clone(), rules)).sum()
}

fn sst(c: &mut Criterion) {
    let mut lengths = sst_test_lengths();
    lengths.sort_unstable();
    let config = bilstm_config(60);
    let chunks_of = |xs: Vec<DMatrix<f64>>| -> Vec<Vec<DMatrix<f64>>> { xs.chunks(128).map(<[_]>::to_vec).collect() };
    let xs64 = chunks_of(inputs::<f64>(60, &lengths, 4));
    let xs32: Vec<Vec<DMatrix<f32>>> = xs64
        .iter()
        .map(|chunk| chunk.iter().map(|x| x.map(|v| v as f32)).collect())
        .collect();
    let (m64, m32) = (seeded_model::<f64>(&config, 1), seeded_model::<f32>(&config, 1));
    let (r64, r32) = (
        Composite::<f64>::epsilon(0.001, 0.0).expect("rule"),
        Composite::<f32>::epsilon(0.001, 0.0).expect("rule"),
    );
    let mut group = c.benchmark_group("sst");
    group.sample_size(10);
    group.throughput(Throughput::Elements(lengths.iter().sum::<usize>() as u64));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a pool");
        group.bench_function(BenchmarkId::new("f64", format!("{threads} threads")), |b| {
            b.iter(|| pool.install(|| sst_run(&m64, &xs64, &r64)))
        });
        group.bench_function(BenchmarkId::new("f32", format!("{threads} threads")), |b| {
            b.iter(|| pool.install(|| sst_run(&m32, &xs32, &r32)))
        });
    }
    group.finish();
}

criterion_group!(benches, passes, cells, rules, sst);
criterion_main!(benches);
