use lrp_core::{Float, Relevance, Workspace};
use lrp_layers::{Composite, Site};
use nalgebra::{DMatrix, DVector};

use crate::attention::{Attention, AttentionTrace};
use crate::cell::{Cell, GruCell, LstmCell};
use crate::config::{AttentionKind, CellKind, HeadInput, Layout, ModelConfig};
use crate::encoder::{Encoder, EncoderTrace};
use crate::tensors::{check_against_manifest, Ordered, Tensors};
use crate::{Error, Linear};

/// A recurrent classifier: `[embedding] -> encoder -> [attention] -> head`,
/// the `RecurrentClassifier` of `tools/pytorch_models.py`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model<T: Float> {
    config: ModelConfig,
    /// A hash of the configuration and every weight, computed once at
    /// construction and stamped on every trace, so that a trace is only
    /// explained by the model that made it (or an identical copy: a clone
    /// computes the same function and shares it).
    fingerprint: u64,
    /// `[E, V]`: column `k` is the vector of token `k`.
    embedding: Option<DMatrix<T>>,
    encoder: Encoder<T>,
    attention: Option<Attention<T>>,
    head: Linear<T>,
}

/// Everything the forward pass computed that LRP and the gradient need.
///
/// Read-only: the backward passes trust every part of it, so its fields are
/// private, and it carries the fingerprint of the model that made it
/// ([`Model::lrp`] and the others refuse a trace of another model).
///
/// ## Shapes
/// - `input`: `[E, T]`, the input vectors (embedded tokens for an
///   embedding model); column `t` is position `t`
/// - `last`: `[D]`; `features`: what the head read, `[D]` or `[2D]`
/// - `scores`: `[C]`
#[derive(Debug, Clone)]
pub struct ForwardTrace<T: Float> {
    input: DMatrix<T>,
    encoder: EncoderTrace<T>,
    last: DVector<T>,
    attention: Option<AttentionTrace<T>>,
    features: DVector<T>,
    scores: DVector<T>,
    /// The fingerprint of the model that made the trace.
    model: u64,
}

impl<T: Float> ForwardTrace<T> {
    /// The input vectors `[E, T]`.
    pub fn input(&self) -> &DMatrix<T> {
        &self.input
    }

    /// The encoder's trace.
    pub fn encoder(&self) -> &EncoderTrace<T> {
        &self.encoder
    }

    /// The top layer's final state `[D]`.
    pub fn last(&self) -> &DVector<T> {
        &self.last
    }

    /// The attention pooling, when the head reads it.
    pub fn attention(&self) -> Option<&AttentionTrace<T>> {
        self.attention.as_ref()
    }

    /// The head's input, `[D]` or `[2D]`.
    pub fn features(&self) -> &DVector<T> {
        &self.features
    }

    /// The class scores `[C]`.
    pub fn scores(&self) -> &DVector<T> {
        &self.scores
    }

    /// Number of positions `T`.
    pub fn len(&self) -> usize {
        self.input.ncols()
    }

    /// Whether the sequence is empty (never, for a trace of [`Model::forward`]).
    pub fn is_empty(&self) -> bool {
        self.input.ncols() == 0
    }

    /// The predicted class: the index of the largest score (the first on ties).
    pub fn predicted(&self) -> usize {
        self.scores
            .iter()
            .enumerate()
            .fold(0, |best, (k, &v)| if v > self.scores[best] { k } else { best })
    }

    /// The attention weights `[T]`, when the model pools with attention.
    pub fn attention_weights(&self) -> Option<&[T]> {
        self.attention.as_ref().map(|a| a.weights().as_slice())
    }
}

/// An LRP explanation of one score.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation<T: Float> {
    /// The explained class.
    pub target: usize,
    /// Its score `s_target`, the relevance that was sent back.
    pub score: T,
    /// Relevance per position and input dimension, `[T, E]`.
    pub input_relevance: Relevance<T>,
    /// Relevance that reached the zero initial states `h_0`, `c_0`, all
    /// layers and directions summed.
    pub initial_state_relevance: T,
    /// Relevance dropped at a zero denominator (`eps = 0` and a zero output).
    pub unexplained_relevance: T,
}

impl<T: Float> Explanation<T> {
    /// Relevance per position, summed over input dimensions `[T]`.
    pub fn token_relevance(&self) -> Vec<T> {
        self.input_relevance.per_position()
    }
}

impl<T: Float> Model<T> {
    /// Builds a model from its configuration and its tensors, checking every
    /// tensor's presence, shape and finiteness. Tensors the architecture does
    /// not use are an error: they mean the config describes another model.
    pub fn from_config(config: ModelConfig, tensors: Tensors) -> Result<Self, Error> {
        // Every name, shape and value is checked before anything is built,
        // so a config that promises huge tensors allocates nothing.
        let manifest = tensor_manifest(&config)?;
        let fingerprint = fingerprint(&config, &tensors);
        let mut ordered = check_against_manifest(&manifest, tensors)?;
        let mut model = match config.layout {
            Layout::Pytorch => build_pytorch(config, &mut ordered),
            Layout::Reference => build_reference(config, &mut ordered),
        }?;
        model.fingerprint = fingerprint;
        Ok(model)
    }

    /// How many sequences of length `len` to run through
    /// [`Model::forward_batch`] at once when many variants of one input are
    /// needed (occlusion, integrated gradients, deletion curves): as many as
    /// keep their traces within about 64 MB of numbers, at most 64 and at
    /// least 1. Their memory then grows with `len`, not with `len²`.
    pub fn batch_size(&self, len: usize) -> usize {
        // A trace holds the input, and per layer and direction about 12
        // numbers per hidden unit and position (gates, pre-activations,
        // states); the attention adds a few per position.
        const BUDGET: usize = 8 << 20;
        let per_position = self.input_size() + self.encoder.num_layers() * self.encoder.output_width() * 12 + 16;
        (BUDGET / per_position.saturating_mul(len).max(1)).clamp(1, 64)
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Width `E` of the input vectors.
    pub fn input_size(&self) -> usize {
        self.encoder.input_size()
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.head.weight.nrows()
    }

    /// Whether the model reads token ids through an embedding.
    pub fn has_embedding(&self) -> bool {
        self.embedding.is_some()
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder<T> {
        &self.encoder
    }

    /// Looks token ids up in the embedding: `[E, T]`.
    pub fn embed(&self, ids: &[usize]) -> Result<DMatrix<T>, Error> {
        let table = self.embedding.as_ref().ok_or(Error::NoEmbedding)?;
        let mut x = DMatrix::zeros(table.nrows(), ids.len());
        for (position, &id) in ids.iter().enumerate() {
            if id >= table.ncols() {
                return Err(Error::TokenOutOfRange {
                    position,
                    id,
                    vocab_size: table.ncols(),
                });
            }
            x.set_column(position, &table.column(id));
        }
        Ok(x)
    }

    /// Runs the model on input vectors `x` `[E, T]` and keeps the trace.
    pub fn forward(&self, x: DMatrix<T>) -> Result<ForwardTrace<T>, Error> {
        let mut traces = self.forward_batch(vec![x]);
        traces.pop().expect("one trace per input")
    }

    /// Runs the model on many sequences, in input order. Sequences of equal
    /// length advance together through the encoder (one matrix product per
    /// step for the group instead of one matrix-vector product per
    /// sequence); each result is what [`Model::forward`] gives for that
    /// sequence alone, up to the rounding of the product. An invalid input
    /// fails alone.
    pub fn forward_batch(&self, xs: Vec<DMatrix<T>>) -> Vec<Result<ForwardTrace<T>, Error>> {
        let checked: Vec<Result<DMatrix<T>, Error>> = xs.into_iter().map(|x| self.check_input(x)).collect();
        // Group the valid inputs by length.
        let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = std::collections::BTreeMap::new();
        for (k, x) in checked.iter().enumerate() {
            if let Ok(x) = x {
                groups.entry(x.ncols()).or_default().push(k);
            }
        }
        let mut encoded: Vec<Option<EncoderTrace<T>>> = checked.iter().map(|_| None).collect();
        for members in groups.values() {
            let inputs: Vec<&DMatrix<T>> = members
                .iter()
                .map(|&k| checked[k].as_ref().expect("grouped inputs are valid"))
                .collect();
            for (&k, trace) in members.iter().zip(self.encoder.forward_batch(&inputs)) {
                encoded[k] = Some(trace);
            }
        }
        checked
            .into_iter()
            .zip(encoded)
            .map(|(x, encoder)| match (x, encoder) {
                (Ok(x), Some(encoder)) => self.finish_forward(x, encoder),
                (Err(e), _) => Err(e),
                (Ok(_), None) => unreachable!("every valid input was encoded"),
            })
            .collect()
    }

    /// Checks an input's width, length and values.
    fn check_input(&self, x: DMatrix<T>) -> Result<DMatrix<T>, Error> {
        if x.nrows() != self.input_size() {
            return Err(Error::InputWidth {
                expected: self.input_size(),
                found: x.nrows(),
            });
        }
        if x.ncols() == 0 {
            return Err(Error::EmptySequence);
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            let e = x.nrows();
            return Err(Error::NonFiniteInput {
                position: index / e,
                dimension: index % e,
                value: x[index].as_f64(),
            });
        }
        Ok(x)
    }

    /// Attention and head on top of an encoded sequence.
    fn finish_forward(&self, x: DMatrix<T>, encoder: EncoderTrace<T>) -> Result<ForwardTrace<T>, Error> {
        if !encoder.is_finite() {
            return Err(Error::NonFiniteResult { pass: "forward pass" });
        }
        let last = self.encoder.last(&encoder);
        let input_kind = self.config.head.input;
        let attention = match (&self.attention, input_kind) {
            (Some(att), HeadInput::Context | HeadInput::ContextLast) => Some(att.forward(encoder.top(), &last)),
            _ => None,
        };
        let features = match (&attention, input_kind) {
            (Some(att), HeadInput::Context) => att.context().clone(),
            (Some(att), HeadInput::ContextLast) => {
                let d = last.len();
                let mut f = DVector::zeros(2 * d);
                f.rows_mut(0, d).copy_from(att.context());
                f.rows_mut(d, d).copy_from(&last);
                f
            }
            _ => last.clone(),
        };
        let scores = self.head.forward(&features);
        if let Some(v) = scores.iter().find(|v| !v.is_finite()) {
            return Err(Error::NonFiniteScore { value: v.as_f64() });
        }
        Ok(ForwardTrace {
            input: x,
            encoder,
            last,
            attention,
            features,
            scores,
            model: self.fingerprint,
        })
    }

    /// The score of `target`, after checking that it exists.
    pub(crate) fn checked_score(&self, trace: &ForwardTrace<T>, target: usize) -> Result<T, Error> {
        self.check(trace, target)?;
        Ok(trace.scores[target])
    }

    fn check(&self, trace: &ForwardTrace<T>, target: usize) -> Result<(), Error> {
        if target >= self.num_classes() {
            return Err(Error::TargetOutOfRange {
                target,
                classes: self.num_classes(),
            });
        }
        if trace.model != self.fingerprint {
            return Err(Error::TraceFromAnotherModel);
        }
        Ok(())
    }

    /// Splits the features' message `[W]` into the context's part and the
    /// final state's part (either may be empty).
    fn split_features<'a>(&self, message: &'a [T]) -> (&'a [T], &'a [T]) {
        let d = self.encoder.output_width();
        match self.config.head.input {
            HeadInput::Last => (&message[..0], message),
            HeadInput::Context => (message, &message[..0]),
            HeadInput::ContextLast => message.split_at(d),
        }
    }

    /// LRP for the score of `target` (`docs/rules.md`): `R = s_target` on the
    /// target unit, back through the head, the attention pooling and the
    /// final state into the top layer's board, and down the encoder.
    pub fn lrp(
        &self,
        trace: &ForwardTrace<T>,
        target: usize,
        composite: &Composite<T>,
    ) -> Result<Explanation<T>, Error> {
        self.check(trace, target)?;
        let mut workspace = Workspace::new();
        let score = trace.scores[target];
        let mut r_scores = vec![T::zero(); self.num_classes()];
        r_scores[target] = score;

        let mut r_features = vec![T::zero(); trace.features.len()];
        let mut unexplained = self.head.redistribute(
            composite.rule_at(&Site::head()),
            trace.features.as_slice(),
            trace.scores.as_slice(),
            &r_scores,
            &mut r_features,
            &mut workspace,
        );
        if !(unexplained.is_finite() && r_features.iter().all(|v| v.is_finite())) {
            return Err(Error::NonFiniteRelevance {
                method: "lrp",
                stage: "the head".into(),
                rules: composite.rule_at(&Site::head()).name().to_string(),
                position: None,
            });
        }

        let top = trace.encoder.top();
        let mut r_top = Relevance::zeros(top.ncols(), top.nrows());
        let (r_context, r_last) = self.split_features(&r_features);
        if let Some(att) = &trace.attention {
            unexplained += Attention::redistribute(
                composite.rule_at(&Site::attention()),
                att,
                top,
                r_context,
                r_top.as_mut_slice(),
                &mut workspace,
            );
        }
        if !r_last.is_empty() {
            self.encoder.add_to_last(r_top.as_mut_slice(), r_last);
        }
        if let Some(position) = r_top
            .first_non_finite_position()
            .or((!unexplained.is_finite()).then_some(0))
        {
            return Err(Error::NonFiniteRelevance {
                method: "lrp",
                stage: "the attention pooling".into(),
                rules: composite.rule_at(&Site::attention()).name().to_string(),
                position: Some(position),
            });
        }

        let (input_relevance, initial, encoder_unexplained) =
            self.encoder
                .lrp(&trace.encoder, &trace.input, r_top, composite, &mut workspace)?;
        Ok(Explanation {
            target,
            score,
            input_relevance,
            initial_state_relevance: initial,
            unexplained_relevance: unexplained + encoder_unexplained,
        })
    }

    /// The gradient `d s_target / d x` `[E, T]` (the true gradient, through
    /// the attention's softmax and score function too).
    pub fn gradient(&self, trace: &ForwardTrace<T>, target: usize) -> Result<DMatrix<T>, Error> {
        self.check(trace, target)?;
        let d_features: DVector<T> = self.head.weight.row(target).transpose();
        let (d_context, d_last_head) = self.split_features(d_features.as_slice());
        let top = trace.encoder.top();
        let mut d_top = DMatrix::zeros(top.nrows(), top.ncols());
        let mut d_last = DVector::zeros(self.encoder.output_width());
        if !d_last_head.is_empty() {
            d_last.copy_from_slice(d_last_head);
        }
        if let (Some(att), Some(att_trace)) = (&self.attention, &trace.attention) {
            let d_context = DVector::from_column_slice(d_context);
            att.gradient(att_trace, top, &trace.last, &d_context, &mut d_top, &mut d_last);
        }
        self.encoder.add_to_last(d_top.as_mut_slice(), d_last.as_slice());
        let gradient = self.encoder.gradient(&trace.encoder, &trace.input, d_top);
        if !gradient.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteResult { pass: "gradient" });
        }
        Ok(gradient)
    }
}

/// Every tensor a configuration needs, with its shape, in the order the
/// model is built from them: what an exporter must write, and what a
/// random initialisation (tests, benchmarks) must fill. The one place that
/// names tensors.
pub fn tensor_manifest(config: &ModelConfig) -> Result<Vec<(String, Vec<usize>)>, Error> {
    config.validate()?;
    let enc = &config.encoder;
    let (e, h, c) = (enc.input_size, enc.hidden_size, config.head.num_classes);
    let mut names: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| names.push((name, shape.to_vec()));
    if config.layout == Layout::Reference {
        for side in ["Left", "Right"] {
            add(format!("Wxh_{side}"), &[4 * h, e]);
            add(format!("Whh_{side}"), &[4 * h, h]);
            add(format!("bxh_{side}"), &[4 * h]);
            add(format!("bhh_{side}"), &[4 * h]);
            add(format!("Why_{side}"), &[c, h]);
        }
        return Ok(names);
    }
    let d = config.output_width();
    let gates = gate_count(enc.cell);
    if config.embedding {
        add("embedding.weight".into(), &[config.vocab_size.unwrap_or(0), e]);
    }
    for k in 0..enc.num_layers {
        let width = if k == 0 { e } else { d };
        for suffix in ["", "_reverse"].into_iter().take(if enc.bidirectional { 2 } else { 1 }) {
            add(format!("encoder.weight_ih_l{k}{suffix}"), &[gates * h, width]);
            add(format!("encoder.weight_hh_l{k}{suffix}"), &[gates * h, h]);
            add(format!("encoder.bias_ih_l{k}{suffix}"), &[gates * h]);
            add(format!("encoder.bias_hh_l{k}{suffix}"), &[gates * h]);
        }
    }
    if let Some(att) = &config.attention {
        let a = att.size.unwrap_or(0);
        match att.kind {
            AttentionKind::Context => {
                add("attention.proj.weight".into(), &[a, d]);
                add("attention.proj.bias".into(), &[a]);
                add("attention.query".into(), &[a]);
            }
            AttentionKind::Additive => {
                add("attention.key.weight".into(), &[a, d]);
                add("attention.key.bias".into(), &[a]);
                add("attention.query.weight".into(), &[a, d]);
                add("attention.score.weight".into(), &[1, a]);
            }
            AttentionKind::Dot => {}
            AttentionKind::General => add("attention.bilinear.weight".into(), &[d, d]),
        }
    }
    let width = match config.head.input {
        HeadInput::Last | HeadInput::Context => d,
        HeadInput::ContextLast => 2 * d,
    };
    add("head.weight".into(), &[c, width]);
    if config.head.bias {
        add("head.bias".into(), &[c]);
    }
    Ok(names)
}

fn gate_count(cell: CellKind) -> usize {
    match cell {
        CellKind::Lstm => 4,
        CellKind::Gru => 3,
    }
}

/// Builds a model of the `pytorch` layout from its tensors in manifest order.
fn build_pytorch<T: Float>(config: ModelConfig, tensors: &mut Ordered) -> Result<Model<T>, Error> {
    let enc = &config.encoder;
    let dirs = if enc.bidirectional { 2 } else { 1 };
    // Stored [V, E]; kept transposed so a token's vector is a column.
    let embedding = if config.embedding {
        Some(tensors.matrix::<T>()?.transpose())
    } else {
        None
    };
    let mut layers = Vec::with_capacity(enc.num_layers);
    for _ in 0..enc.num_layers {
        let mut layer = Vec::with_capacity(dirs);
        for _ in 0..dirs {
            let (w_ih, w_hh) = (tensors.matrix()?, tensors.matrix()?);
            let (b_ih, b_hh): (DVector<T>, DVector<T>) = (tensors.vector()?, tensors.vector()?);
            layer.push(match enc.cell {
                CellKind::Lstm => Cell::Lstm(LstmCell {
                    w_ih,
                    w_hh,
                    bias: b_ih + b_hh,
                }),
                CellKind::Gru => Cell::Gru(GruCell { w_ih, w_hh, b_ih, b_hh }),
            });
        }
        layers.push(layer);
    }
    let attention = match &config.attention {
        None => None,
        Some(att) => Some(match att.kind {
            AttentionKind::Context => Attention::Context {
                proj: Linear {
                    weight: tensors.matrix()?,
                    bias: Some(tensors.vector()?),
                },
                query: tensors.vector()?,
            },
            AttentionKind::Additive => Attention::Additive {
                key: Linear {
                    weight: tensors.matrix()?,
                    bias: Some(tensors.vector()?),
                },
                query: tensors.matrix()?,
                // Stored [1, A]: read row-major, that is the vector itself.
                score: tensors.vector()?,
            },
            AttentionKind::Dot => Attention::Dot,
            AttentionKind::General => Attention::General {
                bilinear: tensors.matrix()?,
            },
        }),
    };
    let head = Linear {
        weight: tensors.matrix()?,
        bias: if config.head.bias {
            Some(tensors.vector()?)
        } else {
            None
        },
    };
    Ok(Model {
        fingerprint: 0,
        encoder: Encoder {
            layers,
            input_size: enc.input_size,
        },
        config,
        embedding,
        attention,
        head,
    })
}

/// The numpy release of Arras et al. 2017: gate rows i, g, f, o, `Left`
/// reading forwards and `Right` reading the reversed sequence, and a
/// bias-free head split in two halves.
fn build_reference<T: Float>(config: ModelConfig, tensors: &mut Ordered) -> Result<Model<T>, Error> {
    let (h, c) = (config.encoder.hidden_size, config.head.num_classes);
    // Reference block k goes to PyTorch block TO_PYTORCH[k]: i, g, f, o -> i, f, g, o.
    const TO_PYTORCH: [usize; 4] = [0, 2, 1, 3];
    let reorder = |m: DMatrix<T>| {
        let mut out = DMatrix::zeros(m.nrows(), m.ncols());
        for (k, &to) in TO_PYTORCH.iter().enumerate() {
            out.rows_mut(to * h, h).copy_from(&m.rows(k * h, h));
        }
        out
    };
    let mut layer = Vec::with_capacity(2);
    let mut head = DMatrix::zeros(c, 2 * h);
    for dir in 0..2 {
        let w_ih = reorder(tensors.matrix()?);
        let w_hh = reorder(tensors.matrix()?);
        let (b_ih, b_hh): (DVector<T>, DVector<T>) = (tensors.vector()?, tensors.vector()?);
        let bias = reorder(DMatrix::from_column_slice(4 * h, 1, (b_ih + b_hh).as_slice()));
        layer.push(Cell::Lstm(LstmCell {
            w_ih,
            w_hh,
            bias: bias.column(0).into_owned(),
        }));
        head.columns_mut(dir * h, h).copy_from(&tensors.matrix::<T>()?);
    }
    let input_size = config.encoder.input_size;
    Ok(Model {
        fingerprint: 0,
        encoder: Encoder {
            layers: vec![layer],
            input_size,
        },
        config,
        embedding: None,
        attention: None,
        head: Linear {
            weight: head,
            bias: None,
        },
    })
}

/// A 64-bit hash of a configuration and its tensors (names, shapes and
/// every value's bits), so that traces can name the model that made them.
/// Not cryptographic: it tells models apart, it does not resist forgery.
fn fingerprint(config: &ModelConfig, tensors: &Tensors) -> u64 {
    let mut hash = Fingerprint(0x6c72_705f_6d6f_6465);
    hash.bytes(format!("{config:?}").as_bytes());
    for (name, tensor) in tensors.iter() {
        hash.bytes(name.as_bytes());
        for &d in &tensor.shape {
            hash.word(d as u64);
        }
        for v in &tensor.values {
            hash.word(v.to_bits());
        }
    }
    hash.0
}

/// A word-at-a-time multiplicative hash (the mixing step of SplitMix64).
struct Fingerprint(u64);

impl Fingerprint {
    fn word(&mut self, w: u64) {
        let mut z = (self.0 ^ w).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.word(u64::from_le_bytes(word));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttentionConfig, EncoderConfig, HeadConfig};
    use crate::faithfulness::SplitMix64;
    use crate::Tensor;

    fn config(kind: AttentionKind, head: HeadInput, cell: CellKind) -> ModelConfig {
        let sized = matches!(kind, AttentionKind::Context | AttentionKind::Additive);
        ModelConfig {
            format: "lrp-model".into(),
            version: 1,
            layout: Layout::Pytorch,
            weights: "model.safetensors".into(),
            embedding: false,
            vocab_size: None,
            vocab: None,
            unk_token: None,
            lowercase: false,
            encoder: EncoderConfig {
                cell,
                input_size: 6,
                hidden_size: 5,
                num_layers: 2,
                bidirectional: true,
            },
            attention: Some(AttentionConfig {
                kind,
                size: sized.then_some(4),
            }),
            head: HeadConfig {
                input: head,
                num_classes: 3,
                bias: true,
            },
            labels: None,
        }
    }

    /// A model whose values are seeded, with the attention's score
    /// parameters shifted by `shift`.
    fn model(config: &ModelConfig, shift: f64) -> Model<f64> {
        let mut rng = SplitMix64(11);
        let mut tensors = Tensors::new();
        for (name, shape) in tensor_manifest(config).unwrap() {
            let offset = if name.starts_with("attention.") { shift } else { 0.0 };
            let values = (0..shape.iter().product())
                .map(|_| rng.next_signed() * 0.5 + offset)
                .collect();
            tensors.insert(name, Tensor { shape, values });
        }
        Model::from_config(config.clone(), tensors).unwrap()
    }

    /// Attention pooling is a linear step with the attention weights as
    /// connection weights (`LRP_SPEC.md`): LRP reads the weights from the
    /// trace and never the score function's parameters, so a model that
    /// differs only there explains the same trace identically. (Only here,
    /// inside the crate, can a trace be handed to another model.)
    #[test]
    fn lrp_never_reads_the_attention_score_parameters() {
        for (kind, head, cell) in [
            (AttentionKind::Context, HeadInput::Context, CellKind::Lstm),
            (AttentionKind::Additive, HeadInput::ContextLast, CellKind::Lstm),
            (AttentionKind::General, HeadInput::Context, CellKind::Gru),
        ] {
            let config = config(kind, head, cell);
            let (a, b) = (model(&config, 0.0), model(&config, 0.7));
            assert_ne!(a.fingerprint, b.fingerprint);
            let x = DMatrix::from_fn(6, 9, |e, t| ((e * 7 + t * 3) % 11) as f64 / 11.0 - 0.5);
            let trace = a.forward(x).unwrap();
            let rules = Composite::epsilon(0.001, 0.0).unwrap();
            let from_a = a.lrp(&trace, 1, &rules).unwrap();
            let mut restamped = trace.clone();
            restamped.model = b.fingerprint;
            assert_eq!(from_a, b.lrp(&restamped, 1, &rules).unwrap(), "{kind:?}/{head:?}");
            assert_eq!(b.lrp(&trace, 1, &rules).unwrap_err(), Error::TraceFromAnotherModel);
        }
    }
}
