//! Forward, LRP (forward + backward) and gradient (forward + backward) of a
//! BiLSTM over a grid of hidden sizes and lengths; throughput in tokens.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lrp_bench::{bilstm_config, seeded_input, seeded_model};
use lrp_layers::Composite;

fn passes(c: &mut Criterion) {
    let rules = Composite::<f64>::epsilon(0.001, 0.0).expect("valid rule");
    for hidden in [60, 512] {
        let model = seeded_model::<f64>(&bilstm_config(hidden), 1);
        let mut group = c.benchmark_group(format!("bilstm-h{hidden}"));
        group.sample_size(20);
        for len in [20, 200] {
            let x = seeded_input(hidden, len, 2);
            group.throughput(Throughput::Elements(len as u64));
            group.bench_with_input(BenchmarkId::new("forward", len), &x, |b, x| {
                b.iter(|| model.forward(x.clone()).expect("forward"))
            });
            group.bench_with_input(BenchmarkId::new("lrp", len), &x, |b, x| {
                b.iter(|| {
                    let trace = model.forward(x.clone()).expect("forward");
                    model.lrp(&trace, trace.predicted(), &rules).expect("lrp")
                })
            });
            group.bench_with_input(BenchmarkId::new("gradient", len), &x, |b, x| {
                b.iter(|| {
                    let trace = model.forward(x.clone()).expect("forward");
                    model.gradient(&trace, trace.predicted()).expect("gradient")
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, passes);
criterion_main!(benches);
