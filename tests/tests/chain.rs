//! Models built in code as an open chain of stages (`Model::builder`),
//! with only the public API:
//!
//! - a per-position affine projection written here (`Affine`) in front of
//!   a built-in encoder conserves relevance, has the gradient of central
//!   differences, and leaves the encoder's site names as they were;
//! - the model a config loads equals the same stages built in code bit for
//!   bit, and an encoder split into single-layer stages numbers its
//!   layers as one;
//! - stages whose ports do not fit are refused when the model is built,
//!   and a stage that writes another shape than its port says is an error
//!   naming it when it runs.

use lrp_layers::{Composite, Operation, RuleParameters, Site};
use lrp_models::{
    Backward, Encoder, Error, FinalState, ForwardTrace, Linear, LstmCell, Model, Packing, Port, RecurrentLayer, Stage,
    Tensor,
};
use lrp_tests::{architecture, model_from, random_input, random_tensors, SplitMix};
use nalgebra::{DMatrix, DVector};

/// `y_t = W x_t + b` at every position, `[E, N] -> [F, N]`, explained by
/// the rule the composite puts at its own site.
#[derive(Debug)]
struct Affine {
    linear: Linear<f64>,
}

impl Affine {
    /// Weights and bias uniform in `[-0.5, 0.5)`.
    fn random(inputs: usize, outputs: usize, seed: u64) -> Self {
        let mut rng = SplitMix(seed);
        let weight = DMatrix::from_fn(outputs, inputs, |_, _| rng.next_signed() * 0.5);
        let bias = DVector::from_fn(outputs, |_, _| rng.next_signed() * 0.5);
        Self {
            linear: Linear::new(weight, Some(bias)).expect("a bias per row"),
        }
    }

    fn site() -> Site {
        Site::new("affine", Operation::Projection("w"))
    }
}

impl Stage<f64> for Affine {
    type Trace = DMatrix<f64>;

    fn name(&self) -> String {
        "the affine projection".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.linear.weight().ncols())
    }

    fn output(&self) -> Port {
        Port::positions(self.linear.weight().nrows())
    }

    fn forward(&self, _packing: &Packing, input: &DMatrix<f64>) -> DMatrix<f64> {
        let columns: Vec<DVector<f64>> = input
            .column_iter()
            .map(|x| self.linear.forward(&x.into_owned()))
            .collect();
        DMatrix::from_columns(&columns)
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<f64>) -> &'t DMatrix<f64> {
        trace
    }

    fn lrp(
        &self,
        trace: &DMatrix<f64>,
        input: &DMatrix<f64>,
        relevance_out: &DMatrix<f64>,
        relevance_in: &mut DMatrix<f64>,
        context: &mut Backward<'_, f64>,
    ) {
        let rule = context.rules.rule_at(&Self::site());
        for slot in context.explained() {
            for t in 0..context.packing.length(slot) {
                let col = context.packing.column(t, slot);
                context.leftovers.unexplained[slot] += self.linear.redistribute(
                    rule,
                    input.column(col).as_slice(),
                    trace.column(col).as_slice(),
                    relevance_out.column(col).as_slice(),
                    relevance_in.column_mut(col).as_mut_slice(),
                    &mut context.workspace,
                );
            }
        }
    }

    fn gradient(
        &self,
        _packing: &Packing,
        _trace: &DMatrix<f64>,
        _input: &DMatrix<f64>,
        grad_out: &DMatrix<f64>,
        grad_in: &mut DMatrix<f64>,
    ) {
        grad_in.gemm_tr(1.0, self.linear.weight(), grad_out, 1.0);
    }

    fn rule_names(&self, rules: &Composite<f64>) -> String {
        rules.rule_at(&Self::site()).name().to_string()
    }

    fn sites(&self) -> Vec<Site> {
        vec![Self::site()]
    }
}

/// A tensor of a model's by name.
fn tensor<'t>(tensors: &'t [(String, Tensor)], name: &str) -> &'t Tensor {
    &tensors
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} in the manifest"))
        .1
}

fn matrix(tensors: &[(String, Tensor)], name: &str) -> DMatrix<f64> {
    let t = tensor(tensors, name);
    DMatrix::from_row_slice(t.shape[0], t.shape[1], &t.values)
}

fn vector(tensors: &[(String, Tensor)], name: &str) -> DVector<f64> {
    DVector::from_vec(tensor(tensors, name).values.clone())
}

/// The head of a model from its tensors (`head.weight` `[C, F]`, `head.bias`).
fn head_of(tensors: &[(String, Tensor)]) -> Linear<f64> {
    Linear::new(matrix(tensors, "head.weight"), Some(vector(tensors, "head.bias"))).expect("a bias per class")
}

/// Layer `k` of a bidirectional PyTorch LSTM from its tensors, with the
/// public constructors only.
fn lstm_layer(tensors: &[(String, Tensor)], k: usize) -> RecurrentLayer<f64> {
    let cell = |suffix: &str| {
        let name = |what: &str| format!("encoder.{what}_l{k}{suffix}");
        LstmCell::new(
            matrix(tensors, &name("weight_ih")),
            matrix(tensors, &name("weight_hh")),
            vector(tensors, &name("bias_ih")) + vector(tensors, &name("bias_hh")),
        )
        .unwrap()
    };
    RecurrentLayer::bidirectional(cell(""), cell("_reverse")).unwrap()
}

/// Inputs of lengths 1 to 7 for a model reading `e` values per position.
fn inputs(e: usize) -> Vec<DMatrix<f64>> {
    [5, 1, 7, 3, 3]
        .iter()
        .enumerate()
        .map(|(k, &t)| random_input(e, t, k as u64 + 60, 1.0))
        .collect()
}

fn forward_all(model: &Model<f64>, xs: Vec<DMatrix<f64>>) -> Vec<ForwardTrace<f64>> {
    model.forward_batch(xs).into_iter().map(Result::unwrap).collect()
}

fn asked(traces: &[ForwardTrace<f64>], target: usize) -> Vec<(&ForwardTrace<f64>, usize)> {
    traces.iter().map(|t| (t, target)).collect()
}

/// A BiLSTM of two layers reading 5 values per position, pooled by its
/// final state into 3 classes, loaded from its config, and its tensors.
fn loaded() -> (Model<f64>, Vec<(String, Tensor)>) {
    let config = architecture("lstm", true, 2, 5, 3, None, "last", 3);
    let tensors = random_tensors(&config, 23, 0.6);
    (model_from(&config, tensors.clone()), tensors)
}

/// `loaded()` behind an affine projection from 4 values per position.
fn with_affine_in_front() -> (Model<f64>, Model<f64>) {
    let (loaded, tensors) = loaded();
    let model = Model::builder(4)
        .stage(Affine::random(4, 5, 3))
        .stage(loaded.encoder().unwrap().clone())
        .stage(FinalState::new(3, 2))
        .stage(head_of(&tensors))
        .build()
        .unwrap();
    (loaded, model)
}

#[test]
fn a_loaded_model_equals_the_same_stages_built_in_code_bit_for_bit() {
    let (loaded, tensors) = loaded();
    let built = Model::builder(5)
        .stage(Encoder::new(vec![lstm_layer(&tensors, 0), lstm_layer(&tensors, 1)]).unwrap())
        .stage(FinalState::new(3, 2))
        .stage(head_of(&tensors))
        .build()
        .unwrap();
    assert_eq!(built.sites(), loaded.sites());
    assert!(built.config().is_none() && loaded.config().is_some());
    assert_eq!(built.describe(), loaded.describe());
    let (want, got) = (forward_all(&loaded, inputs(5)), forward_all(&built, inputs(5)));
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.scores(), g.scores());
        assert_eq!(w.last(), g.last());
        assert_eq!(w.layer_outputs(), g.layer_outputs());
    }
    let composites = [
        Composite::epsilon(0.001, 0.0).unwrap(),
        Composite::with_every_rule("zplus", &RuleParameters::default()).unwrap(),
    ];
    for composite in &composites {
        for target in 0..3 {
            assert_eq!(
                loaded.lrp_batch(&asked(&want, target), composite),
                built.lrp_batch(&asked(&got, target), composite),
                "lrp, target {target}"
            );
        }
    }
    assert_eq!(
        loaded.gradient_batch(&asked(&want, 2)),
        built.gradient_batch(&asked(&got, 2))
    );
}

/// Site numbers count recurrent layers only: the two layers as stages of
/// their own are layers 0 and 1 (sites, and the rules LRP looks up there),
/// as in one encoder.
#[test]
fn recurrent_layers_as_stages_of_their_own_are_numbered_as_in_one_encoder() {
    let (loaded, tensors) = loaded();
    let split = Model::builder(5)
        .stage(lstm_layer(&tensors, 0))
        .stage(lstm_layer(&tensors, 1))
        .stage(FinalState::new(3, 2))
        .stage(head_of(&tensors))
        .build()
        .unwrap();
    assert_eq!(split.sites(), loaded.sites());
    assert_eq!(
        split.describe(),
        "5 values per position -> a lstm layer -> a lstm layer -> the final state -> the head -> 3 values per sequence"
    );
    // Layer 1 alone under zplus: a rule by layer number.
    let composite = Composite::epsilon(0.001, 0.0)
        .unwrap()
        .with_rules_checked("layer1=zplus", &RuleParameters::default(), &split.sites())
        .unwrap();
    let (want, got) = (forward_all(&loaded, inputs(5)), forward_all(&split, inputs(5)));
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w.scores(), g.scores());
        assert_eq!(w.layer_outputs(), g.layer_outputs());
        assert_eq!(w.last(), g.last());
    }
    assert_eq!(
        loaded.lrp_batch(&asked(&want, 1), &composite),
        split.lrp_batch(&asked(&got, 1), &composite)
    );
}

#[test]
fn a_stage_in_front_of_the_encoder_leaves_its_site_names_alone() {
    let (loaded, model) = with_affine_in_front();
    let sites = model.sites();
    assert_eq!(sites[0], Affine::site());
    assert_eq!(sites[1..], loaded.sites()[..]);
    assert_eq!(sites[1].to_string(), "encoder layer 0 forward projection i");
    assert!(model.config().is_none());
    assert_eq!(
        model.describe(),
        "4 values per position -> the affine projection -> the encoder -> the final state -> the head -> 3 values per sequence"
    );
    // A key of the encoder's layer 0 selects the LSTM, not the stage in front.
    let composite = Composite::<f64>::epsilon(0.001, 0.0)
        .unwrap()
        .with_rules_checked("layer0=zplus", &RuleParameters::default(), &sites)
        .unwrap();
    assert_eq!(composite.rule_at(&sites[1]).name(), "zplus");
    assert_eq!(composite.rule_at(&sites[0]).name(), "epsilon");
}

#[test]
fn a_stage_in_front_of_the_encoder_conserves_relevance() {
    let (_, model) = with_affine_in_front();
    let conserving = Composite::epsilon(0.0, 1.0).unwrap();
    let traces = forward_all(&model, inputs(4));
    for target in 0..3 {
        for (trace, e) in traces.iter().zip(model.lrp_batch(&asked(&traces, target), &conserving)) {
            let e = e.unwrap();
            assert_eq!(e.score, trace.scores()[target]);
            assert_eq!(e.unexplained_relevance, 0.0);
            let total = e.input_relevance.total() + e.initial_state_relevance;
            assert!(
                (total - e.score).abs() <= 1e-12 * e.score.abs(),
                "target {target}: {total:e} vs score {:e}",
                e.score
            );
        }
    }
}

#[test]
fn a_stage_in_front_of_the_encoder_has_the_gradient_of_central_differences() {
    let (_, model) = with_affine_in_front();
    let x = random_input(4, 5, 3, 1.0);
    let trace = model.forward(x.clone()).unwrap();
    for target in 0..3 {
        let gradient = model.gradient(&trace, target).unwrap();
        let numerics = lrp_tests::central_differences(&model, &x, target, 1e-6);
        for k in 0..x.len() {
            let numeric = numerics[k];
            assert!(
                (numeric - gradient[k]).abs() <= 1e-8,
                "target {target}, entry {k}: {numeric} vs {}",
                gradient[k]
            );
        }
    }
}

#[test]
fn stages_whose_ports_do_not_fit_are_refused_when_the_model_is_built() {
    let (loaded, tensors) = loaded();
    let encoder = || loaded.encoder().unwrap().clone();
    let message = |e: Error| {
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    };
    // The encoder reads 5 values per position; the projection writes 6.
    let wide = Model::builder(4)
        .stage(Affine::random(4, 6, 3))
        .stage(encoder())
        .stage(FinalState::new(3, 2))
        .stage(head_of(&tensors))
        .build()
        .unwrap_err();
    assert_eq!(
        wide,
        Error::StagesDoNotFit {
            stage: 2,
            stages: 4,
            name: "the encoder".into(),
            problem: "reads 5 values per position; stage 1 (the affine projection) writes 6 values per position".into(),
        }
    );
    assert_eq!(
        message(wide),
        "model: stage 2 of 4 (the encoder) reads 5 values per position; stage 1 (the affine projection) writes 6 values per position"
    );
    // The model's input.
    let narrow = Model::builder(4).stage(encoder()).build().unwrap_err();
    assert_eq!(
        message(narrow),
        "model: stage 1 of 1 (the encoder) reads 5 values per position; the model's input is 4 values per position"
    );
    // A chain that ends in a pooling: its last stage is no head.
    let no_head = Model::builder(5)
        .stage(encoder())
        .stage(FinalState::new(3, 2))
        .build()
        .unwrap_err();
    assert_eq!(
        message(no_head),
        "model: stage 2 of 2 (the final state) reads 6 values per position and writes 6 values per sequence; the last stage is the head, which writes values per position as it reads them"
    );
    assert!(matches!(
        Model::<f64>::builder(5).build().unwrap_err(),
        Error::Config { .. }
    ));
}

/// A pooling that declares `[D, S]` but writes one row too few in the pass
/// `lies_in`, and keeps its word in the others.
#[derive(Debug)]
struct Liar {
    width: usize,
    lies_in: &'static str,
}

impl Liar {
    /// `[width (- 1 when lying), columns]`.
    fn matrix(&self, pass: &str, columns: usize) -> DMatrix<f64> {
        let lie = usize::from(pass == self.lies_in);
        DMatrix::from_element(self.width - lie, columns, 0.5)
    }
}

impl Stage<f64> for Liar {
    type Trace = DMatrix<f64>;

    fn name(&self) -> String {
        "the liar".into()
    }

    fn input(&self) -> Port {
        Port::positions(self.width)
    }

    fn output(&self) -> Port {
        Port::sequences(self.width)
    }

    fn forward(&self, packing: &Packing, _input: &DMatrix<f64>) -> DMatrix<f64> {
        self.matrix("forward pass", packing.sequences())
    }

    fn output_of<'t>(&self, trace: &'t DMatrix<f64>) -> &'t DMatrix<f64> {
        trace
    }

    fn lrp(
        &self,
        _: &DMatrix<f64>,
        input: &DMatrix<f64>,
        _: &DMatrix<f64>,
        relevance_in: &mut DMatrix<f64>,
        _: &mut Backward<'_, f64>,
    ) {
        *relevance_in = self.matrix("lrp", input.ncols());
    }

    fn gradient(
        &self,
        _: &Packing,
        _: &DMatrix<f64>,
        input: &DMatrix<f64>,
        _: &DMatrix<f64>,
        grad_in: &mut DMatrix<f64>,
    ) {
        *grad_in = self.matrix("gradient", input.ncols());
    }

    fn rule_names(&self, _rules: &Composite<f64>) -> String {
        "none".into()
    }
}

/// `loaded()` with its pooling replaced by a `Liar` lying in `pass`.
fn with_a_liar(pass: &'static str) -> Model<f64> {
    let (loaded, tensors) = loaded();
    loaded
        .with_pooling_and_head(
            Liar {
                width: 6,
                lies_in: pass,
            },
            head_of(&tensors),
        )
        .unwrap()
}

fn shape_error(pass: &'static str, rows: usize, columns: usize, expected_columns: usize) -> Error {
    Error::StageShape {
        stage: 2,
        stages: 3,
        name: "the liar".into(),
        pass,
        rows,
        columns,
        expected_rows: 6,
        expected_columns,
    }
}

#[test]
fn a_stage_whose_forward_output_differs_from_its_port_is_an_error_naming_it() {
    let model = with_a_liar("forward pass");
    let results = model.forward_batch(vec![random_input(5, 4, 1, 1.0), random_input(5, 2, 2, 1.0)]);
    for result in results {
        let e = result.unwrap_err();
        assert_eq!(e, shape_error("forward pass", 5, 2, 2));
        assert_eq!(
            e.to_string(),
            "model: stage 2 of 3 (the liar) wrote a 5x2 matrix in its forward pass; its ports promise 6x2"
        );
    }
}

#[test]
fn a_stage_whose_backward_message_differs_from_its_port_is_an_error_naming_it() {
    // Two sequences of 4 and 2 positions: 6 columns of input.
    let xs = || vec![random_input(5, 4, 1, 1.0), random_input(5, 2, 2, 1.0)];
    let rules = Composite::epsilon(0.001, 0.0).unwrap();
    for pass in ["lrp", "gradient"] {
        let model = with_a_liar(pass);
        let traces = forward_all(&model, xs());
        let results: Vec<Error> = if pass == "lrp" {
            model
                .lrp_batch(&asked(&traces, 0), &rules)
                .into_iter()
                .map(|r| r.unwrap_err())
                .collect()
        } else {
            model
                .gradient_batch(&asked(&traces, 0))
                .into_iter()
                .map(|r| r.unwrap_err())
                .collect()
        };
        assert_eq!(results, vec![shape_error(pass, 5, 6, 6); 2], "{pass}");
    }
}

/// A cell of another crate whose states have one row fewer than its
/// hidden size says: an LSTM underneath, lying in `hidden()`.
#[derive(Debug)]
struct ShortStates(LstmCell<f64>);

impl lrp_models::RecurrentCell<f64> for ShortStates {
    type Trace = (lrp_models::StepTrace<f64>, DMatrix<f64>);
    fn kind(&self) -> &str {
        "short"
    }
    fn input_size(&self) -> usize {
        lrp_models::RecurrentCell::input_size(&self.0)
    }
    fn hidden_size(&self) -> usize {
        lrp_models::RecurrentCell::hidden_size(&self.0)
    }
    fn forward(&self, packing: &Packing, input: &DMatrix<f64>) -> Self::Trace {
        let short = DMatrix::zeros(self.hidden_size() - 1, input.ncols());
        (lrp_models::RecurrentCell::forward(&self.0, packing, input), short)
    }
    fn hidden<'t>(&self, trace: &'t Self::Trace) -> &'t DMatrix<f64> {
        &trace.1
    }
    fn is_finite(&self, _: &Self::Trace) -> bool {
        true
    }
    #[allow(clippy::too_many_arguments)]
    fn lrp(
        &self,
        _: &Packing,
        _: &Self::Trace,
        _: &DMatrix<f64>,
        _: &DMatrix<f64>,
        _: &mut DMatrix<f64>,
        _: &lrp_layers::LayerRules<'_, f64>,
        _: &mut lrp_core::Workspace<f64>,
        _: &mut lrp_models::Leftovers<f64>,
    ) {
    }
    fn gradient(&self, _: &Packing, _: &Self::Trace, _: &DMatrix<f64>, _: &DMatrix<f64>, _: &mut DMatrix<f64>) {}
    fn operations(&self) -> Vec<Operation> {
        Vec::new()
    }
}

/// A cell whose `hidden()` disagrees with `hidden_size()` is a one-line
/// error naming its stage, not a panic, alone and under a layer above it.
#[test]
fn a_cell_whose_states_disagree_with_its_size_is_an_error_naming_its_stage() {
    let lstm = |e: usize, seed: usize| {
        let w = |r, c, k: usize| DMatrix::from_fn(r, c, |i, j| ((i * 3 + j + k) % 7) as f64 / 7.0 - 0.4);
        LstmCell::new(w(16, e, seed), w(16, 4, seed + 1), DVector::zeros(16)).unwrap()
    };
    let head = || Linear::new(DMatrix::from_element(2, 4, 0.1), None).unwrap();
    let alone = Model::<f64>::builder(3)
        .stage(RecurrentLayer::unidirectional(ShortStates(lstm(3, 0))))
        .stage(FinalState::new(4, 1))
        .stage(head())
        .build()
        .unwrap();
    let stacked = Encoder::new(vec![
        RecurrentLayer::unidirectional(ShortStates(lstm(3, 0))),
        RecurrentLayer::unidirectional(lstm(4, 2)),
    ])
    .unwrap();
    let stacked = Model::<f64>::builder(3)
        .stage(stacked)
        .stage(FinalState::new(4, 1))
        .stage(head())
        .build()
        .unwrap();
    for (model, stage) in [
        (alone, "stage 1 of 3 (a short layer)"),
        (stacked, "stage 1 of 3 (the encoder)"),
    ] {
        let error = model.forward(DMatrix::from_element(3, 5, 0.2)).unwrap_err();
        assert!(matches!(error, Error::StageShape { rows: 3, .. }), "{error:?}");
        let line = error.to_string();
        assert!(line.contains(stage), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
    }
}
