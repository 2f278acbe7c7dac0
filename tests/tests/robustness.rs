//! Untrusted input, part 2 (issue 12), the model side: limits on the
//! steps of integrated gradients and of deletion curves, occlusion memory
//! that grows with `T` and not `T²`, no non-finite relevance reported as a
//! result, and misuse of the library API answered by an error, not a panic.
//! Each case goes through the library and, where a flag reaches it, the CLI.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use lrp_core::Relevance;
use lrp_io::load_model;
use lrp_layers::{Composite, Proportional, RuleParameters};
use lrp_models::{Error, Method};
use lrp_tests::{architecture, fixture, lrp, random_input, random_model, scratch_dir, CliRun};
use nalgebra::DMatrix;

/// Counts the bytes live on the current thread, and their peak, so that a
/// test can measure what one computation allocates (the attribution
/// methods run on the calling thread). Other threads' tests are not seen.
struct PerThreadCounting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are thread-local `Cell`s with constant initialisers, which
// neither allocate nor lock.
unsafe impl GlobalAlloc for PerThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: PerThreadCounting = PerThreadCounting;

/// The peak of bytes allocated on this thread while `f` runs, above what
/// was live when it started.
fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get);
    (result, (peak - start).max(0) as usize)
}

/// Writes `[T, E]` row-major f64 values as a `.npy` file.
fn write_npy(path: &Path, rows: usize, cols: usize, values: impl Fn(usize, usize) -> f64) {
    let values: Vec<f64> = (0..rows * cols).map(|k| values(k / cols, k % cols)).collect();
    std::fs::write(path, lrp_tests::npy(&[rows as u64, cols as u64], &values)).unwrap();
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A bad request: exit 1, nothing on stdout, one line on stderr naming it.
fn assert_one_line_error(run: &CliRun, phrase: &str) {
    assert_eq!(
        run.code, 1,
        "exit code; stderr {:?}, stdout {:?}",
        run.stderr, run.stdout
    );
    assert!(run.stdout.is_empty(), "stdout {:?}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {:?}", run.stderr);
    assert!(
        run.stderr.contains(phrase),
        "{:?} should mention {phrase:?}",
        run.stderr
    );
}

/// Two sentences of the built-in model's vocabulary, labelled, in a
/// scratch directory that lives as long as the returned guard.
fn tiny_labelled_set(test: &str) -> (lrp_tests::ScratchDir, PathBuf) {
    let dir = scratch_dir(test);
    let path = dir.join("labelled.txt");
    std::fs::write(
        &path,
        "1\tneither funny nor suspenseful .\n3\ta gorgeous , witty film .\n",
    )
    .unwrap();
    (dir, path)
}

// Cause 2: steps come from flags; each has a limit checked before anything
// is allocated for them.

#[test]
fn integrated_gradient_steps_have_a_limit_in_the_library() {
    let dir = load_model::<f64>(fixture("golden/models/lstm-last")).unwrap();
    let trace = dir.model.forward(random_input(6, 4, 1, 1.0)).unwrap();
    for steps in [0, Method::<f64>::MAX_IG_STEPS + 1, 1 << 61, usize::MAX] {
        let err = dir
            .model
            .attribute(&trace, 0, Method::IntegratedGradients { steps })
            .unwrap_err();
        assert_eq!(
            err,
            Error::StepsOutOfRange {
                steps,
                max: Method::<f64>::MAX_IG_STEPS
            }
        );
    }
    let at_the_limit = dir
        .model
        .attribute(&trace, 0, Method::IntegratedGradients { steps: 130 })
        .unwrap();
    assert_eq!(at_the_limit.per_position.len(), 4);
}

#[test]
fn integrated_gradient_steps_have_a_limit_in_the_cli() {
    let model = fixture("golden/models/lstm-last");
    let vectors = fixture("golden/inputs/lstm-last-0.npy");
    let explain = |steps: &str| {
        lrp(&[
            "explain",
            "--model",
            path_str(&model),
            "--vectors",
            path_str(&vectors),
            "--method",
            "ig",
            "--steps",
            steps,
        ])
    };
    for steps in ["1000000000", "2305843009213693952", "18446744073709551615"] {
        assert_one_line_error(&explain(steps), "steps is out of range: use 1 to 10000");
    }
    // Not a number of steps at all: an argument error (exit 2), one line.
    for steps in ["1e9", "18446744073709551616", "-1"] {
        let run = explain(steps);
        assert_eq!(run.code, 2, "{steps}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{steps}: {run:?}");
    }
}

#[test]
fn deletion_steps_have_a_limit() {
    use lrp_models::faithfulness::{deletion_variants, MAX_DELETIONS};
    let x = DMatrix::from_element(2, 3, 1.0);
    assert_eq!(
        deletion_variants(&x, &[2, 0, 1], usize::MAX).err(),
        Some(Error::DeletionsOutOfRange {
            deletions: usize::MAX,
            max: MAX_DELETIONS
        })
    );
    // Past the sequence's length a curve stops: T + 1 inputs, not K + 1.
    assert_eq!(deletion_variants(&x, &[2, 0, 1], MAX_DELETIONS).unwrap().count(), 4);

    let (_dir, data) = tiny_labelled_set("deletion-steps");
    let run = lrp(&[
        "perturb",
        "--data",
        path_str(&data),
        "--methods",
        "random",
        "--steps",
        "18446744073709551615",
    ]);
    assert_one_line_error(&run, "18446744073709551615 deletions is out of range: use 0 to 1000");
    // Within the limit the curve has K + 1 points even for short sentences.
    let run = lrp(&[
        "perturb",
        "--data",
        path_str(&data),
        "--methods",
        "random",
        "--steps",
        "12",
    ]);
    let report = run.json();
    assert_eq!(
        report["methods"]["random"]["correct"]["curve"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
}

// Cause 3: occlusion runs in batches; its memory grows with T, not T².

#[test]
fn occlusion_memory_grows_with_t_not_t_squared() {
    let dir = load_model::<f64>(fixture("golden/models/bilstm-context")).unwrap();
    let len = 1000;
    let trace = dir.model.forward(random_input(8, len, 3, 1.0)).unwrap();
    let target = trace.predicted();
    let (occlusion, peak) = peak_bytes(|| dir.model.attribute(&trace, target, Method::Occlusion).unwrap());
    // One occluded copy with its trace is about 1.2 MB here: all 1,000 at
    // once (the old way) took 1.2 GB; a batch of them stays far below.
    assert!(peak < 150 << 20, "occlusion at T = {len} peaked at {} MB", peak >> 20);
    assert_eq!(occlusion.per_position.len(), len);
    // Batched or not, the same numbers: each position against a forward
    // pass of its own occluded copy.
    for t in [0, 63, 64, 999] {
        let mut x = trace.input().clone();
        x.column_mut(t).fill(0.0);
        let alone = dir.model.forward(x).unwrap().scores()[target];
        let want = trace.scores()[target] - alone;
        assert!(
            (occlusion.per_position[t] - want).abs() <= 1e-12 * (1.0 + want.abs()),
            "position {t}: {} vs {want}",
            occlusion.per_position[t]
        );
    }
}

// Cause 9: relevance that is not finite is an error naming the rule and
// the position, or a finite fallback; never a result holding NaN.

/// The golden `bilstm-context` input, every value scaled to subnormal size.
fn subnormal_input(dir: &lrp_io::ModelDir<f64>) -> DMatrix<f64> {
    let x = lrp_io::read_sequences(fixture("golden/inputs/bilstm-context-1.npy"))
        .unwrap()
        .remove(0)
        .vectors;
    assert_eq!(x.nrows(), dir.model.input_size());
    x.map(|v| v.signum() * 1e-310)
}

#[test]
fn subnormal_inputs_get_finite_relevance_or_an_error() {
    let dir = load_model::<f64>(fixture("golden/models/bilstm-context")).unwrap();
    let trace = dir.model.forward(subnormal_input(&dir)).unwrap();
    let target = trace.predicted();
    let p = RuleParameters::default();
    // z+ and its relatives share relevance by fractions in [0, 1]: finite.
    for rule in ["zplus", "wsquare", "flat", "alpha-beta"] {
        let rules = Composite::<f64>::with_every_rule(rule, &p).unwrap();
        let e = dir.model.lrp(&trace, target, &rules).unwrap();
        assert!(
            e.input_relevance.as_slice().iter().all(|v| v.is_finite()),
            "{rule}: {:?}",
            e.token_relevance()
        );
    }
    // LRP-0 (gamma 0) with proportional gates divides by sums that cancel:
    // finite, or an error that names the stage, the rules and a position.
    let gamma_zero = RuleParameters { gamma: 0.0, ..p };
    for rules in [
        Composite::<f64>::with_every_rule("gamma", &p).unwrap(),
        Composite::<f64>::with_every_rule("gamma", &gamma_zero)
            .unwrap()
            .with_gate_rule(Proportional::new(0.0).unwrap()),
        Composite::<f64>::epsilon(0.0, 0.0)
            .unwrap()
            .with_gate_rule(Proportional::new(0.0).unwrap()),
    ] {
        for method in [
            Method::Lrp(&rules),
            Method::Sensitivity,
            Method::IntegratedGradients { steps: 7 },
        ] {
            match dir.model.attribute(&trace, target, method) {
                Ok(a) => assert!(
                    a.per_position.iter().all(|v| v.is_finite())
                        && a.initial_state_relevance.is_none_or(f64::is_finite)
                        && a.unexplained_relevance.is_none_or(f64::is_finite),
                    "{}: {a:?}",
                    method.name()
                ),
                Err(Error::NonFiniteRelevance { position, .. }) => {
                    assert!(position.is_none_or(|p| p < trace.len()))
                }
                Err(other) => panic!("{}: unexpected error {other}", method.name()),
            }
        }
    }
}

#[test]
fn non_finite_relevance_is_never_printed() {
    let model = fixture("golden/models/bilstm-context");
    let dir = load_model::<f64>(&model).unwrap();
    let scratch = scratch_dir("non-finite");
    let vectors = scratch.join("subnormal.npy");
    let x = subnormal_input(&dir);
    write_npy(&vectors, x.ncols(), x.nrows(), |t, e| x[(e, t)]);
    let cases: [&[&str]; 6] = [
        &["--rule", "zplus"],
        &["--rule", "gamma"],
        &["--rule", "gamma", "--gamma", "0", "--gate-rule", "prop"],
        &["--composite", "gamma"],
        &["--rule", "alpha-beta"],
        &["--precision", "f32", "--bias-factor", "1e38"],
    ];
    let mut errors = 0;
    for flags in cases {
        let mut args = vec!["explain", "--model", path_str(&model), "--vectors", path_str(&vectors)];
        args.extend_from_slice(flags);
        let run = lrp(&args);
        match run.code {
            0 => assert!(
                !run.stdout.contains("null,") && !run.stdout.contains("null]"),
                "{flags:?}: {}",
                run.stdout
            ),
            _ => {
                assert_one_line_error(&run, "relevance is not finite at position");
                errors += 1;
            }
        }
    }
    // z+ and alpha-beta give finite shares for tiny inputs; a bias factor
    // of 1e38 overflows f32 in the attention pooling's bias share.
    assert_eq!(errors, 1, "only the f32 case is an error");
    let mut args = vec!["explain", "--model", path_str(&model), "--vectors", path_str(&vectors)];
    args.extend_from_slice(&["--precision", "f32", "--bias-factor", "1e38"]);
    assert_one_line_error(
        &lrp(&args),
        "lrp relevance is not finite at position 0 after the attention pooling (rules: epsilon)",
    );
}

#[test]
fn huge_rule_parameters_in_f32_are_refused_or_finite() {
    let model = fixture("golden/models/bilstm-context");
    let vectors = fixture("golden/inputs/bilstm-context-1.npy");
    for flags in [
        ["--bias-factor", "1e38"],
        ["--bias-factor", "1e39"],
        ["--gamma", "3e38"],
        ["--eps", "1e39"],
    ] {
        let mut args = vec![
            "explain",
            "--model",
            path_str(&model),
            "--vectors",
            path_str(&vectors),
            "--precision",
            "f32",
            "--composite",
            "gamma",
        ];
        args.extend_from_slice(&flags);
        let run = lrp(&args);
        if run.code == 0 {
            assert!(!run.stdout.contains("null"), "{flags:?}: {}", run.stdout);
        } else {
            assert_eq!(run.code, 1, "{flags:?}: {run:?}");
            assert!(
                run.stdout.is_empty() && run.stderr.lines().count() == 1,
                "{flags:?}: {run:?}"
            );
            assert!(
                run.stderr.contains("not finite") || run.stderr.contains("finite in this precision"),
                "{flags:?}: {}",
                run.stderr
            );
        }
    }
    // 1e39 is finite as f64 and infinite as f32: refused up front.
    assert!(lrp_layers::Epsilon::<f32>::new(0.001, 1e39).is_err());
    assert!(lrp_layers::Epsilon::<f64>::new(0.001, 1e39).is_ok());
}

// Cause 15: misuse of the library API is an error, not a panic.

#[test]
fn a_trace_is_only_explained_by_its_own_model() {
    let rules = Composite::<f64>::epsilon(0.001, 0.0).unwrap();
    let lstm = random_model(
        &architecture("lstm", true, 1, 4, 3, Some(("context", 2)), "context", 2),
        1,
        0.5,
    );
    let gru = random_model(
        &architecture("gru", true, 1, 4, 3, Some(("context", 2)), "context", 2),
        1,
        0.5,
    );
    let wider = random_model(
        &architecture("lstm", true, 1, 4, 5, Some(("context", 2)), "context", 2),
        1,
        0.5,
    );
    let reseeded = random_model(
        &architecture("lstm", true, 1, 4, 3, Some(("context", 2)), "context", 2),
        2,
        0.5,
    );
    let x = random_input(4, 5, 9, 1.0);
    let trace = lstm.forward(x.clone()).unwrap();
    // A GRU given an LSTM's trace (was `unreachable!`), another hidden size
    // (was a panic in a matrix view), the same shape with other weights
    // (was a silently wrong answer).
    for other in [&gru, &wider, &reseeded] {
        assert_eq!(other.lrp(&trace, 0, &rules).unwrap_err(), Error::TraceFromAnotherModel);
        assert_eq!(other.gradient(&trace, 0).unwrap_err(), Error::TraceFromAnotherModel);
        for method in [
            Method::Lrp(&rules),
            Method::Occlusion,
            Method::IntegratedGradients { steps: 3 },
        ] {
            assert_eq!(
                other.attribute(&trace, 1, method).unwrap_err(),
                Error::TraceFromAnotherModel
            );
        }
    }
    assert!(gru
        .lrp(&trace, 0, &rules)
        .unwrap_err()
        .to_string()
        .contains("trace was made by another model"));
    // A copy computes the same function: its traces are interchangeable.
    let copy = lstm.clone();
    let from_copy = copy.lrp(&trace, 1, &rules).unwrap();
    assert_eq!(from_copy, lstm.lrp(&lstm.forward(x).unwrap(), 1, &rules).unwrap());
}

#[test]
fn class_and_position_out_of_range_are_errors_that_read_right() {
    let dir = load_model::<f64>(fixture("golden/models/bilstm-context")).unwrap();
    let trace = dir.model.forward(random_input(8, 3, 4, 1.0)).unwrap();
    let err = dir.model.gradient(&trace, 7).unwrap_err().to_string();
    assert_eq!(err, "target class 7 does not exist: the model has 5 classes (0 to 4)");

    let board = Relevance::<f64>::zeros(3, 2);
    assert_eq!(board.position(2), Some(&[0.0, 0.0][..]));
    assert_eq!(board.position(3), None);
    let mut board = board;
    assert!(board.position_mut(usize::MAX).is_none());
    assert!(board.add_to_position(3, &[1.0, 1.0]).is_err());

    let vectors = fixture("golden/inputs/bilstm-context-1.npy");
    let run = lrp(&[
        "explain",
        "--model",
        path_str(&fixture("golden/models/bilstm-context")),
        "--vectors",
        path_str(&vectors),
        "--target",
        "7",
    ]);
    assert_one_line_error(&run, "target class 7 does not exist: the model has 5 classes (0 to 4)");
}

// Issue 24, item 7: the panics reachable through the public API, each now
// a one-line error with a structured variant.

/// The message of a library error: one line.
fn one_line(err: &Error) -> String {
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    text
}

#[test]
fn a_head_whose_bias_has_another_length_is_refused_when_built() {
    use lrp_models::Linear;
    use nalgebra::DVector;
    // Was: a panic in the first product (the fields were public).
    let err = Linear::<f64>::new(DMatrix::zeros(2, 3), Some(DVector::zeros(5))).unwrap_err();
    assert_eq!(
        err,
        Error::PartShape {
            part: "the bias of a linear layer of weight [2, 3]".into(),
            expected: vec![2],
            found: vec![5],
        }
    );
    assert_eq!(
        one_line(&err),
        "shape: the bias of a linear layer of weight [2, 3] is [5]; it must be [2]"
    );
    let head = Linear::new(
        DMatrix::from_row_slice(1, 2, &[1.0, 2.0]),
        Some(DVector::from_vec(vec![0.5])),
    )
    .unwrap();
    assert_eq!(head.weight().shape(), (1, 2));
    assert_eq!(head.bias().map(|b| b[0]), Some(0.5));
    assert_eq!(head.forward(&DVector::from_vec(vec![1.0, 1.0]))[0], 3.5);
}

#[test]
fn an_attention_of_another_width_is_refused_when_the_pooling_is_built() {
    use lrp_models::{Attention, AttentionPooling, Linear};
    use nalgebra::DVector;
    // Was: a panic in the first forward pass. The encoder writes 3 values
    // per position (one direction of 3); each attention reads 4.
    let general = Attention::<f64>::General {
        bilinear: DMatrix::zeros(4, 4),
    };
    let err = AttentionPooling::new(general, 3, 1, false).unwrap_err();
    assert_eq!(
        one_line(&err),
        "shape: the attention's bilinear weight (over 3 values per position) is [4, 4]; it must be [3, 3]"
    );
    let context = Attention::<f64>::Context {
        proj: Linear::new(DMatrix::zeros(2, 4), None).unwrap(),
        query: DVector::zeros(2),
    };
    assert_eq!(
        AttentionPooling::new(context, 3, 1, true).unwrap_err(),
        Error::PartShape {
            part: "the attention's projection (over 3 values per position)".into(),
            expected: vec![2, 3],
            found: vec![2, 4],
        }
    );
    // Parts that do not fit each other: a query of 5 for a score size of 2.
    let additive = Attention::<f64>::Additive {
        key: Linear::new(DMatrix::zeros(2, 6), None).unwrap(),
        query: DMatrix::zeros(2, 6),
        score: DVector::zeros(5),
    };
    assert_eq!(
        one_line(&AttentionPooling::new(additive, 3, 2, false).unwrap_err()),
        "shape: the attention's score (over 6 values per position) is [5]; it must be [2]"
    );
    assert!(AttentionPooling::new(Attention::<f64>::Dot, 3, 2, false).is_ok());
}

#[test]
fn a_transpose_of_too_few_values_is_an_error() {
    use lrp_models::Tensor;
    // Was: an index out of bounds.
    let err = Tensor::transpose_of(&[1.0, 2.0], 2, 3).unwrap_err();
    assert_eq!(
        err,
        Error::ValueCount {
            shape: vec![2, 3],
            found: 2
        }
    );
    assert_eq!(one_line(&err), "tensor: 2 values do not fill a matrix of shape [2, 3]");
    // Too many is as wrong; a shape whose size overflows is no panic either.
    assert!(Tensor::transpose_of(&[0.0; 7], 2, 3).is_err());
    assert!(Tensor::transpose_of(&[0.0; 7], usize::MAX, 2).is_err());
    assert_eq!(Tensor::transpose_of(&[1.0, 2.0], 1, 2).unwrap().shape, vec![2, 1]);
}

#[test]
fn the_probability_of_a_class_that_is_not_there_is_an_error() {
    use lrp_models::faithfulness::probability;
    // Was: an index out of bounds.
    let err = probability(&[], 0).unwrap_err();
    assert_eq!(err, Error::TargetOutOfRange { target: 0, classes: 0 });
    assert_eq!(
        one_line(&err),
        "target class 0 does not exist: the model has no classes"
    );
    assert_eq!(
        one_line(&probability(&[0.0, 1.0], 2).unwrap_err()),
        "target class 2 does not exist: the model has 2 classes (0 to 1)"
    );
    assert_eq!(probability(&[0.0, 0.0], 1), Ok(0.5));
}

#[test]
fn a_net_share_of_a_span_past_the_end_is_an_error() {
    use lrp_models::faithfulness::net_share;
    // Was: a slice index out of range.
    let err = net_share(&[1.0, 2.0], 1..4).unwrap_err();
    assert_eq!(
        err,
        Error::SpanOutOfRange {
            start: 1,
            end: 4,
            len: 2
        }
    );
    assert_eq!(
        one_line(&err),
        "span 1..4 is not within the sequence's 2 positions (0..2)"
    );
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 2..1;
    assert!(net_share(&[1.0, 2.0, 3.0], reversed).is_err());
    // Checked before the all-zero shortcut, which used to hide it.
    assert!(net_share(&[0.0, 0.0], 0..3).is_err());
    assert_eq!(net_share(&[1.0, -3.0], 0..1), Ok(0.25));
}
