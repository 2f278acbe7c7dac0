//! The LRP path itself: a random small model (cell, directions, layers,
//! attention kind, head input and sizes from the bytes), a random input
//! and a random rule set (any linear rule, gate rule, eps, bias factor,
//! gamma, alpha), through `forward` and `attribute` with every method.
//! Never a panic; every result finite, or a clean error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lrp_core::Float;
use lrp_layers::{gate_rule, Composite, RuleParameters, GATE_RULES, LINEAR_RULES, PRESETS};
use lrp_models::{Method, Model, Tensor, Tensors};
use nalgebra::DMatrix;

/// Reads the fuzz bytes as a stream of small choices and numbers.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        first
    }

    /// A choice among `n` (0 when the bytes are used up).
    fn pick(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n
    }

    /// A number of any magnitude: mostly moderate, sometimes tiny
    /// (subnormal), huge, zero or negative, the cases that break rules.
    fn number(&mut self) -> f64 {
        let mantissa = f64::from(self.byte()) / 128.0 - 1.0;
        match self.byte() % 16 {
            0 => 0.0,
            1 => mantissa * 1e-310,
            2 => mantissa * 1e-30,
            3 => mantissa * 1e30,
            4 => mantissa * 1e300,
            5 => mantissa * 3e38,
            _ => mantissa * 2.0,
        }
    }

    /// A rule parameter: a moderate value, or an extreme one.
    fn parameter(&mut self) -> f64 {
        match self.byte() % 8 {
            0 => self.number().abs(),
            1 => 0.0,
            2 => 1.0,
            _ => f64::from(self.byte()) / 64.0,
        }
    }
}

fn config(bytes: &mut Bytes<'_>) -> serde_json::Value {
    let cell = ["lstm", "gru"][bytes.pick(2)];
    let bidirectional = bytes.pick(2) == 1;
    let layers = 1 + bytes.pick(2);
    let (input, hidden) = (1 + bytes.pick(4), 1 + bytes.pick(4));
    let attention = match bytes.pick(5) {
        0 => serde_json::Value::Null,
        1 => serde_json::json!({"kind": "context", "size": 1 + bytes.pick(3)}),
        2 => serde_json::json!({"kind": "additive", "size": 1 + bytes.pick(3)}),
        3 => serde_json::json!({"kind": "dot"}),
        _ => serde_json::json!({"kind": "general"}),
    };
    let head = if attention.is_null() {
        "last"
    } else {
        ["last", "context", "context+last"][bytes.pick(3)]
    };
    serde_json::json!({
        "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
        "encoder": {"cell": cell, "input_size": input, "hidden_size": hidden,
                    "num_layers": layers, "bidirectional": bidirectional},
        "attention": attention,
        "head": {"input": head, "num_classes": 1 + bytes.pick(3), "bias": bytes.pick(2) == 1},
    })
}

/// A rule set by name: a preset or one linear rule everywhere, a gate
/// rule, and their parameters.
struct RuleChoice {
    preset: Option<&'static str>,
    linear: &'static str,
    gate: &'static str,
    parameters: RuleParameters,
}

impl RuleChoice {
    fn read(bytes: &mut Bytes<'_>) -> Self {
        let parameters = RuleParameters {
            eps: bytes.parameter(),
            bias_factor: bytes.parameter(),
            gamma: bytes.parameter(),
            alpha: 1.0 + bytes.parameter(),
            prop_eps: bytes.parameter(),
        };
        let preset = (bytes.pick(2) == 0).then(|| PRESETS[bytes.pick(PRESETS.len())]);
        Self {
            preset,
            linear: LINEAR_RULES[bytes.pick(LINEAR_RULES.len())],
            gate: GATE_RULES[bytes.pick(GATE_RULES.len())],
            parameters,
        }
    }

    /// The composite, or `None` when a rule refuses a parameter (a clean
    /// error: nothing to explain).
    fn build<T: Float>(&self) -> Option<Composite<T>> {
        let composite = match self.preset {
            Some(name) => Composite::preset(name, &self.parameters),
            None => Composite::with_every_rule(self.linear, &self.parameters),
        };
        Some(composite.ok()?.with_boxed_gate_rule(gate_rule::<T>(self.gate, &self.parameters).ok()?))
    }
}

/// Every method on one trace: an error, or finite numbers of the right length.
fn check_every_method<T: Float>(model: &Model<T>, x: DMatrix<T>, target: usize, steps: usize, choice: &RuleChoice) {
    let len = x.ncols();
    let Some(rules) = choice.build::<T>() else { return };
    let Ok(trace) = model.forward(x) else { return };
    for method in [
        Method::Lrp(&rules),
        Method::Sensitivity,
        Method::GradientTimesInput,
        Method::Occlusion,
        Method::IntegratedGradients { steps },
    ] {
        if let Ok(found) = model.attribute(&trace, target, method) {
            let all = found
                .per_position
                .iter()
                .chain(found.per_dimension.iter().flat_map(|m| m.iter()))
                .chain(found.initial_state_relevance.iter())
                .chain(found.unexplained_relevance.iter());
            for v in all {
                assert!(v.is_finite(), "{}: non-finite relevance {v}", method.name());
            }
            assert_eq!(found.per_position.len(), len);
        }
    }
    if let Ok(explained) = model.lrp(&trace, target, &rules) {
        assert!(explained.input_relevance.as_slice().iter().all(|v| v.is_finite()));
        assert!(explained.initial_state_relevance.is_finite() && explained.unexplained_relevance.is_finite());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let config: lrp_models::ModelConfig =
        serde_json::from_value(config(&mut bytes)).expect("the fuzz configs are well-formed");
    // Weights are moderate (the loader only takes finite ones; size is what
    // the rules see through the input).
    let scale = [0.1, 1.0, 10.0][bytes.pick(3)];
    let mut tensors = Tensors::new();
    for (name, shape) in lrp_models::tensor_manifest(&config).expect("the fuzz configs are valid") {
        let values = (0..shape.iter().product())
            .map(|_| (f64::from(bytes.byte()) / 128.0 - 1.0) * scale)
            .collect();
        tensors.insert(name, Tensor { shape, values });
    }
    let model = Model::<f64>::from_config(config.clone(), tensors.clone()).expect("tensors follow the manifest");
    let len = 1 + bytes.pick(6);
    let x = DMatrix::from_fn(model.input_size(), len, |_, _| bytes.number());
    let choice = RuleChoice::read(&mut bytes);
    let target = bytes.pick(model.num_classes() + 1);
    let steps = bytes.pick(4);
    check_every_method(&model, x.clone(), target, steps, &choice);
    // f32: the same model and input, where overflow comes sooner.
    let model = Model::<f32>::from_config(config, tensors).expect("tensors follow the manifest");
    check_every_method(&model, x.map(|v| v as f32), target, steps, &choice);
});
