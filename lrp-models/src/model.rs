use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use lrp_core::{Float, Relevance};
use lrp_layers::{Composite, Site};
use nalgebra::{DMatrix, DVector};

use crate::attention::{Attention, AttentionTrace};
use crate::buffers;
use crate::cell::{GruCell, LstmCell, MinGruCell, MinLstmCell};
use crate::config::{CellKind, FrontLayer, HeadInput, Layout, ModelConfig};
use crate::conv::{Conv1d, MaxPool1d, Relu};
use crate::encoder::{Encoder, EncoderTrace, LayerTrace, RecurrentLayer};
use crate::packing::Packing;
use crate::pooling::{EachPosition, MaxPooling, MeanPooling, StepHead};
use crate::stage::{
    AnyStage, AttentionPooling, AttentionPoolingTrace, Backward, Embedding, FinalState, Per, Port, Stage,
};
use crate::tensors::{check_against_manifest, Ordered, Tensors};
use crate::{layouts, Cost, Error, Linear, Method};

/// A recurrent model: an open chain of stages (see [`Stage`]) over input
/// vectors, optionally behind an embedding of token ids. A model loaded
/// from a configuration ([`Model::from_config`]) is the
/// `RecurrentClassifier` of `tools/pytorch_models.py`, `[embedding] ->
/// encoder -> pooling -> head`; [`Model::builder`] assembles any chain in
/// code, and the loaders go through it too.
///
/// The encoder is an [`Encoder`] (or single [`RecurrentLayer`]s) of
/// [`crate::RecurrentCell`]s; a pooling ([`crate::FinalState`],
/// [`AttentionPooling`] or a stage of your own) turns positions into one
/// vector per sequence; the head (a [`Linear`] or a stage of your own)
/// turns that into the scores. Stages of your own may stand anywhere,
/// also in front of the encoder.
#[derive(Debug, Clone)]
pub struct Model<T: Float> {
    /// The configuration the model was loaded from; `None` for a model
    /// built or changed in code ([`Model::describe`] says what it is).
    config: Option<ModelConfig>,
    /// A hash of the configuration and every weight, computed once at
    /// construction and stamped on every trace, so that a trace is only
    /// explained by the model that made it (or an identical copy: a clone
    /// computes the same function and shares it).
    fingerprint: u64,
    embedding: Option<Embedding<T>>,
    /// Width `E` of the input vectors, what the first stage reads.
    input_size: usize,
    /// The chain, at least one stage, each reading what the one before it
    /// writes; the last one is the head.
    stages: Vec<Arc<dyn AnyStage<T>>>,
    /// Per stage, the model's number of its first recurrent layer: the
    /// recurrent layers of the stages in front of it.
    first_layers: Vec<usize>,
    /// The stage holding the top recurrent layer, when the chain has one,
    /// and where its final state is ([`ForwardTrace::last`]).
    top: Option<(usize, FinalState)>,
}

/// Two models are equal when they compute the same function by
/// construction: the same configuration and weights (their fingerprints
/// agree), or clones of one model.
impl<T: Float> PartialEq for Model<T> {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.config == other.config
    }
}

/// Builds a [`Model`] from a chain of stages, in order from the input to
/// the head ([`Model::builder`], [`Model::builder_with_embedding`]).
///
/// [`ModelBuilder::build`] checks that the stages fit: each reads the
/// [`Port`] the one before it writes (the first, the model's input
/// vectors, one column per position), every stage writes something, and
/// the last one, the head, writes per sequence or per position as it
/// reads (a per-step head). A stage that does not fit is refused with one
/// line naming its place and name ([`Error::StagesDoNotFit`]).
#[derive(Debug)]
pub struct ModelBuilder<T: Float> {
    embedding: Option<Embedding<T>>,
    input_size: usize,
    stages: Vec<Arc<dyn AnyStage<T>>>,
}

impl<T: Float> ModelBuilder<T> {
    /// The chain with `stage` added after the stages so far.
    pub fn stage(self, stage: impl Stage<T>) -> Self {
        self.shared(Arc::new(stage))
    }

    /// [`ModelBuilder::stage`] of a stage another model shares.
    fn shared(mut self, stage: Arc<dyn AnyStage<T>>) -> Self {
        self.stages.push(stage);
        self
    }

    /// The model, after checking that the stages fit. It is a model of its
    /// own: traces of another model, even one of the same stages, are
    /// refused by it. Its [`Model::config`] is `None`.
    pub fn build(self) -> Result<Model<T>, Error> {
        let stages = self.stages.len();
        let misfit = |k: usize, problem: String| Error::StagesDoNotFit {
            stage: k + 1,
            stages,
            name: self.stages[k].name(),
            problem,
        };
        if stages == 0 {
            return Err(Error::Config {
                key: "stages".into(),
                message: "a model needs at least one stage, its head".into(),
            });
        }
        let mut writes = Port::positions(self.input_size);
        for (k, stage) in self.stages.iter().enumerate() {
            let (input, output) = (stage.input(), stage.output());
            if input != writes {
                let before = match k {
                    0 => "the model's input is".to_string(),
                    _ => format!("stage {k} ({}) writes", self.stages[k - 1].name()),
                };
                return Err(misfit(k, format!("reads {input}; {before} {writes}")));
            }
            if output.width == 0 {
                return Err(misfit(k, "writes no values".into()));
            }
            writes = output;
        }
        let head = &self.stages[stages - 1];
        if head.input().per != head.output().per {
            return Err(misfit(
                stages - 1,
                format!(
                    "reads {} and writes {}; the last stage is the head, which writes values per {} as it reads them",
                    head.input(),
                    head.output(),
                    per_name(head.input().per)
                ),
            ));
        }
        let mut first_layers = Vec::with_capacity(stages);
        let mut layers = 0;
        let mut top = None;
        for (k, stage) in self.stages.iter().enumerate() {
            first_layers.push(layers);
            layers += stage.recurrent_layers();
            let any = stage.as_any();
            if let Some(encoder) = any.downcast_ref::<Encoder<T>>() {
                top = Some((k, encoder.final_state()));
            } else if let Some(layer) = any.downcast_ref::<RecurrentLayer<T>>() {
                top = Some((k, FinalState::new(layer.hidden_size(), layer.directions())));
            }
        }
        let model = Model {
            config: None,
            fingerprint: 0,
            embedding: self.embedding,
            input_size: self.input_size,
            stages: self.stages,
            first_layers,
            top,
        };
        Ok(model.assembled())
    }
}

/// `"sequence"` or `"position"`.
fn per_name(per: Per) -> &'static str {
    match per {
        Per::Sequence => "sequence",
        Per::Position => "position",
    }
}

/// The forward pass of a batch of sequences, packed (see [`Packing`]): each
/// stage's trace for all of them at once, and per sequence what the
/// accessors of [`ForwardTrace`] show.
#[derive(Debug)]
struct BatchTrace<T: Float> {
    /// How the input is packed.
    packing: Packing,
    /// How each stage's input is packed, and last the head's output:
    /// `packings[k + 1]` is `packings[k]` resized by stage `k`
    /// ([`Stage::output_length`]); all the same unless a stage changes
    /// lengths.
    packings: Vec<Packing>,
    /// `[E, N]`, packed.
    input: DMatrix<T>,
    /// Per stage, in the model's order.
    stages: Vec<Box<dyn Any + Send + Sync>>,
    /// Whether the head writes per position (a per-step head).
    per_step: bool,
    /// Per slot.
    sequences: Vec<SequenceTrace<T>>,
}

/// The packed input goes back to this thread's free list (see `buffers`).
impl<T: Float> Drop for BatchTrace<T> {
    fn drop(&mut self) {
        buffers::recycle_in_place(&mut self.input);
    }
}

/// What one sequence went in and came out as.
#[derive(Debug)]
struct SequenceTrace<T: Float> {
    /// The sequence's input vectors `[E, T]`.
    input: DMatrix<T>,
    /// The top recurrent layer's final state (empty without one).
    last: DVector<T>,
    /// What the head read, per output position (one for a head per
    /// sequence, `T` for a per-step head).
    features: Vec<DVector<T>>,
    /// The outputs, per output position.
    scores: Vec<DVector<T>>,
}

/// Everything the forward pass computed for one sequence that LRP and the
/// gradient need.
///
/// Read-only: the backward passes trust every part of it, so its fields are
/// private, and it carries the fingerprint of the model that made it
/// ([`Model::lrp`] and the others refuse a trace of another model). Traces
/// made together by [`Model::forward_batch`] share one packed batch;
/// [`Model::lrp_batch`] and [`Model::gradient_batch`] explain them together.
///
/// ## Shapes
/// - `input`: `[E, T]`, the input vectors (embedded tokens for an
///   embedding model); column `t` is position `t`
/// - `last`: `[D]` (empty for a model without recurrent layers);
///   `features`: what the head read, `[F]` (`D` or `2D` for the built-in
///   poolings)
/// - `scores`: `[C]`
///
/// For a model with a per-step head (`head.input` `"each"`) the trace
/// looks at one output position ([`ForwardTrace::position`], the last
/// unless [`ForwardTrace::at_position`] picks another): `features` and
/// `scores` are that position's, and explaining the trace explains that
/// position's output.
#[derive(Debug, Clone)]
pub struct ForwardTrace<T: Float> {
    batch: Arc<BatchTrace<T>>,
    slot: usize,
    /// The output position looked at (0 for a head per sequence).
    position: usize,
    /// The fingerprint of the model that made the trace.
    model: u64,
}

impl<T: Float> ForwardTrace<T> {
    fn sequence(&self) -> &SequenceTrace<T> {
        &self.batch.sequences[self.slot]
    }

    /// The input vectors `[E, T]`.
    pub fn input(&self) -> &DMatrix<T> {
        &self.sequence().input
    }

    /// The top recurrent layer's final state `[D]` (empty for a model
    /// without recurrent layers).
    pub fn last(&self) -> &DVector<T> {
        &self.sequence().last
    }

    /// The attention pooling, when the model pools with attention (the
    /// first [`AttentionPooling`] of its chain).
    pub fn attention(&self) -> Option<&AttentionTrace<T>> {
        self.batch
            .stages
            .iter()
            .find_map(|trace| trace.downcast_ref::<AttentionPoolingTrace<T>>())
            .map(|pooling| pooling.sequence(self.slot))
    }

    /// The head's input `[F]` (at the output position, for a per-step
    /// head).
    pub fn features(&self) -> &DVector<T> {
        &self.sequence().features[self.position]
    }

    /// The class scores (the outputs) `[C]`, at the output position for a
    /// per-step head.
    pub fn scores(&self) -> &DVector<T> {
        &self.sequence().scores[self.position]
    }

    /// The output position looked at, for a per-step head (`None` for a
    /// head that gives one output per sequence).
    pub fn position(&self) -> Option<usize> {
        self.batch.per_step.then_some(self.position)
    }

    /// Whether the model gives an output vector per position.
    pub fn is_per_step(&self) -> bool {
        self.batch.per_step
    }

    /// The outputs of every position `[C]` x `T`, for a per-step head (one
    /// vector for a head per sequence).
    pub fn outputs(&self) -> &[DVector<T>] {
        &self.sequence().scores
    }

    /// The same trace looking at output position `t` of a per-step head.
    /// [`Error::NotPerStep`] for a head per sequence,
    /// [`Error::PositionOutOfRange`] past the end.
    pub fn at_position(&self, t: usize) -> Result<Self, Error> {
        if !self.batch.per_step {
            return Err(Error::NotPerStep);
        }
        // The head's positions: the input's, unless a stage changed lengths.
        let outputs = self.outputs().len();
        if t >= outputs {
            return Err(Error::PositionOutOfRange {
                position: t,
                len: outputs,
            });
        }
        Ok(Self {
            position: t,
            ..self.clone()
        })
    }

    /// `other` (a trace of the same model, as long as this one) looking at
    /// this trace's output position.
    pub(crate) fn aligned(&self, other: ForwardTrace<T>) -> ForwardTrace<T> {
        if other.batch.per_step && self.position < other.outputs().len() {
            ForwardTrace {
                position: self.position,
                ..other
            }
        } else {
            other
        }
    }

    /// Every recurrent layer's outputs for this sequence (of the
    /// [`Encoder`]s and [`RecurrentLayer`]s of the chain), bottom first,
    /// each `[D, T]`.
    pub fn layer_outputs(&self) -> Vec<DMatrix<T>> {
        let mut outputs = Vec::new();
        for (k, trace) in self.batch.stages.iter().enumerate() {
            // A layer keeps its input's length: its input's packing is its output's.
            let packing = &self.batch.packings[k];
            if let Some(encoder) = trace.downcast_ref::<EncoderTrace<T>>() {
                outputs.extend(encoder.layer_outputs().map(|out| (packing, out)));
            } else if let Some(layer) = trace.downcast_ref::<LayerTrace<T>>() {
                outputs.push((packing, layer.output()));
            }
        }
        outputs
            .into_iter()
            .map(|(packing, out)| packing.gather(out, self.slot))
            .collect()
    }

    /// Number of positions `T`.
    pub fn len(&self) -> usize {
        self.batch.packing.length(self.slot)
    }

    /// Whether the sequence is empty (never, for a trace of [`Model::forward`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The predicted class: the index of the largest score (the first on
    /// ties). For a regression head, the largest output.
    pub fn predicted(&self) -> usize {
        let scores = self.scores();
        scores
            .iter()
            .enumerate()
            .fold(0, |best, (k, &v)| if v > scores[best] { k } else { best })
    }

    /// The attention weights `[T]`, when the model pools with attention.
    pub fn attention_weights(&self) -> Option<&[T]> {
        self.attention().map(|a| a.weights().as_slice())
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

/// One request of a backward pass: its index among the requests, and the
/// slot, target and output position it asks for.
type Member = (usize, (usize, usize, usize));

/// Numbers of trace a packed batch may hold before [`Model::forward_batch`]
/// starts another (about 64 MB of f64): memory stays bounded by this, not
/// by the number of sequences.
const BATCH_TRACE_BUDGET: usize = 8 << 20;

/// Fingerprints of models assembled from parts, which have no file to hash:
/// each assembly is a model of its own.
static ASSEMBLED: AtomicU64 = AtomicU64::new(1);

impl<T: Float> Model<T> {
    /// Builds a model from its configuration and its tensors, checking every
    /// tensor's presence, shape and finiteness. Tensors the architecture does
    /// not use are an error: they mean the config describes another model.
    /// The stages are assembled by [`Model::builder`], as a model built in
    /// code; [`Model::config`] is `config`. Each recurrent layer's weights
    /// are brought into the cells' own form by the built-in canonizers of
    /// the config ([`crate::canonize::builtin`]).
    pub fn from_config(config: ModelConfig, tensors: Tensors) -> Result<Self, Error> {
        Self::from_config_with_canonizers(config, tensors, Vec::new())
    }

    /// [`Model::from_config`] with canonizers of your own (see
    /// [`crate::canonize`]), applied to every direction of every recurrent
    /// layer after the built-in ones, on the cells' own form. A model
    /// loaded with canonizers of your own is a model of its own: traces of
    /// the plain model are not its traces.
    pub fn from_config_with_canonizers(
        config: ModelConfig,
        tensors: Tensors,
        extra: Vec<Box<dyn crate::canonize::Canonizer<T>>>,
    ) -> Result<Self, Error> {
        // Every name, shape and value is checked before anything is built,
        // so a config that promises huge tensors allocates nothing.
        let manifest = tensor_manifest(&config)?;
        let fingerprint = if extra.is_empty() {
            fingerprint(&config, &tensors)
        } else {
            ASSEMBLED.fetch_add(1, Ordering::Relaxed)
        };
        let mut canonizers = crate::canonize::builtin(&config);
        canonizers.extend(extra);
        let mut ordered = check_against_manifest(&manifest, tensors)?;
        let mut model = match config.layout {
            Layout::Reference => build_reference(&config, &mut ordered, &canonizers),
            _ => build_layered(&config, &mut ordered, &canonizers),
        }?;
        model.fingerprint = fingerprint;
        model.config = Some(config);
        Ok(model)
    }

    /// A chain of stages reading `input_size` values per position; add
    /// the stages with [`ModelBuilder::stage`], in order, and check and
    /// finish it with [`ModelBuilder::build`].
    ///
    /// ```
    /// use lrp_layers::{Composite, Site};
    /// use lrp_models::{Encoder, FinalState, Linear, LstmCell, Model, RecurrentLayer};
    /// use nalgebra::{DMatrix, DVector};
    ///
    /// // Two stacked LSTM layers of 3 units reading 2 values per position,
    /// // the final state, and a head of 2 classes.
    /// let weights = |rows, cols, seed: usize| {
    ///     DMatrix::from_fn(rows, cols, |i, j| ((i * 7 + j * 3 + seed) % 11) as f64 / 11.0 - 0.5)
    /// };
    /// let lstm = |input, seed| LstmCell::new(weights(12, input, seed), weights(12, 3, seed + 1), DVector::zeros(12));
    /// let encoder = Encoder::new(vec![
    ///     RecurrentLayer::unidirectional(lstm(2, 0)?),
    ///     RecurrentLayer::unidirectional(lstm(3, 5)?),
    /// ])?;
    /// let model = Model::<f64>::builder(2)
    ///     .stage(encoder)
    ///     .stage(FinalState::new(3, 1))
    ///     .stage(Linear::new(weights(2, 3, 9), None)?)
    ///     .build()?;
    /// assert_eq!(model.describe(), "2 values per position -> the encoder -> the final state -> the head -> 2 values per sequence");
    /// assert!(model.config().is_none());
    /// assert_eq!(model.sites()[0], Site::encoder(0, lrp_layers::Direction::Forward, lrp_layers::Operation::Projection("i")));
    ///
    /// let trace = model.forward(DMatrix::from_fn(2, 5, |i, t| (i as f64 - t as f64) / 4.0))?;
    /// let e = model.lrp(&trace, 1, &Composite::epsilon(0.0, 1.0)?)?; // bias factor 1 conserves
    /// let total = e.input_relevance.total() + e.initial_state_relevance + e.unexplained_relevance;
    /// assert!((total - trace.scores()[1]).abs() < 1e-12);
    ///
    /// // A chain whose ports do not fit is refused, naming the stage.
    /// let wrong = Model::<f64>::builder(2).stage(FinalState::new(3, 1)).build().unwrap_err();
    /// assert_eq!(
    ///     wrong.to_string(),
    ///     "model: stage 1 of 1 (the final state) reads 3 values per position; the model's input is 2 values per position"
    /// );
    /// # Ok::<(), lrp_models::Error>(())
    /// ```
    pub fn builder(input_size: usize) -> ModelBuilder<T> {
        ModelBuilder {
            embedding: None,
            input_size,
            stages: Vec::new(),
        }
    }

    /// A chain of stages behind `embedding`: the model reads token ids
    /// ([`Model::embed`]), and its first stage reads their vectors.
    pub fn builder_with_embedding(embedding: Embedding<T>) -> ModelBuilder<T> {
        ModelBuilder {
            input_size: embedding.width(),
            embedding: Some(embedding),
            stages: Vec::new(),
        }
    }

    /// This model with its encoder (its [`Encoder`] stage) replaced by
    /// `encoder` (layers of any [`crate::RecurrentCell`], such as a cell
    /// from another crate), keeping every other stage. The new encoder must
    /// read the width of the old one and write as many directions of as
    /// many units. The result is a model built in code
    /// ([`ModelBuilder::build`]): traces of either are refused by the
    /// other, and its [`Model::config`] is `None`.
    pub fn with_encoder(self, encoder: Encoder<T>) -> Result<Self, Error> {
        let shape = |e: &Encoder<T>| (e.input_size(), e.hidden_size(), e.directions());
        let Some((k, old)) = self
            .stages
            .iter()
            .enumerate()
            .find_map(|(k, stage)| Some((k, stage.as_any().downcast_ref::<Encoder<T>>()?)))
        else {
            return Err(Error::Config {
                key: "encoder".into(),
                message: "the model has no encoder to replace".into(),
            });
        };
        let (old, new) = (shape(old), shape(&encoder));
        if old != new {
            return Err(Error::Config {
                key: "encoder".into(),
                message: format!(
                    "the new encoder reads {} values per position and writes {} direction(s) of {}; the model needs {}, and {} of {}",
                    new.0, new.2, new.1, old.0, old.2, old.1
                ),
            });
        }
        let mut stages = self.stages.clone();
        stages[k] = Arc::new(encoder);
        self.rebuilt(stages)
    }

    /// This model with a pooling and a head of your own (any [`Stage`]),
    /// keeping the stages up to its top recurrent layer (the embedding
    /// and the encoder): `pooling` reads the encoder's outputs (`D` values
    /// per position) and writes per sequence (or per position, for a
    /// per-step head), `head` reads what `pooling` writes and writes one
    /// score per class, per sequence (or per position, when it reads
    /// positions). The result is a model built in code, as for
    /// [`Model::with_encoder`]; [`Model::num_classes`] is the new head's.
    pub fn with_pooling_and_head(self, pooling: impl Stage<T>, head: impl Stage<T>) -> Result<Self, Error> {
        let Some((top, _)) = self.top else {
            return Err(Error::Config {
                key: "stages".into(),
                message: "the model has no recurrent layer to pool".into(),
            });
        };
        let wanted = [
            ("pooling input", pooling.input(), self.stages[top].output()),
            ("head input", head.input(), pooling.output()),
        ];
        for (what, found, needed) in wanted {
            if found != needed {
                return Err(Error::Config {
                    key: "stages".into(),
                    message: format!("the {what} is {found}; it must be {needed}"),
                });
            }
        }
        let mut stages = self.stages[..=top].to_vec();
        stages.push(Arc::new(pooling));
        stages.push(Arc::new(head));
        self.rebuilt(stages)
    }

    /// A model of `stages` behind this model's input (and embedding).
    fn rebuilt(self, stages: Vec<Arc<dyn AnyStage<T>>>) -> Result<Self, Error> {
        let builder = ModelBuilder {
            embedding: self.embedding,
            input_size: self.input_size,
            stages: Vec::new(),
        };
        stages.into_iter().fold(builder, ModelBuilder::shared).build()
    }

    /// A fingerprint of its own for a model assembled from parts.
    fn assembled(mut self) -> Self {
        self.fingerprint = ASSEMBLED
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self
    }

    /// Every site at which this model asks a [`Composite`] for a rule, in
    /// the order of the chain (for the encoder: bottom layer, forward
    /// direction first), then the pooling's and the head's: what a
    /// `--rules` key can select. A recurrent layer's site has the model's
    /// number of the layer, which counts recurrent layers only (see
    /// [`Stage::recurrent_layers`]): a stage in front of the encoder does
    /// not rename its layers.
    /// [`lrp_layers::RuleSpec::check`] refuses entries that select none of
    /// them or that earlier entries leave nothing to.
    ///
    /// ```
    /// use lrp_layers::Site;
    /// use lrp_models::{Model, ModelConfig};
    ///
    /// let config: ModelConfig = serde_json::from_str(r#"{
    ///     "format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
    ///     "encoder": {"cell": "gru", "input_size": 2, "hidden_size": 3, "num_layers": 1, "bidirectional": false},
    ///     "attention": null, "head": {"input": "last", "num_classes": 2}}"#).unwrap();
    /// let mut tensors = lrp_models::Tensors::new();
    /// for (name, shape) in lrp_models::tensor_manifest(&config)? {
    ///     tensors.insert(name, lrp_models::Tensor { values: vec![0.1; shape.iter().product()], shape });
    /// }
    /// let model = Model::<f64>::from_config(config, tensors)?;
    /// let sites: Vec<String> = model.sites().iter().map(Site::to_string).collect();
    /// assert_eq!(sites.first().unwrap(), "encoder layer 0 forward projection z");
    /// assert_eq!(sites.last().unwrap(), "head");
    /// assert_eq!(sites.len(), 2 + 1 + 2 + 1); // z, n; the sum; 1-z, z; the head
    /// # Ok::<(), lrp_models::Error>(())
    /// ```
    pub fn sites(&self) -> Vec<Site> {
        let mut sites = Vec::new();
        for (stage, &first) in self.stages.iter().zip(&self.first_layers) {
            sites.extend(stage.sites().into_iter().map(|mut site| {
                if let Some(layer) = site.layer.as_mut() {
                    *layer += first;
                }
                site
            }));
        }
        sites
    }

    /// How many sequences of length `len` to run through
    /// [`Model::forward_batch`] at once when many variants of one input are
    /// needed (occlusion, integrated gradients, deletion curves): as many as
    /// keep their traces within about 64 MB of numbers, at most 64 and at
    /// least 1. Their memory then grows with `len`, not with `len²`.
    pub fn batch_size(&self, len: usize) -> usize {
        (BATCH_TRACE_BUDGET / self.trace_numbers_per_position().saturating_mul(len).max(1)).clamp(1, 64)
    }

    /// What explaining one input of `len` positions by `method` costs
    /// ([`Cost`]): its work ([`Method::work`]) and its memory, about
    /// `2 len n` numbers of `T` for a trace of `n` numbers per position
    /// (the trace, and the backward pass's buffers as large again), plus
    /// for occlusion and integrated gradients a batch of
    /// [`Model::batch_size`] variants and their backward passes.
    pub fn cost(&self, method: Method<'_, T>, len: usize) -> Cost {
        let trace = (self.trace_numbers_per_position() as u64).saturating_mul(len as u64);
        let variants = if method.runs_variants() {
            trace.saturating_mul(self.batch_size(len) as u64)
        } else {
            0
        };
        let numbers = trace.saturating_add(variants).saturating_mul(2);
        Cost {
            work: method.work(len),
            bytes: numbers.saturating_mul(std::mem::size_of::<T>() as u64),
        }
    }

    /// Numbers a trace keeps per position: the input and every stage's.
    fn trace_numbers_per_position(&self) -> usize {
        self.input_size()
            + self
                .stages
                .iter()
                .map(|stage| stage.trace_numbers_per_position())
                .sum::<usize>()
    }

    /// The configuration the model was loaded from
    /// ([`Model::from_config`]); `None` for a model built or changed in
    /// code ([`Model::builder`], [`Model::with_encoder`],
    /// [`Model::with_pooling_and_head`]), which [`Model::describe`]
    /// describes.
    pub fn config(&self) -> Option<&ModelConfig> {
        self.config.as_ref()
    }

    /// The chain, one line: what the model reads, each stage's name
    /// ([`Stage::name`]) in order, and what it writes, as in `"6 values
    /// per position -> the encoder -> the final state -> the head -> 3
    /// values per sequence"` (with `"token ids -> the embedding -> "` in
    /// front for a model that reads tokens).
    pub fn describe(&self) -> String {
        let mut parts = Vec::with_capacity(self.stages.len() + 3);
        if self.embedding.is_some() {
            parts.push("token ids".to_string());
            parts.push("the embedding".to_string());
        }
        parts.push(Port::positions(self.input_size).to_string());
        parts.extend(self.stages.iter().map(|stage| stage.name()));
        parts.push(self.head().output().to_string());
        parts.join(" -> ")
    }

    /// The last stage of the chain.
    fn head(&self) -> &dyn AnyStage<T> {
        self.stages.last().expect("a model has at least one stage").as_ref()
    }

    /// Width `E` of the input vectors.
    pub fn input_size(&self) -> usize {
        self.input_size
    }

    /// Number of classes `C` (of outputs, for a regression head).
    pub fn num_classes(&self) -> usize {
        self.head().output().width
    }

    /// Whether the head gives an output vector per position (a per-step
    /// head, `head.input` `"each"`, or a head of your own that reads
    /// positions).
    pub fn is_per_step(&self) -> bool {
        self.head().output().per == Per::Position
    }

    /// Whether the model reads token ids through an embedding.
    pub fn has_embedding(&self) -> bool {
        self.embedding.is_some()
    }

    /// The embedding, when the model reads token ids.
    pub fn embedding(&self) -> Option<&Embedding<T>> {
        self.embedding.as_ref()
    }

    /// The encoder, the first [`Encoder`] stage of the chain (every
    /// model loaded from a configuration has one).
    pub fn encoder(&self) -> Option<&Encoder<T>> {
        self.stages
            .iter()
            .find_map(|stage| stage.as_any().downcast_ref::<Encoder<T>>())
    }

    /// Looks token ids up in the embedding: `[E, T]`.
    pub fn embed(&self, ids: &[usize]) -> Result<DMatrix<T>, Error> {
        let embedding = self.embedding.as_ref().ok_or(Error::NoEmbedding)?;
        let ids = embedding.ids(ids)?;
        Ok(Stage::forward(embedding, &Packing::new(&[ids.ncols()]), &ids))
    }

    /// Runs the model on input vectors `x` `[E, T]` and keeps the trace.
    pub fn forward(&self, x: DMatrix<T>) -> Result<ForwardTrace<T>, Error> {
        let mut traces = self.forward_batch(vec![x]);
        traces.pop().expect("one trace per input")
    }

    /// Runs the model on many sequences of any lengths; results in input
    /// order. The sequences are packed (longest first, see [`Packing`]) into
    /// batches of at most about 64 MB of trace, and each batch advances
    /// through the encoder together: one matrix product per step and
    /// direction for all sequences still running. Each result is what
    /// [`Model::forward`] gives for that sequence alone, up to the rounding
    /// of the products. An invalid input fails alone.
    pub fn forward_batch(&self, xs: Vec<DMatrix<T>>) -> Vec<Result<ForwardTrace<T>, Error>> {
        let mut results: Vec<Option<Result<ForwardTrace<T>, Error>>> = Vec::with_capacity(xs.len());
        let mut valid: Vec<(usize, DMatrix<T>)> = Vec::new();
        for (k, x) in xs.into_iter().enumerate() {
            match self.check_input(x) {
                Ok(x) => {
                    valid.push((k, x));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        // Longest first, so that each batch holds similar lengths.
        valid.sort_by_key(|(_, x)| std::cmp::Reverse(x.ncols()));
        let per_position = self.trace_numbers_per_position();
        let mut rest = valid.into_iter().peekable();
        while rest.peek().is_some() {
            let mut chunk = Vec::new();
            let mut numbers = 0usize;
            while let Some((_, x)) = rest.peek() {
                let cost = per_position.saturating_mul(x.ncols());
                if !chunk.is_empty() && numbers.saturating_add(cost) > BATCH_TRACE_BUDGET {
                    break;
                }
                numbers = numbers.saturating_add(cost);
                chunk.push(rest.next().expect("peeked"));
            }
            let (indices, inputs): (Vec<usize>, Vec<DMatrix<T>>) = chunk.into_iter().unzip();
            for (k, trace) in indices.into_iter().zip(self.forward_packed(inputs)) {
                results[k] = Some(trace);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every input has a result"))
            .collect()
    }

    /// One packed batch of valid inputs through every stage; results in
    /// input order.
    fn forward_packed(&self, inputs: Vec<DMatrix<T>>) -> Vec<Result<ForwardTrace<T>, Error>> {
        let lengths: Vec<usize> = inputs.iter().map(|x| x.ncols()).collect();
        let packing = Packing::new(&lengths);
        // Every column is a position of some sequence, written below.
        let mut packed = buffers::overwritten(self.input_size(), packing.columns());
        for slot in 0..packing.sequences() {
            let x = &inputs[packing.input_index(slot)];
            for t in 0..x.ncols() {
                packed.column_mut(packing.column(t, slot)).copy_from(&x.column(t));
            }
        }
        let stages = &self.stages;
        let mut packings = vec![packing.clone()];
        for (k, stage) in stages.iter().enumerate() {
            match packings[k].resized(|len| stage.output_length(len)) {
                Some(resized) => packings.push(resized),
                None => {
                    let e = Error::StagesDoNotFit {
                        stage: k + 1,
                        stages: stages.len(),
                        name: stage.name(),
                        problem:
                            "makes a shorter sequence longer than a longer one (its output_length must not decrease)"
                                .into(),
                    };
                    buffers::recycle(packed);
                    return inputs.iter().map(|_| Err(e.clone())).collect();
                }
            }
        }
        let mut traces: Vec<Box<dyn Any + Send + Sync>> = Vec::with_capacity(stages.len());
        for (k, stage) in stages.iter().enumerate() {
            let input = if k == 0 {
                &packed
            } else {
                stages[k - 1].output_of(traces[k - 1].as_ref())
            };
            let trace = stage.forward(&packings[k], input);
            // The next stage, and the accessors, trust the declared shape.
            let output = stage.output_of(trace.as_ref());
            if let Err(e) = self.check_shape(k, "forward pass", stage.output(), &packings[k + 1], output) {
                buffers::recycle(packed);
                return inputs.iter().map(|_| Err(e.clone())).collect();
            }
            traces.push(trace);
        }
        // An overflow in a stage that mixes the batch's positions fails the
        // whole batch: find out which sequences by running each alone
        // (rare; the healthy ones get their own traces).
        let finite = stages
            .iter()
            .zip(&traces)
            .filter(|(stage, _)| stage.output().per == Per::Position)
            .all(|(stage, trace)| stage.is_finite(trace.as_ref()));
        if !finite && inputs.len() > 1 {
            return inputs.into_iter().flat_map(|x| self.forward_packed(vec![x])).collect();
        }
        let head = stages.len() - 1;
        // What the head read: the stage before it, or the input.
        let features = match head {
            0 => &packed,
            _ => stages[head - 1].output_of(traces[head - 1].as_ref()),
        };
        let scores = stages[head].output_of(traces[head].as_ref());
        let k_top = self.top.map_or(0, |(k, _)| k);
        let top = self
            .top
            .map(|(k, final_state)| (final_state, stages[k].output_of(traces[k].as_ref())));
        let per_step = self.is_per_step();
        // The head's columns of a sequence: one per sequence, or its
        // positions for a per-step head (packed as the head's input).
        let head_packing = &packings[head];
        let outputs_of = |slot: usize, of: &DMatrix<T>| -> Vec<DVector<T>> {
            if per_step {
                (0..head_packing.length(slot))
                    .map(|t| of.column(head_packing.column(t, slot)).into_owned())
                    .collect()
            } else {
                vec![of.column(slot).into_owned()]
            }
        };
        let mut slots_inputs: Vec<Option<DMatrix<T>>> = inputs.into_iter().map(Some).collect();
        let mut sequences = Vec::with_capacity(packing.sequences());
        let mut failures: Vec<Option<Error>> = Vec::with_capacity(packing.sequences());
        for slot in 0..packing.sequences() {
            let last = match top {
                Some((final_state, states)) => {
                    let mut last = DVector::zeros(states.nrows());
                    final_state.gather(&packings[k_top + 1], slot, states, last.as_mut_slice());
                    last
                }
                None => DVector::zeros(0),
            };
            let sequence = SequenceTrace {
                input: slots_inputs[packing.input_index(slot)].take().expect("each input once"),
                last,
                features: outputs_of(slot, features),
                scores: outputs_of(slot, scores),
            };
            failures.push(if !finite {
                Some(Error::NonFiniteResult { pass: "forward pass" })
            } else {
                sequence
                    .scores
                    .iter()
                    .flat_map(|v| v.iter())
                    .find(|v| !v.is_finite())
                    .map(|v| Error::NonFiniteScore { value: v.as_f64() })
            });
            sequences.push(sequence);
        }
        let batch = Arc::new(BatchTrace {
            packing,
            packings,
            input: packed,
            stages: traces,
            per_step,
            sequences,
        });
        batch
            .packing
            .slots()
            .into_iter()
            .map(|slot| match failures[slot].take() {
                Some(e) => Err(e),
                None => Ok(ForwardTrace {
                    // A per-step head's default output: the last position.
                    position: if per_step {
                        batch.packings[head].length(slot).saturating_sub(1)
                    } else {
                        0
                    },
                    batch: Arc::clone(&batch),
                    slot,
                    model: self.fingerprint,
                }),
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
        // A stage that shortens sequences must leave each one a position.
        let mut length = x.ncols();
        for (k, stage) in self.stages.iter().enumerate() {
            if stage.input().per == Per::Sequence {
                break;
            }
            length = stage.output_length(length);
            if length == 0 {
                return Err(Error::TooShort {
                    length: x.ncols(),
                    stage: k + 1,
                    stages: self.stages.len(),
                    name: stage.name(),
                });
            }
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

    /// The score of `target`, after checking that it exists.
    pub(crate) fn checked_score(&self, trace: &ForwardTrace<T>, target: usize) -> Result<T, Error> {
        self.check(trace, target)?;
        Ok(trace.scores()[target])
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

    /// The input of stage `k` of a batch: the packed input for the first,
    /// else the previous stage's output.
    fn stage_input<'b>(&self, batch: &'b BatchTrace<T>, k: usize) -> &'b DMatrix<T> {
        if k == 0 {
            &batch.input
        } else {
            self.stages[k - 1].output_of(batch.stages[k - 1].as_ref())
        }
    }

    /// Checks that stage `k` wrote in its `pass` the matrix `port` promises
    /// for a batch packed as `packing`: a stage of another crate that
    /// does not is an error naming it, not a panic further on.
    fn check_shape(
        &self,
        k: usize,
        pass: &'static str,
        port: Port,
        packing: &Packing,
        written: &DMatrix<T>,
    ) -> Result<(), Error> {
        let expected = (port.width, port.columns(packing));
        if written.shape() == expected {
            return Ok(());
        }
        Err(Error::StageShape {
            stage: k + 1,
            stages: self.stages.len(),
            name: self.stages[k].name(),
            pass,
            rows: written.nrows(),
            columns: written.ncols(),
            expected_rows: expected.0,
            expected_columns: expected.1,
        })
    }

    /// The message a backward pass starts from, arranged as the head's
    /// output (`[C, S]`, or `[C, N]` for a per-step head): the score of the
    /// target for LRP (`R = s_target` on the target unit), 1 for the
    /// gradient, on the target's row of each requested slot's column (for
    /// a per-step head, the column of the requested position).
    fn start(&self, batch: &BatchTrace<T>, members: &[Member], lrp: bool) -> DMatrix<T> {
        let port = self.head().output();
        let packing = &batch.packings[self.stages.len()];
        let mut message = buffers::zeros(port.width, port.columns(packing));
        for &(_, (slot, target, position)) in members {
            let column = match port.per {
                Per::Sequence => slot,
                Per::Position => packing.column(position, slot),
            };
            message[(target, column)] = if lrp {
                batch.sequences[slot].scores[position][target]
            } else {
                T::one()
            };
        }
        message
    }

    /// LRP for the score of `target` (`docs/rules.md`): `R = s_target` on the
    /// target unit, back through the head, the pooling (the attention and
    /// the final state) into the top layer's board, and down the encoder.
    ///
    /// A trace that shares its batch with others (from
    /// [`Model::forward_batch`]) is explained through the whole batch; use
    /// [`Model::lrp_batch`] to explain many at once.
    pub fn lrp(
        &self,
        trace: &ForwardTrace<T>,
        target: usize,
        composite: &Composite<T>,
    ) -> Result<Explanation<T>, Error> {
        self.lrp_batch(&[(trace, target)], composite)
            .pop()
            .expect("one explanation per request")
    }

    /// LRP for many (trace, target) pairs; results in request order. Traces
    /// of one batch are explained together: one backward pass per batch,
    /// one matrix product per step and direction for all its sequences.
    /// Each result equals [`Model::lrp`] of that trace alone up to rounding.
    pub fn lrp_batch(
        &self,
        requests: &[(&ForwardTrace<T>, usize)],
        composite: &Composite<T>,
    ) -> Vec<Result<Explanation<T>, Error>> {
        let mut results: Vec<Option<Result<Explanation<T>, Error>>> = requests.iter().map(|_| None).collect();
        for (batch, members) in self.group_by_batch(requests, &mut results) {
            for (k, explanation) in members
                .iter()
                .map(|&(k, _)| k)
                .zip(self.lrp_packed(&batch, &members, composite))
            {
                results[k] = Some(explanation);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every request answered"))
            .collect()
    }

    /// Checks every request and groups the valid ones by their batch:
    /// `(batch, [(request index, (slot, target, position))])`. A slot asked
    /// for twice goes into two groups, so each backward pass has one target
    /// per slot.
    fn group_by_batch<R>(
        &self,
        requests: &[(&ForwardTrace<T>, usize)],
        results: &mut [Option<Result<R, Error>>],
    ) -> Vec<(Arc<BatchTrace<T>>, Vec<Member>)> {
        let mut groups: Vec<(Arc<BatchTrace<T>>, Vec<Member>)> = Vec::new();
        for (k, &(trace, target)) in requests.iter().enumerate() {
            if let Err(e) = self.check(trace, target) {
                results[k] = Some(Err(e));
                continue;
            }
            let home = groups.iter_mut().find(|(batch, members)| {
                Arc::ptr_eq(batch, &trace.batch) && members.iter().all(|(_, (slot, _, _))| *slot != trace.slot)
            });
            let member = (k, (trace.slot, target, trace.position));
            match home {
                Some((_, members)) => members.push(member),
                None => groups.push((Arc::clone(&trace.batch), vec![member])),
            }
        }
        groups
    }

    /// LRP through one packed batch for `members` `(request, (slot, target))`;
    /// results in `members` order. Each stage, head first, splits the
    /// relevance reaching its outputs over its inputs; a sequence whose
    /// relevance stops being finite fails at that stage.
    fn lrp_packed(
        &self,
        batch: &BatchTrace<T>,
        members: &[Member],
        composite: &Composite<T>,
    ) -> Vec<Result<Explanation<T>, Error>> {
        let packing = &batch.packing;
        let mut asked = vec![false; packing.sequences()];
        for &(_, (slot, _, _)) in members {
            asked[slot] = true;
        }
        let mut context = Backward::new(packing, composite, asked);
        let mut relevance = self.start(batch, members, true);
        for (k, stage) in self.stages.iter().enumerate().rev() {
            let input = self.stage_input(batch, k);
            let mut below = buffers::zeros(input.nrows(), input.ncols());
            context.layer = self.first_layers[k];
            context.packing = &batch.packings[k];
            stage.lrp(batch.stages[k].as_ref(), input, &relevance, &mut below, &mut context);
            if let Err(e) = self.check_shape(k, "lrp", stage.input(), &batch.packings[k], &below) {
                context.finish();
                return members.iter().map(|_| Err(e.clone())).collect();
            }
            context.check(stage.input(), &mut below, &stage.name(), || stage.rule_names(composite));
            buffers::recycle(std::mem::replace(&mut relevance, below));
        }
        let (leftovers, mut failures) = context.finish();
        let explanations = members
            .iter()
            .map(|&(_, (slot, target, position))| {
                if let Some(e) = failures[slot].take() {
                    return Err(e);
                }
                // [E, T], column t position t: the board's own layout.
                let input_relevance = Relevance::from_matrix(packing.gather(&relevance, slot));
                Ok(Explanation {
                    target,
                    score: batch.sequences[slot].scores[position][target],
                    input_relevance,
                    initial_state_relevance: leftovers.initial_state[slot],
                    unexplained_relevance: leftovers.unexplained[slot],
                })
            })
            .collect();
        buffers::recycle(relevance);
        explanations
    }

    /// The gradient `d s_target / d x` `[E, T]` (the true gradient, through
    /// the attention's softmax and score function too).
    pub fn gradient(&self, trace: &ForwardTrace<T>, target: usize) -> Result<DMatrix<T>, Error> {
        self.gradient_batch(&[(trace, target)])
            .pop()
            .expect("one gradient per request")
    }

    /// Gradients for many (trace, target) pairs, a batch's traces together
    /// (see [`Model::lrp_batch`]); results in request order.
    pub fn gradient_batch(&self, requests: &[(&ForwardTrace<T>, usize)]) -> Vec<Result<DMatrix<T>, Error>> {
        let mut results: Vec<Option<Result<DMatrix<T>, Error>>> = requests.iter().map(|_| None).collect();
        for (batch, members) in self.group_by_batch(requests, &mut results) {
            let packing = &batch.packing;
            let mut gradient = self.start(&batch, &members, false);
            let mut misfit = None;
            for (k, stage) in self.stages.iter().enumerate().rev() {
                let input = self.stage_input(&batch, k);
                let mut below = buffers::zeros(input.nrows(), input.ncols());
                let stage_packing = &batch.packings[k];
                stage.gradient(stage_packing, batch.stages[k].as_ref(), input, &gradient, &mut below);
                buffers::recycle(std::mem::replace(&mut gradient, below));
                misfit = self
                    .check_shape(k, "gradient", stage.input(), stage_packing, &gradient)
                    .err();
                if misfit.is_some() {
                    break;
                }
            }
            if let Some(e) = misfit {
                for &(k, _) in &members {
                    results[k] = Some(Err(e.clone()));
                }
                continue;
            }
            for &(k, (slot, _, _)) in &members {
                let g = packing.gather(&gradient, slot);
                results[k] = Some(if g.iter().all(|v| v.is_finite()) {
                    Ok(g)
                } else {
                    Err(Error::NonFiniteResult { pass: "gradient" })
                });
            }
            buffers::recycle(gradient);
        }
        results
            .into_iter()
            .map(|r| r.expect("every request answered"))
            .collect()
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
    if config.embedding {
        names.extend(Embedding::<f64>::pytorch_tensors(config.vocab_size.unwrap_or(0), e));
    }
    for (k, layer) in config.front.iter().enumerate() {
        if let FrontLayer::Conv1d {
            in_channels,
            out_channels,
            kernel_size,
            bias,
            ..
        } = layer
        {
            names.extend(Conv1d::<f64>::pytorch_tensors(
                &format!("front.{k}"),
                *out_channels,
                *in_channels,
                *kernel_size,
                *bias,
            ));
        }
    }
    // Each stage names its own tensors, beside its code; the other
    // frameworks' encoders and heads are named in `layouts`.
    for k in 0..enc.num_layers {
        let width = if k == 0 { e } else { d };
        if config.layout != Layout::Pytorch {
            names.extend(layouts::layer_manifest(config, k, width));
            continue;
        }
        for reverse in [false, true].into_iter().take(if enc.bidirectional { 2 } else { 1 }) {
            names.extend(match enc.cell {
                CellKind::Lstm => LstmCell::<f64>::pytorch_tensors(k, reverse, width, h),
                CellKind::Gru => GruCell::<f64>::pytorch_tensors(k, reverse, width, h),
                CellKind::MinGru => MinGruCell::<f64>::pytorch_tensors(k, reverse, width, h),
                CellKind::MinLstm => MinLstmCell::<f64>::pytorch_tensors(k, reverse, width, h),
            });
        }
    }
    if let Some(att) = &config.attention {
        names.extend(Attention::<f64>::pytorch_tensors(att.kind, att.size.unwrap_or(0), d));
    }
    names.extend(layouts::head_manifest(config));
    Ok(names)
}

/// Builds a model of the `pytorch`, `keras`, `onnx` or `tf1` layout from
/// its tensors in manifest order: each layer's weights are brought into the
/// cells' own form (`layouts`) and the config's cell options applied, once.
fn build_layered<T: Float>(
    config: &ModelConfig,
    tensors: &mut Ordered,
    canonizers: &[Box<dyn crate::canonize::Canonizer<T>>],
) -> Result<Model<T>, Error> {
    let enc = &config.encoder;
    let dirs = if enc.bidirectional { 2 } else { 1 };
    let embedding = if config.embedding {
        Some(Embedding::from_pytorch(tensors)?)
    } else {
        None
    };
    // The front end's tensors come before the encoder's in the manifest.
    let chain = match embedding {
        Some(embedding) => Model::builder_with_embedding(embedding),
        None => Model::builder(config.input_width()),
    };
    let chain = front_stages(config, tensors, chain)?;
    let mut layers = Vec::with_capacity(enc.num_layers);
    for k in 0..enc.num_layers {
        let width = if k == 0 { enc.input_size } else { config.output_width() };
        if enc.cell.is_min() {
            // One input projection per direction and no options: nothing
            // for a canonizer to bring into form.
            if !canonizers.is_empty() {
                return Err(Error::Config {
                    key: "canonizers".into(),
                    message: format!("a {} has no recurrent weights to canonize", enc.cell.name()),
                });
            }
            let layer = if enc.cell == CellKind::MinGru {
                let cells: Result<Vec<_>, Error> = (0..dirs).map(|_| MinGruCell::from_pytorch(tensors)).collect();
                layer_of(cells?)?
            } else {
                let cells: Result<Vec<_>, Error> = (0..dirs).map(|_| MinLstmCell::from_pytorch(tensors)).collect();
                layer_of(cells?)?
            };
            layers.push(layer);
            continue;
        }
        let directions = if config.layout == Layout::Pytorch {
            // w_ih, w_hh, b_ih, b_hh per direction, already in the cells' order.
            (0..dirs)
                .map(|_| layouts::Direction::from_pytorch(tensors))
                .collect::<Result<Vec<_>, Error>>()?
        } else {
            layouts::read_directions(config, width, tensors)?
        };
        layers.push(layouts::layer_canonized(&config.encoder, directions, canonizers)?);
    }
    let encoder = Encoder::new(layers)?;
    let attention = match &config.attention {
        None => None,
        Some(att) => Some(Attention::from_pytorch(att.kind, tensors)?),
    };
    let (h, dirs) = (encoder.hidden_size(), encoder.directions());
    let (d, final_state) = (encoder.output_width(), encoder.final_state());
    let chain = chain.stage(encoder);
    let chain = match (attention, config.head.input) {
        (Some(attention), HeadInput::Context) => chain.stage(AttentionPooling::new(attention, h, dirs, false)?),
        (Some(attention), HeadInput::ContextLast) => chain.stage(AttentionPooling::new(attention, h, dirs, true)?),
        (_, HeadInput::Mean) => chain.stage(MeanPooling::new(d)),
        (_, HeadInput::Max) => chain.stage(MaxPooling::new(d)),
        (_, HeadInput::Each) => chain.stage(EachPosition::new(d)),
        // An attention a head does not read is loaded and unused.
        _ => chain.stage(final_state),
    };
    let linear = layouts::read_head(config, tensors)?;
    match config.head.input {
        HeadInput::Each => chain.stage(StepHead::new(linear)),
        _ => chain.stage(linear),
    }
    .build()
}

/// `chain` with the stages of the config's `front` added, each layer
/// reading its tensors in manifest order.
fn front_stages<T: Float>(
    config: &ModelConfig,
    tensors: &mut Ordered,
    mut chain: ModelBuilder<T>,
) -> Result<ModelBuilder<T>, Error> {
    let mut width = config.input_width();
    for layer in &config.front {
        chain = match (layer, layer.window()) {
            (FrontLayer::Conv1d { in_channels, bias, .. }, Some(window)) => {
                chain.stage(Conv1d::from_pytorch(tensors, *in_channels, *bias, window)?)
            }
            (FrontLayer::Maxpool1d { .. }, Some(window)) => chain.stage(MaxPool1d::new(width, window)?),
            _ => chain.stage(Relu::new(width)),
        };
        width = layer.output_channels(width);
    }
    Ok(chain)
}

/// The numpy release of Arras et al. 2017: gate rows i, g, f, o, `Left`
/// reading forwards and `Right` reading the reversed sequence, and a
/// bias-free head split in two halves.
fn build_reference<T: Float>(
    config: &ModelConfig,
    tensors: &mut Ordered,
    canonizers: &[Box<dyn crate::canonize::Canonizer<T>>],
) -> Result<Model<T>, Error> {
    let (h, c) = (config.encoder.hidden_size, config.head.num_classes);
    // Each direction's Wxh, Whh, bxh, bhh as PyTorch's four, in the
    // release's gate order (the canonizers reorder and merge them), then
    // its half of the head.
    let mut directions = Vec::with_capacity(2);
    let mut head = DMatrix::zeros(c, 2 * h);
    for dir in 0..2 {
        directions.push(layouts::Direction::from_pytorch(tensors)?);
        head.columns_mut(dir * h, h).copy_from(&tensors.matrix::<T>()?);
    }
    let encoder = Encoder::new(vec![layouts::layer_canonized(&config.encoder, directions, canonizers)?])?;
    let final_state = encoder.final_state();
    Model::builder(config.encoder.input_size)
        .stage(encoder)
        .stage(final_state)
        .stage(Linear {
            weight: head,
            bias: None,
        })
        .build()
}

/// A layer of one cell per direction (one or two cells).
pub(crate) fn layer_of<T: Float, C: crate::RecurrentCell<T>>(cells: Vec<C>) -> Result<RecurrentLayer<T>, Error> {
    let mut cells = cells.into_iter();
    let forward = cells.next().ok_or_else(|| Error::Config {
        key: "encoder".into(),
        message: "a layer needs a cell".into(),
    })?;
    match cells.next() {
        None => Ok(RecurrentLayer::unidirectional(forward)),
        Some(backward) => RecurrentLayer::bidirectional(forward, backward),
    }
}

/// A 64-bit hash of a configuration and its tensors (names, shapes and
/// every value's bits), so that traces can name the model that made them.
/// Not cryptographic: it tells models apart, it does not resist forgery.
fn fingerprint(config: &ModelConfig, tensors: &Tensors) -> u64 {
    fingerprint_of(&format!("{config:?}"), tensors)
}

/// [`fingerprint`] of a model described by `description` (a seq2seq
/// model's configuration).
pub(crate) fn fingerprint_of(description: &str, tensors: &Tensors) -> u64 {
    let mut hash = Fingerprint(0x6c72_705f_6d6f_6465);
    hash.bytes(description.as_bytes());
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
    use crate::config::{AttentionConfig, AttentionKind, EncoderConfig, HeadConfig};
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
            front: Vec::new(),
            encoder: EncoderConfig {
                cell,
                input_size: 6,
                hidden_size: 5,
                num_layers: 2,
                bidirectional: true,
                recurrent_activation: None,
                gru_reset: None,
                forget_bias: None,
            },
            attention: Some(AttentionConfig {
                kind,
                size: sized.then_some(4),
            }),
            head: HeadConfig {
                input: head,
                num_classes: 3,
                bias: true,
                task: crate::config::Task::Classification,
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
