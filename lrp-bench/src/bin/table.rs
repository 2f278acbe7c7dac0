//! Prints a markdown table of throughput (tokens per second) for the
//! forward pass, LRP (forward + backward) and the gradient (forward +
//! backward) of a seeded BiLSTM over a grid of hidden sizes and lengths, in
//! f64 and f32, one sequence at a time on one core, plus the batched
//! forward pass. Each cell is the best of several timed repetitions.
//!
//! `cargo run --release -p lrp-bench --bin table` (about a minute).
//! `--memory T H` instead runs forward + LRP once at length T, hidden size
//! H, for measuring peak memory with `/usr/bin/time -f %M`.

use std::time::{Duration, Instant};

use lrp_bench::{bilstm_config, seeded_input, seeded_model};
use lrp_core::Float;
use lrp_layers::Composite;
use lrp_models::Model;
use nalgebra::DMatrix;

/// Best time of `f` over repetitions filling about `budget`.
fn best_of(budget: Duration, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || (start.elapsed() < budget && runs < 1000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn model_in<T: Float>(hidden: usize) -> Model<T> {
    seeded_model(&bilstm_config(hidden), 1)
}

fn row<T: Float>(precision: &str, hidden: usize, len: usize, budget: Duration) -> String {
    let model = model_in::<T>(hidden);
    let x: DMatrix<T> = seeded_input(hidden, len, 2).map(T::of_f64);
    let rules = Composite::<T>::epsilon(0.001, 0.0).expect("rule");
    let forward = best_of(budget, || {
        model.forward(x.clone()).expect("forward");
    });
    let lrp = best_of(budget, || {
        let trace = model.forward(x.clone()).expect("forward");
        model.lrp(&trace, trace.predicted(), &rules).expect("lrp");
    });
    let gradient = best_of(budget, || {
        let trace = model.forward(x.clone()).expect("forward");
        model.gradient(&trace, trace.predicted()).expect("gradient");
    });
    let batch: Vec<DMatrix<T>> = (0..16)
        .map(|k| seeded_input(hidden, len, 10 + k).map(T::of_f64))
        .collect();
    let batched = best_of(budget, || {
        model.forward_batch(batch.clone());
    }) / 16;
    let rate = |d: Duration| len as f64 / d.as_secs_f64();
    format!(
        "| {precision} | {hidden} | {len} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
        rate(forward),
        rate(lrp),
        rate(gradient),
        rate(batched),
        lrp.as_secs_f64() / forward.as_secs_f64(),
        gradient.as_secs_f64() / forward.as_secs_f64()
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--memory") {
        let parse = |k: usize, default: usize| args.get(k).and_then(|v| v.parse().ok()).unwrap_or(default);
        let (len, hidden) = (parse(2, 20_000), parse(3, 256));
        let model = model_in::<f64>(hidden);
        let trace = model.forward(seeded_input(hidden, len, 2)).expect("forward");
        let e = model
            .lrp(&trace, 0, &Composite::epsilon(0.001, 0.0).expect("rule"))
            .expect("lrp");
        println!(
            "T = {len}, H = {hidden}: total relevance {:.6}",
            e.input_relevance.total()
        );
        return;
    }
    let budget = Duration::from_millis(400);
    println!("| precision | H | T | forward tokens/s | LRP tokens/s | gradient tokens/s | batched forward (16) tokens/s | LRP / forward | gradient / forward |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for hidden in [60, 512] {
        for len in [20, 200] {
            println!("{}", row::<f64>("f64", hidden, len, budget));
            println!("{}", row::<f32>("f32", hidden, len, budget));
        }
    }
}
