//! Encoder–decoder models with attention (`docs/seq2seq.md`): the source
//! sentence through an [`Encoder`] (LSTM or GRU, one or two directions,
//! stacked), a one-layer LSTM or GRU decoder over the target embeddings
//! with global attention over the encoder's top outputs (Luong et al.
//! 2015: `additive`, `general` or `dot` scores), optional input feeding,
//! and a linear output layer over the target vocabulary:
//!
//! ```text
//! x_j   = [E_tgt(y_{j-1}); o_{j-1}]          (o_{j-1} only with input feeding; o_{-1} = 0)
//! h_j   = cell(x_j, h_{j-1})                 (h_{-1} = 0, or tanh(W_b h_enc + b_b) with a bridge)
//! a_j   = softmax_s(score(h_j, H_s)),  ctx_j = sum_s a_js H_s
//! o_j   = tanh(W_c [ctx_j; h_j] + b_c)
//! y_j   = W_o o_j + b_o                      (the logits over the target vocabulary)
//! ```
//!
//! [`Seq2Seq::forward`] runs one source sentence with a teacher-forced
//! target, [`Seq2Seq::greedy`] decodes greedily; both keep a
//! [`Seq2SeqTrace`]. [`Seq2Seq::lrp`] explains one logit of one step back to
//! the source tokens, the target prefix and the initial states; the
//! attention weights act as connection weights (`docs/seq2seq.md` derives
//! it). [`Seq2Seq::gradient`] is the exact gradient of that logit, and
//! [`Seq2Seq::attribute`] the baselines (sa, gi, occlusion, ig) on it.
//!
//! The encoder runs through the packed engine of the classifiers (one
//! sequence); the decoder runs one step at a time into matrices allocated
//! once per pass, one column per step.

use lrp_core::{Block, BlockMut, Connection, Float, InputGroup, LinearStep, Relevance, Workspace};
use lrp_layers::{Composite, Operation, Site};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::activation::tanh;
use crate::cell::{
    block, block_mut, column, GruCell, LinearSteps, LstmCell, State, StateMut, Step, StepCell, StepForward,
    StepGradient, StepLrp,
};
use crate::config::{AttentionConfig, AttentionKind, CellKind, EncoderConfig, Layout};
use crate::encoder::{Encoder, EncoderTrace};
use crate::layouts::{self, Direction};
use crate::packing::Packing;
use crate::stage::{Backward, Embedding, Port, Stage};
use crate::tensors::{check_against_manifest, Manifest, Tensors};
use crate::{Cost, Error, Linear};

/// The value of `"architecture"` that marks a seq2seq `config.json`.
pub const ARCHITECTURE: &str = "seq2seq";

/// The stage name of the decoder's rule sites: its gates' projections,
/// its sum, its products (`Site::new("decoder", ...)`), the combination
/// `o_j` (`Projection("combine")`) and the bridge (`Projection("bridge")`).
/// The attention pooling uses [`Site::attention`], the output layer
/// [`Site::head`].
pub const DECODER: &str = "decoder";

/// The most decoder steps any pass runs (a hard cap on `--max-output-length`).
pub const MAX_TARGET_LENGTH: usize = 1024;

/// How the decoder's initial state is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DecoderInit {
    /// `h_{-1} = 0` (and `c_{-1} = 0`).
    #[default]
    Zero,
    /// `h_{-1} = tanh(W_b h_enc + b_b)` with `h_enc` the encoder's final
    /// state (`bridge.weight` `[Hd, D]`, `bridge.bias` `[Hd]`); `c_{-1} = 0`.
    Bridge,
}

/// `decoder` section of a seq2seq config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// LSTM or GRU (`nn.LSTMCell` / `nn.GRUCell` semantics).
    pub cell: CellKind,
    /// Width `Et` of the target embedding.
    pub input_size: usize,
    /// Hidden size `Hd`.
    pub hidden_size: usize,
    /// Whether `o_{j-1}` is concatenated to the decoder input (default false).
    #[serde(default)]
    pub input_feeding: bool,
    /// The initial state (default `zero`).
    #[serde(default)]
    pub init: DecoderInit,
}

/// The whole `config.json` of an encoder–decoder model (`docs/seq2seq.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqConfig {
    /// Must be `"lrp-model"`.
    pub format: String,
    /// Must be `1`.
    pub version: u32,
    /// Must be `"seq2seq"`.
    pub architecture: String,
    /// Must be `pytorch`.
    pub layout: Layout,
    /// Weights file, relative to the model directory.
    pub weights: String,
    /// Rows `Vs` of `source_embedding.weight`.
    pub source_vocab_size: usize,
    /// Source vocabulary file, one token a line.
    #[serde(default)]
    pub source_vocab: Option<String>,
    /// Rows `Vt` of `target_embedding.weight` and of `output.weight`.
    pub target_vocab_size: usize,
    /// Target vocabulary file, one token a line.
    #[serde(default)]
    pub target_vocab: Option<String>,
    /// Token unknown source words map to; without it they are an error.
    #[serde(default)]
    pub unk_token: Option<String>,
    /// Whether source text is lowercased before lookup (default false).
    #[serde(default)]
    pub lowercase: bool,
    /// The target id the decoder reads first (`<s>`).
    pub target_start: usize,
    /// The target id that ends greedy decoding (`</s>`), if any.
    #[serde(default)]
    pub target_end: Option<usize>,
    /// The encoder; `input_size` is the source embedding width `Es`.
    pub encoder: EncoderConfig,
    /// The decoder.
    pub decoder: DecoderConfig,
    /// The attention: `additive` (with `size`), `general` or `dot`.
    pub attention: AttentionConfig,
}

impl Seq2SeqConfig {
    /// Width `D` of one encoder output position.
    pub fn encoder_width(&self) -> usize {
        self.encoder.hidden_size * if self.encoder.bidirectional { 2 } else { 1 }
    }

    /// Width `Ex` of the decoder input: `Et`, plus `Hd` with input feeding.
    pub fn decoder_input_width(&self) -> usize {
        self.decoder.input_size
            + if self.decoder.input_feeding {
                self.decoder.hidden_size
            } else {
                0
            }
    }

    /// Checks every value and combination; the first problem as one error.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, message: String| {
            Err(Error::Config {
                key: key.into(),
                message,
            })
        };
        if self.format != "lrp-model" {
            return bad("format", format!("expected \"lrp-model\", found {:?}", self.format));
        }
        if self.version != 1 {
            return bad(
                "version",
                format!("only version 1 is supported, found {}", self.version),
            );
        }
        if self.architecture != ARCHITECTURE {
            return bad(
                "architecture",
                format!("expected \"{ARCHITECTURE}\", found {:?}", self.architecture),
            );
        }
        if self.layout != Layout::Pytorch {
            return bad("layout", "a seq2seq model has the \"pytorch\" layout only".into());
        }
        const LIMIT: usize = 1 << 16;
        let (e, d) = (&self.encoder, &self.decoder);
        for (key, value, limit) in [
            ("encoder.input_size", e.input_size, LIMIT),
            ("encoder.hidden_size", e.hidden_size, LIMIT),
            ("encoder.num_layers", e.num_layers, LIMIT),
            ("decoder.input_size", d.input_size, LIMIT),
            ("decoder.hidden_size", d.hidden_size, LIMIT),
            ("source_vocab_size", self.source_vocab_size, 1 << 24),
            ("target_vocab_size", self.target_vocab_size, 1 << 24),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
            if value > limit {
                return bad(key, format!("{value} is larger than the supported {limit}"));
            }
        }
        for (key, cell) in [("encoder.cell", e.cell), ("decoder.cell", d.cell)] {
            if cell.is_min() {
                return bad(
                    key,
                    format!(
                        "an encoder-decoder has LSTM or GRU cells; {} is not supported here",
                        cell.name()
                    ),
                );
            }
        }
        for (key, id) in [
            ("target_start", Some(self.target_start)),
            ("target_end", self.target_end),
        ] {
            if let Some(id) = id.filter(|&id| id >= self.target_vocab_size) {
                return bad(
                    key,
                    format!("{id} is outside the target vocabulary of {}", self.target_vocab_size),
                );
            }
        }
        let att = &self.attention;
        match (att.kind, att.size) {
            (AttentionKind::Additive, None | Some(0)) => {
                return bad("attention.size", "additive attention needs a size >= 1".into())
            }
            (AttentionKind::Additive, Some(s)) if s > LIMIT => {
                return bad("attention.size", format!("{s} is too large"))
            }
            (AttentionKind::Additive, _) => {}
            (AttentionKind::Dot | AttentionKind::General, Some(_)) => {
                return bad("attention.size", format!("{} attention has no size", att.kind.name()))
            }
            (AttentionKind::Dot, None) if d.hidden_size != self.encoder_width() => {
                return bad(
                    "attention.kind",
                    format!(
                        "dot attention needs decoder.hidden_size ({}) equal to the encoder's output width ({})",
                        d.hidden_size,
                        self.encoder_width()
                    ),
                )
            }
            (AttentionKind::Dot | AttentionKind::General, None) => {}
            (other, _) => {
                return bad(
                    "attention.kind",
                    format!(
                        "{:?} is not a decoder attention: use additive, general or dot",
                        other.name()
                    ),
                )
            }
        }
        Ok(())
    }
}

/// Every tensor a seq2seq configuration needs, with its shape, in the order
/// the model reads them (the names of `tools/pytorch_models.py`'s `Seq2Seq`).
pub fn seq2seq_manifest(config: &Seq2SeqConfig) -> Result<Manifest, Error> {
    config.validate()?;
    let enc = &config.encoder;
    let dec = &config.decoder;
    let (d, hd) = (config.encoder_width(), dec.hidden_size);
    let mut names: Manifest = vec![(
        "source_embedding.weight".into(),
        vec![config.source_vocab_size, enc.input_size],
    )];
    for k in 0..enc.num_layers {
        let width = if k == 0 { enc.input_size } else { d };
        for reverse in [false, true].into_iter().take(if enc.bidirectional { 2 } else { 1 }) {
            names.extend(match enc.cell {
                CellKind::Lstm => LstmCell::<f64>::pytorch_tensors(k, reverse, width, enc.hidden_size),
                CellKind::Gru => GruCell::<f64>::pytorch_tensors(k, reverse, width, enc.hidden_size),
                // Refused by `validate`; named as a minGRU/minLSTM names them.
                CellKind::MinGru => crate::MinGruCell::<f64>::pytorch_tensors(k, reverse, width, enc.hidden_size),
                CellKind::MinLstm => crate::MinLstmCell::<f64>::pytorch_tensors(k, reverse, width, enc.hidden_size),
            });
        }
    }
    names.push((
        "target_embedding.weight".into(),
        vec![config.target_vocab_size, dec.input_size],
    ));
    let gates = match dec.cell {
        CellKind::Lstm => 4,
        CellKind::Gru | CellKind::MinLstm => 3,
        CellKind::MinGru => 2,
    };
    let ex = config.decoder_input_width();
    names.push(("decoder.weight_ih".into(), vec![gates * hd, ex]));
    names.push(("decoder.weight_hh".into(), vec![gates * hd, hd]));
    names.push(("decoder.bias_ih".into(), vec![gates * hd]));
    names.push(("decoder.bias_hh".into(), vec![gates * hd]));
    match config.attention.kind {
        AttentionKind::Additive => {
            let a = config.attention.size.unwrap_or(0);
            names.push(("attention.key.weight".into(), vec![a, d]));
            names.push(("attention.key.bias".into(), vec![a]));
            names.push(("attention.query.weight".into(), vec![a, hd]));
            names.push(("attention.score.weight".into(), vec![1, a]));
        }
        AttentionKind::General => names.push(("attention.bilinear.weight".into(), vec![hd, d])),
        _ => {}
    }
    names.extend(Linear::<f64>::pytorch_tensors("combine", hd, d + hd, true));
    names.extend(Linear::<f64>::pytorch_tensors(
        "output",
        config.target_vocab_size,
        hd,
        true,
    ));
    if dec.init == DecoderInit::Bridge {
        names.extend(Linear::<f64>::pytorch_tensors("bridge", hd, d, true));
    }
    Ok(names)
}

/// The decoder's attention score function; the projections of the encoder
/// outputs are computed once per sentence (`keys` of the trace).
#[derive(Debug, Clone)]
enum DecoderAttention<T: Float> {
    /// `e_s = v . tanh(K H_s + b + Q h_j)`: `key` `[A, D]` with `b`, `query`
    /// `[A, Hd]`, `score` `[A]`.
    Additive {
        key: Linear<T>,
        query: DMatrix<T>,
        score: DVector<T>,
    },
    /// `e_s = h_j . (W H_s)`: `bilinear` `[Hd, D]`.
    General { bilinear: DMatrix<T> },
    /// `e_s = h_j . H_s`.
    Dot,
}

/// An encoder–decoder model with attention (module docs). Built from a
/// [`Seq2SeqConfig`] and its tensors by [`Seq2Seq::from_config`].
#[derive(Debug, Clone)]
pub struct Seq2Seq<T: Float> {
    config: Seq2SeqConfig,
    fingerprint: u64,
    source_embedding: Embedding<T>,
    encoder: Encoder<T>,
    target_embedding: Embedding<T>,
    /// The decoder's cell, run one step at a time: the built-in LSTM or
    /// GRU of the configuration, or any [`StepCell`]
    /// ([`Seq2Seq::with_decoder_cell`]).
    cell: std::sync::Arc<dyn StepCell<T>>,
    attention: DecoderAttention<T>,
    /// `W_c` `[Hd, D + Hd]`, `b_c`.
    combine: Linear<T>,
    /// `W_o` `[Vt, Hd]`, `b_o`.
    output: Linear<T>,
    /// `W_b` `[Hd, D]`, `b_b`, with `init = bridge`.
    bridge: Option<Linear<T>>,
}

/// The forward pass of one source sentence and one target (teacher-forced
/// or decoded): everything LRP and the gradient read.
///
/// ## Shapes
/// `S` source positions, `J` decoder steps, `D` encoder width, `Hd`
/// decoder width, `G` gate blocks (4 LSTM, 3 GRU), `Ex` decoder input
/// width, `A` additive score width, `Vt` target vocabulary.
/// - `source_vectors` `[Es, S]`, `target_vectors` `[Et, J]` (the decoder's
///   inputs: the start token and `y_1 .. y_{J-1}`)
/// - `keys`: `[A, S]` `K H + b` (additive), `[Hd, S]` `W H` (general), empty (dot)
/// - `x` `[Ex, J]`; the cell's `record` `[R, J]`, `memory` `[M, J]` and `h`
///   `[Hd, J]` (see [`StepCell`])
/// - `hidden` `[A, S J]` (additive: `tanh(...)` of step `j` in columns `j S ..`)
/// - `weights` `[S, J]`, `context` `[D, J]`, `combined` and `out` `[Hd, J]`,
///   `logits` `[Vt, J]`
#[derive(Debug, Clone)]
pub struct Seq2SeqTrace<T: Float> {
    model: u64,
    source: Vec<usize>,
    target: Vec<usize>,
    packing: Packing,
    source_vectors: DMatrix<T>,
    target_vectors: DMatrix<T>,
    encoder: std::sync::Arc<EncoderTrace<T>>,
    keys: DMatrix<T>,
    h0: DVector<T>,
    x: DMatrix<T>,
    record: DMatrix<T>,
    memory: DMatrix<T>,
    h: DMatrix<T>,
    hidden: DMatrix<T>,
    weights: DMatrix<T>,
    context: DMatrix<T>,
    combined: DMatrix<T>,
    out: DMatrix<T>,
    logits: DMatrix<T>,
}

impl<T: Float> Seq2SeqTrace<T> {
    /// The source token ids `[S]`.
    pub fn source(&self) -> &[usize] {
        &self.source
    }

    /// The target tokens `y_1 .. y_J` the steps produce (teacher-forced, or
    /// the greedy choices) `[J]`.
    pub fn target(&self) -> &[usize] {
        &self.target
    }

    /// Number of decoder steps `J`.
    pub fn steps(&self) -> usize {
        self.target.len()
    }

    /// The decoder's input token ids `[J]`: the start token, then `y_1 .. y_{J-1}`.
    pub fn decoder_inputs(&self, start: usize) -> Vec<usize> {
        std::iter::once(start)
            .chain(self.target.iter().copied())
            .take(self.target.len())
            .collect()
    }

    /// The logits of step `j` `[Vt]`.
    pub fn logits(&self, j: usize) -> &[T] {
        column(&self.logits, j)
    }

    /// The attention weights of step `j` over the source `[S]`.
    pub fn attention(&self, j: usize) -> &[T] {
        column(&self.weights, j)
    }

    /// The encoder's top outputs `[D, S]`.
    pub fn encoder_outputs(&self) -> &DMatrix<T> {
        self.encoder.top()
    }

    /// The decoder's hidden states `[Hd, J]`.
    pub fn decoder_states(&self) -> &DMatrix<T> {
        &self.h
    }
}

/// An LRP explanation of one logit of one decoder step.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqExplanation<T: Float> {
    /// The step `j` (0-based): the logit belongs to output `y_{j+1}`.
    pub step: usize,
    /// The explained target id `k`.
    pub token: usize,
    /// The explained logit, the relevance that was sent back.
    pub score: T,
    /// Relevance per source position and embedding dimension, `[S, Es]`.
    pub source_relevance: Relevance<T>,
    /// Relevance of the decoder's inputs `0 ..= j` (the start token and the
    /// target prefix `y_1 .. y_j`), per embedding dimension, `[j + 1, Et]`.
    pub target_relevance: Relevance<T>,
    /// What reached the zero initial states: the encoder's `h_0`, `c_0`, the
    /// decoder's `h_{-1}`, `c_{-1}` (unless a bridge carries `h_{-1}` to the
    /// encoder) and the zero input feed `o_{-1}`.
    pub initial_state_relevance: T,
    /// Relevance dropped at zero denominators.
    pub unexplained_relevance: T,
}

/// The gradient of one logit with respect to the input vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqGradient<T: Float> {
    /// `[Es, S]`.
    pub source: DMatrix<T>,
    /// `[Et, j + 1]`: the decoder inputs up to the step.
    pub target: DMatrix<T>,
}

/// A target of a forward pass: teacher-forced ids, or greedy decoding.
enum Decode<'a, T: Float> {
    /// The target tokens `y_1 .. y_J` and, when given, the decoder's input
    /// vectors `[Et, J]` to use instead of their embeddings.
    Forced(&'a [usize], Option<DMatrix<T>>),
    /// Greedy decoding of at most this many steps.
    Greedy(usize),
}

impl<T: Float> Seq2Seq<T> {
    /// Builds the model, checking every tensor's presence, shape and
    /// finiteness; tensors the architecture does not use are an error.
    pub fn from_config(config: Seq2SeqConfig, tensors: Tensors) -> Result<Self, Error> {
        let manifest = seq2seq_manifest(&config)?;
        let fingerprint = crate::model::fingerprint_of(&format!("{config:?}"), &tensors);
        let mut t = check_against_manifest(&manifest, tensors)?;
        let enc = &config.encoder;
        let source_embedding = Embedding::from_pytorch(&mut t)?;
        let dirs = if enc.bidirectional { 2 } else { 1 };
        let mut layers = Vec::with_capacity(enc.num_layers);
        for _ in 0..enc.num_layers {
            let directions = (0..dirs)
                .map(|_| Direction::from_pytorch(&mut t))
                .collect::<Result<Vec<_>, Error>>()?;
            layers.push(layouts::layer_from(enc, directions)?);
        }
        let encoder = Encoder::new(layers)?;
        let target_embedding = Embedding::from_pytorch(&mut t)?;
        let cell: std::sync::Arc<dyn StepCell<T>> = match config.decoder.cell {
            CellKind::Lstm => std::sync::Arc::new(Direction::from_pytorch(&mut t)?.plain_lstm()?),
            CellKind::Gru => std::sync::Arc::new(Direction::from_pytorch(&mut t)?.plain_gru()?),
            other => {
                return Err(Error::Config {
                    key: "decoder.cell".into(),
                    message: format!(
                        "an encoder-decoder's decoder is an LSTM or a GRU, found {}",
                        other.name()
                    ),
                })
            }
        };
        let attention = match config.attention.kind {
            AttentionKind::Additive => DecoderAttention::Additive {
                key: Linear::from_pytorch(&mut t, true)?,
                query: t.matrix()?,
                score: t.vector()?,
            },
            AttentionKind::General => DecoderAttention::General { bilinear: t.matrix()? },
            _ => DecoderAttention::Dot,
        };
        let combine = Linear::from_pytorch(&mut t, true)?;
        let output = Linear::from_pytorch(&mut t, true)?;
        let bridge = match config.decoder.init {
            DecoderInit::Bridge => Some(Linear::from_pytorch(&mut t, true)?),
            DecoderInit::Zero => None,
        };
        Ok(Self {
            config,
            fingerprint,
            source_embedding,
            encoder,
            target_embedding,
            cell,
            attention,
            combine,
            output,
            bridge,
        })
    }

    /// This model with `cell` as its decoder's cell: any [`StepCell`] that
    /// reads the decoder's input (`Et` values, `Et + Hd` with input
    /// feeding) and writes `Hd` values, the other parts kept. A model of its
    /// own: traces of the old model are refused.
    pub fn with_decoder_cell(mut self, cell: impl StepCell<T>) -> Result<Self, Error> {
        let (input, hidden) = (self.config.decoder_input_width(), self.hd());
        let shape = cell.shape();
        if shape.input != input || shape.hidden != hidden {
            return Err(Error::Config {
                key: "decoder".into(),
                message: format!(
                    "the new cell reads {} values and writes {}; the decoder needs {input} and {hidden}",
                    shape.input, shape.hidden
                ),
            });
        }
        self.cell = std::sync::Arc::new(cell);
        // A model of its own: its traces are not the old model's.
        self.fingerprint ^= crate::model::fingerprint_of(&format!("{:?}", self.cell), &Tensors::new());
        Ok(self)
    }

    /// Every site at which this model asks a [`Composite`] for a rule: the
    /// encoder's (as [`crate::Model::sites`]), the decoder cell's
    /// ([`DECODER`] projections, sum and products), the combination, the
    /// bridge (with `init = bridge`), the attention pooling and the output
    /// layer ([`Site::head`]).
    pub fn sites(&self) -> Vec<Site> {
        let mut sites = Stage::sites(&self.encoder);
        sites.extend(self.cell.operations().into_iter().map(|op| Site::new(DECODER, op)));
        sites.push(Site::new(DECODER, Operation::Projection("combine")));
        if self.bridge.is_some() {
            sites.push(Site::new(DECODER, Operation::Projection("bridge")));
        }
        sites.extend([Site::attention(), Site::head()]);
        sites
    }

    /// The configuration.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.config
    }

    /// Number of target tokens `Vt` (logits per step).
    pub fn target_vocab_size(&self) -> usize {
        self.config.target_vocab_size
    }

    /// What explaining every step of a pass over `source_len` source tokens
    /// and `steps` decoder steps by `method` costs ([`Cost`]), before
    /// anything runs (for greedy decoding, `steps` is its most steps).
    ///
    /// Work, in position-passes (one pass over one source token or one
    /// decoder step): the forward pass, `S + J`, then for each step `j`
    /// (explained back over `n = S + j + 1` positions) one backward pass
    /// `n` (LRP and the gradients), `n` forward passes of `n` (occlusion),
    /// or a forward and a backward pass per Riemann step, `2 m n`
    /// (integrated gradients).
    ///
    /// Memory: the trace, `S (Es + 12 D L + A) + J (Et + Ex + 2 G Hd +
    /// 6 Hd + D + Vt) + S J (A + 1)` numbers (with the attention's score
    /// width `A`), twice over for the backward pass, and twice that again
    /// when the method runs variants of the input (each a trace of its
    /// own).
    pub fn cost(&self, method: crate::Method<'_, T>, source_len: usize, steps: usize) -> Cost {
        use crate::Method;
        let c = &self.config;
        let (s, j) = (source_len as u64, steps as u64);
        let hd = c.decoder.hidden_size as u64;
        let gates = match c.decoder.cell {
            CellKind::Lstm => 4,
            _ => 3,
        };
        let score_width = c.attention.size.unwrap_or(0) as u64;
        let keys = match c.attention.kind {
            AttentionKind::General => hd,
            _ => score_width,
        };
        let per_source = c.encoder.input_size as u64 + Stage::trace_numbers_per_position(&self.encoder) as u64 + keys;
        let per_step = (c.decoder.input_size + c.decoder_input_width() + c.encoder_width() + c.target_vocab_size)
            as u64
            + (2 * gates + 6) * hd;
        let trace = s
            .saturating_mul(per_source)
            .saturating_add(j.saturating_mul(per_step))
            .saturating_add(s.saturating_mul(j).saturating_mul(score_width + 1));
        let copies = if method.runs_variants() { 4 } else { 2 };
        // Sums over the steps of n = S + k, k = 1 ..= J, in closed form.
        let (s2, j2) = (u128::from(s), u128::from(j));
        let pairs = j2.saturating_mul(j2 + 1);
        let sum_n = j2.saturating_mul(s2).saturating_add(pairs / 2);
        let sum_n_squared = j2
            .saturating_mul(s2)
            .saturating_mul(s2)
            .saturating_add(s2.saturating_mul(pairs))
            .saturating_add(pairs.saturating_mul(2 * j2 + 1) / 6);
        let explained = match method {
            Method::Occlusion => sum_n_squared,
            Method::IntegratedGradients { steps } => sum_n.saturating_mul(2 * steps as u128),
            _ => sum_n,
        };
        let work = u64::try_from(explained.saturating_add(s2 + j2)).unwrap_or(u64::MAX);
        Cost {
            work,
            bytes: trace
                .saturating_mul(copies)
                .saturating_mul(std::mem::size_of::<T>() as u64),
        }
    }

    fn hd(&self) -> usize {
        self.config.decoder.hidden_size
    }

    /// Runs the source `[S]` with the target `y_1 .. y_J` teacher-forced:
    /// step `j` reads `y_j` (the start token at step 0) and its logits
    /// score `y_{j+1}`.
    pub fn forward(&self, source: &[usize], target: &[usize]) -> Result<Seq2SeqTrace<T>, Error> {
        if target.is_empty() {
            return Err(Error::EmptySequence);
        }
        if target.len() > MAX_TARGET_LENGTH {
            return Err(Error::Config {
                key: "target".into(),
                message: format!("{} tokens is more than the {MAX_TARGET_LENGTH} supported", target.len()),
            });
        }
        self.target_embedding.ids(target)?;
        let vectors = self.embed_source(source)?;
        self.run(source, vectors, Decode::Forced(target, None))
    }

    /// Decodes the source greedily: each step reads the previous step's
    /// highest logit, until the end token (`target_end`, kept as the last
    /// output) or `max_len` steps (at most [`MAX_TARGET_LENGTH`]).
    pub fn greedy(&self, source: &[usize], max_len: usize) -> Result<Seq2SeqTrace<T>, Error> {
        let max_len = max_len.clamp(1, MAX_TARGET_LENGTH);
        let vectors = self.embed_source(source)?;
        self.run(source, vectors, Decode::Greedy(max_len))
    }

    fn embed_source(&self, source: &[usize]) -> Result<DMatrix<T>, Error> {
        if source.is_empty() {
            return Err(Error::EmptySequence);
        }
        let ids = self.source_embedding.ids(source)?;
        Ok(Stage::forward(
            &self.source_embedding,
            &Packing::new(&[source.len()]),
            &ids,
        ))
    }

    /// The forward pass over source vectors `[Es, S]`.
    fn run(
        &self,
        source: &[usize],
        source_vectors: DMatrix<T>,
        decode: Decode<'_, T>,
    ) -> Result<Seq2SeqTrace<T>, Error> {
        let s = source_vectors.ncols();
        let packing = Packing::new(&[s]);
        let encoder = Stage::forward(&self.encoder, &packing, &source_vectors);
        let top = encoder.top();
        let (d, hd, et) = (self.config.encoder_width(), self.hd(), self.config.decoder.input_size);
        let keys = match &self.attention {
            DecoderAttention::Additive { key, .. } => {
                let mut k = DMatrix::zeros(key.weight.nrows(), s);
                k.gemm(T::one(), &key.weight, top, T::zero());
                if let Some(b) = &key.bias {
                    for mut col in k.column_iter_mut() {
                        col += b;
                    }
                }
                k
            }
            DecoderAttention::General { bilinear } => bilinear * top,
            DecoderAttention::Dot => DMatrix::zeros(0, s),
        };
        let h0 = match &self.bridge {
            Some(bridge) => {
                let mut last = DVector::zeros(d);
                self.encoder.final_state().gather(&packing, 0, top, last.as_mut_slice());
                bridge.forward(&last).map(tanh)
            }
            None => DVector::zeros(hd),
        };
        let (capacity, target_vectors) = match &decode {
            Decode::Forced(target, vectors) => {
                let inputs: Vec<usize> = std::iter::once(self.config.target_start)
                    .chain(target.iter().copied())
                    .take(target.len())
                    .collect();
                let vectors = match vectors {
                    Some(v) => v.clone(),
                    None => {
                        let ids = self.target_embedding.ids(&inputs)?;
                        Stage::forward(&self.target_embedding, &Packing::new(&[inputs.len()]), &ids)
                    }
                };
                (target.len(), vectors)
            }
            Decode::Greedy(max) => (*max, DMatrix::zeros(et, *max)),
        };
        let (record, memory) = (self.cell.shape().record, self.cell.shape().memory);
        let a = match &self.attention {
            DecoderAttention::Additive { score, .. } => score.len(),
            _ => 0,
        };
        let mut tr = Seq2SeqTrace {
            model: self.fingerprint,
            source: source.to_vec(),
            target: Vec::with_capacity(capacity),
            x: DMatrix::zeros(self.config.decoder_input_width(), capacity),
            record: DMatrix::zeros(record, capacity),
            memory: DMatrix::zeros(memory, capacity),
            h: DMatrix::zeros(hd, capacity),
            hidden: DMatrix::zeros(a, s * capacity),
            weights: DMatrix::zeros(s, capacity),
            context: DMatrix::zeros(d, capacity),
            combined: DMatrix::zeros(hd, capacity),
            out: DMatrix::zeros(hd, capacity),
            logits: DMatrix::zeros(self.config.target_vocab_size, capacity),
            packing,
            source_vectors,
            target_vectors,
            encoder: std::sync::Arc::new(encoder),
            keys,
            h0,
        };
        // Per-step scratch, allocated once per pass.
        let mut scores = DVector::zeros(s);
        let mut query = DVector::zeros(a);
        let mut joined = DVector::zeros(d + hd);
        // The cell's scratch, and its zero initial memory.
        let mut scratch = Workspace::new();
        let zero_memory = vec![T::zero(); memory];
        for j in 0..capacity {
            if let Decode::Greedy(_) = decode {
                let id = if j == 0 {
                    self.config.target_start
                } else {
                    argmax(column(&tr.logits, j - 1))
                };
                tr.target_vectors
                    .column_mut(j)
                    .copy_from(&self.target_embedding.vector(id));
            }
            // x_j = [E(y_{j-1}); o_{j-1}].
            tr.x.view_mut((0, j), (et, 1)).copy_from(&tr.target_vectors.column(j));
            if self.config.decoder.input_feeding && j > 0 {
                tr.x.view_mut((et, j), (hd, 1)).copy_from(&tr.out.column(j - 1));
            }
            self.cell_step(&mut tr, j, &zero_memory, &mut scratch);
            self.attend(&mut tr, j, &mut scores, &mut query);
            // o_j = tanh(W_c [ctx_j; h_j] + b_c); logits = W_o o_j + b_o.
            joined.rows_mut(0, d).copy_from(&tr.context.column(j));
            joined.rows_mut(d, hd).copy_from(&tr.h.column(j));
            let mut combined = tr.combined.column_mut(j);
            if let Some(b) = &self.combine.bias {
                combined.copy_from(b);
            }
            combined.gemv(T::one(), &self.combine.weight, &joined, T::one());
            for k in 0..hd {
                tr.out[(k, j)] = tanh(tr.combined[(k, j)]);
            }
            let out = tr.out.column(j);
            let mut logits = tr.logits.column_mut(j);
            if let Some(b) = &self.output.bias {
                logits.copy_from(b);
            }
            logits.gemv(T::one(), &self.output.weight, &out, T::one());
            match &decode {
                Decode::Forced(target, _) => tr.target.push(target[j]),
                Decode::Greedy(_) => {
                    let next = argmax(column(&tr.logits, j));
                    tr.target.push(next);
                    if Some(next) == self.config.target_end {
                        break;
                    }
                }
            }
        }
        let steps = tr.target.len();
        if steps < capacity {
            tr.shrink(steps, s);
        }
        if !tr.logits.iter().all(|v| v.is_finite()) || !tr.out.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFiniteResult { pass: "forward pass" });
        }
        Ok(tr)
    }

    /// One decoder cell step `j` into the trace's column `j`: the cell's
    /// projection of `x_j`, then its step from the state of step `j - 1`
    /// (`h0` and a zero memory at the first step).
    fn cell_step(&self, tr: &mut Seq2SeqTrace<T>, j: usize, zero_memory: &[T], scratch: &mut Workspace<T>) {
        let shape = self.cell.shape();
        let (ex, hd, m, p, r) = (tr.x.nrows(), self.hd(), shape.memory, shape.projection, shape.record);
        self.cell
            .project(Block::of(&tr.x, 0, ex, j, 1), BlockMut::of(&mut tr.record, 0, p, j, 1));
        let (h_before, h_now) = tr.h.as_mut_slice().split_at_mut(j * hd);
        let (m_before, m_now) = tr.memory.as_mut_slice().split_at_mut(j * m);
        let previous = if j == 0 {
            State {
                h: block(tr.h0.as_slice(), hd, 1),
                memory: block(zero_memory, m, 1),
            }
        } else {
            State {
                h: block(&h_before[(j - 1) * hd..], hd, 1),
                memory: block(&m_before[(j - 1) * m..], m, 1),
            }
        };
        let next = StateMut {
            h: block_mut(h_now, hd, 1),
            memory: block_mut(m_now, m, 1),
        };
        self.cell.step(StepForward {
            previous,
            record: BlockMut::of(&mut tr.record, 0, r, j, 1),
            next,
            scratch,
        });
    }

    /// The state before decoder step `j` and after it, and its record.
    fn cell_view<'a>(&self, tr: &'a Seq2SeqTrace<T>, j: usize, zero_memory: &'a [T]) -> Step<'a, T> {
        let (hd, m) = (self.hd(), self.cell.shape().memory);
        let previous = if j == 0 {
            State {
                h: block(tr.h0.as_slice(), hd, 1),
                memory: block(zero_memory, m, 1),
            }
        } else {
            State {
                h: Block::of(&tr.h, 0, hd, j - 1, 1),
                memory: Block::of(&tr.memory, 0, m, j - 1, 1),
            }
        };
        Step {
            x: Block::of(&tr.x, 0, tr.x.nrows(), j, 1),
            previous,
            record: Block::of(&tr.record, 0, tr.record.nrows(), j, 1),
            next: State {
                h: Block::of(&tr.h, 0, hd, j, 1),
                memory: Block::of(&tr.memory, 0, m, j, 1),
            },
        }
    }

    /// The attention of step `j`: scores, weights and context.
    fn attend(&self, tr: &mut Seq2SeqTrace<T>, j: usize, scores: &mut DVector<T>, query: &mut DVector<T>) {
        let s = tr.weights.nrows();
        let top = tr.encoder.top();
        let h = tr.h.column(j);
        match &self.attention {
            DecoderAttention::Additive { query: q, score, .. } => {
                query.gemv(T::one(), q, &h, T::zero());
                let a = score.len();
                for pos in 0..s {
                    let mut e = T::zero();
                    for k in 0..a {
                        let u = tanh(tr.keys[(k, pos)] + query[k]);
                        tr.hidden[(k, j * s + pos)] = u;
                        e += score[k] * u;
                    }
                    scores[pos] = e;
                }
            }
            DecoderAttention::General { .. } => scores.gemv_tr(T::one(), &tr.keys, &h, T::zero()),
            DecoderAttention::Dot => scores.gemv_tr(T::one(), top, &h, T::zero()),
        }
        let max = scores.iter().copied().fold(scores[0], |m, v| if v > m { v } else { m });
        let mut total = T::zero();
        for pos in 0..s {
            let w = (scores[pos] - max).exp();
            tr.weights[(pos, j)] = w;
            total += w;
        }
        for pos in 0..s {
            tr.weights[(pos, j)] /= total;
        }
        let mut context = tr.context.column_mut(j);
        context.gemv(T::one(), top, &tr.weights.column(j), T::zero());
    }

    fn check_trace(&self, trace: &Seq2SeqTrace<T>, step: usize, token: usize) -> Result<(), Error> {
        if trace.model != self.fingerprint {
            return Err(Error::TraceFromAnotherModel);
        }
        if step >= trace.steps() {
            return Err(Error::PositionOutOfRange {
                position: step,
                len: trace.steps(),
            });
        }
        if token >= self.config.target_vocab_size {
            return Err(Error::TargetOutOfRange {
                target: token,
                classes: self.config.target_vocab_size,
            });
        }
        Ok(())
    }

    /// LRP of logit `token` of step `step` (`docs/seq2seq.md`): back
    /// through the output layer, the combination, the attention pooling
    /// (weights as connection weights) into the encoder outputs, and the
    /// decoder's recurrence (and input feed) to step 0; then through the
    /// encoder to the source embeddings.
    pub fn lrp(
        &self,
        trace: &Seq2SeqTrace<T>,
        step: usize,
        token: usize,
        rules: &Composite<T>,
    ) -> Result<Seq2SeqExplanation<T>, Error> {
        self.check_trace(trace, step, token)?;
        let mut workspace = Workspace::new();
        let (s, d, hd, et) = (
            trace.source.len(),
            self.config.encoder_width(),
            self.hd(),
            self.config.decoder.input_size,
        );
        let ex = self.config.decoder_input_width();
        let head = rules.rule_at(&Site::head());
        let pooling = rules.rule_at(&Site::attention());
        let combine = rules.rule_at(&Site::new(DECODER, Operation::Projection("combine")));
        let cell_rules = rules.cell_of(DECODER);
        let m = self.cell.shape().memory;
        let mut unexplained = T::zero();
        let mut initial = T::zero();
        // Boards: the encoder's top outputs [D, S], the target inputs [Et, j+1].
        let mut board = DMatrix::<T>::zeros(d, s);
        let mut target_rel = DMatrix::<T>::zeros(et, step + 1);
        // Per-step buffers, allocated once.
        let mut r_logits = vec![T::zero(); self.config.target_vocab_size];
        let mut r_out = vec![T::zero(); hd];
        let (mut r_ctx, mut r_h_comb) = (vec![T::zero(); d], vec![T::zero(); hd]);
        // What reaches h_j and the cell's memory, and what the cell sends
        // to those of step j - 1.
        let (mut r_h, mut r_c) = (vec![T::zero(); hd], vec![T::zero(); m]);
        let (mut r_h_prev, mut r_c_prev) = (vec![T::zero(); hd], vec![T::zero(); m]);
        let mut r_x = vec![T::zero(); ex];
        let mut scratch = Workspace::new();
        let zero_memory = vec![T::zero(); m];

        r_logits[token] = trace.logits[(token, step)];
        unexplained += self.output.redistribute(
            head,
            column(&trace.out, step),
            column(&trace.logits, step),
            &r_logits,
            &mut r_out,
            &mut workspace,
        );
        let (wc_ctx, wc_h) = (self.combine.weight.columns(0, d), self.combine.weight.columns(d, hd));
        let bias_c = self.combine.bias.as_ref().map(|b| b.as_slice());
        for j in (0..=step).rev() {
            // o_j = tanh(W_c [ctx_j; h_j] + b_c): tanh passes, then one step.
            if r_out.iter().any(|v| !v.is_zero()) {
                r_ctx.fill(T::zero());
                r_h_comb.fill(T::zero());
                let groups = [
                    InputGroup {
                        input: column(&trace.context, j),
                        connection: Connection::Dense(wc_ctx),
                    },
                    InputGroup {
                        input: column(&trace.h, j),
                        connection: Connection::Dense(wc_h),
                    },
                ];
                let step_c = LinearStep {
                    groups: &groups,
                    bias: bias_c,
                    output: column(&trace.combined, j),
                };
                unexplained += combine.redistribute(&step_c, &r_out, &mut [&mut r_ctx, &mut r_h_comb], &mut workspace);
                // ctx_j = sum_s a_js H_s: the weights are connection weights.
                let groups = [InputGroup {
                    input: trace.encoder.top().as_slice(),
                    connection: Connection::Pooling(column(&trace.weights, j)),
                }];
                let step_p = LinearStep {
                    groups: &groups,
                    bias: None,
                    output: column(&trace.context, j),
                };
                unexplained += pooling.redistribute(&step_p, &r_ctx, &mut [board.as_mut_slice()], &mut workspace);
                for (r, &v) in r_h.iter_mut().zip(&r_h_comb) {
                    *r += v;
                }
            }
            // The cell: R(h_j), R(c_j) -> R(x_j), R(h_{j-1}), R(c_{j-1}).
            r_x.fill(T::zero());
            r_h_prev.fill(T::zero());
            r_c_prev.fill(T::zero());
            let mut lost = [T::zero()];
            self.cell.lrp_step(
                self.cell_view(trace, j, &zero_memory),
                StepLrp {
                    relevance: State {
                        h: block(&r_h, hd, 1),
                        memory: block(&r_c, m, 1),
                    },
                    x: block_mut(&mut r_x, ex, 1),
                    previous: StateMut {
                        h: block_mut(&mut r_h_prev, hd, 1),
                        memory: block_mut(&mut r_c_prev, m, 1),
                    },
                    rules: &cell_rules,
                    scratch: &mut scratch,
                    steps: LinearSteps {
                        workspace: &mut workspace,
                        unexplained: &mut lost,
                    },
                },
            );
            unexplained += lost[0];
            std::mem::swap(&mut r_h, &mut r_h_prev);
            std::mem::swap(&mut r_c, &mut r_c_prev);
            target_rel.column_mut(j).copy_from_slice(&r_x[..et]);
            r_out.fill(T::zero());
            if self.config.decoder.input_feeding {
                if j > 0 {
                    r_out.copy_from_slice(&r_x[et..]);
                } else {
                    // o_{-1} = 0 is an initial state.
                    initial += r_x[et..].iter().fold(T::zero(), |a, &b| a + b);
                }
            }
        }
        // What reached h_{-1}, c_{-1}.
        initial += r_c.iter().fold(T::zero(), |a, &b| a + b);
        match &self.bridge {
            Some(bridge) => {
                let rule = rules.rule_at(&Site::new(DECODER, Operation::Projection("bridge")));
                let mut last = DVector::zeros(d);
                let final_state = self.encoder.final_state();
                final_state.gather(&trace.packing, 0, trace.encoder.top(), last.as_mut_slice());
                let pre: Vec<T> = {
                    let mut p = bridge.bias.clone().unwrap_or_else(|| DVector::zeros(hd));
                    p.gemv(T::one(), &bridge.weight, &last, T::one());
                    p.as_slice().to_vec()
                };
                let mut r_last = vec![T::zero(); d];
                unexplained += bridge.redistribute(rule, last.as_slice(), &pre, &r_h, &mut r_last, &mut workspace);
                final_state.scatter(&trace.packing, 0, &mut board, &r_last);
            }
            None => initial += r_h.iter().fold(T::zero(), |a, &b| a + b),
        }
        // The encoder, then the source embedding (a token keeps its vector's).
        let mut context = Backward::new(&trace.packing, rules, vec![true]);
        let mut source_rel = DMatrix::<T>::zeros(self.config.encoder.input_size, s);
        Stage::lrp(
            &self.encoder,
            trace.encoder.as_ref(),
            &trace.source_vectors,
            &board,
            &mut source_rel,
            &mut context,
        );
        context.check(
            Port::positions(self.config.encoder.input_size),
            &mut source_rel,
            "the encoder",
            || Stage::rule_names(&self.encoder, rules),
        );
        let (leftovers, mut failures) = context.finish();
        if let Some(e) = failures[0].take() {
            return Err(e);
        }
        let explanation = Seq2SeqExplanation {
            step,
            token,
            score: trace.logits[(token, step)],
            source_relevance: Relevance::from_matrix(source_rel),
            target_relevance: Relevance::from_matrix(target_rel),
            initial_state_relevance: initial + leftovers.initial_state[0],
            unexplained_relevance: unexplained + leftovers.unexplained[0],
        };
        let finite = explanation.source_relevance.as_slice().iter().all(|v| v.is_finite())
            && explanation.target_relevance.as_slice().iter().all(|v| v.is_finite())
            && explanation.initial_state_relevance.is_finite()
            && explanation.unexplained_relevance.is_finite();
        if !finite {
            return Err(Error::NonFiniteRelevance {
                method: "lrp",
                stage: "the decoder".into(),
                rules: "the decoder's rules".into(),
                position: None,
            });
        }
        Ok(explanation)
    }
}

/// What a method attributes to one logit of one step: per source position
/// `[S]` and per decoder input `[j + 1]` (the start token and the target
/// prefix), with the LRP leftovers.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqAttribution<T: Float> {
    /// Per source position `[S]`.
    pub source: Vec<T>,
    /// Per decoder input `0 ..= j` `[j + 1]`.
    pub target: Vec<T>,
    /// LRP only: relevance that reached the initial states.
    pub initial_state_relevance: Option<T>,
    /// LRP only: relevance dropped at zero denominators.
    pub unexplained_relevance: Option<T>,
}

impl<T: Float> Seq2Seq<T> {
    /// The gradient of logit `token` of step `step` with respect to the
    /// source vectors and the decoder's input vectors up to the step: exact,
    /// through the softmax and score function of the attention, the input
    /// feed and the bridge.
    pub fn gradient(&self, trace: &Seq2SeqTrace<T>, step: usize, token: usize) -> Result<Seq2SeqGradient<T>, Error> {
        self.check_trace(trace, step, token)?;
        let (s, d, hd, et) = (
            trace.source.len(),
            self.config.encoder_width(),
            self.hd(),
            self.config.decoder.input_size,
        );
        let top = trace.encoder.top();
        let mut d_top = DMatrix::<T>::zeros(d, s);
        let mut d_keys = DMatrix::<T>::zeros(trace.keys.nrows(), s);
        let mut d_target = DMatrix::<T>::zeros(et, step + 1);
        let mut d_out: DVector<T> = self.output.weight.row(token).transpose();
        let m = self.cell.shape().memory;
        let (mut d_h, mut d_c) = (DVector::<T>::zeros(hd), DVector::<T>::zeros(m));
        let (mut d_h_prev, mut d_c_prev) = (DVector::<T>::zeros(hd), DVector::<T>::zeros(m));
        let mut d_comb = DVector::<T>::zeros(hd);
        let mut d_joined = DVector::<T>::zeros(d + hd);
        let (mut d_a, mut d_e) = (DVector::<T>::zeros(s), DVector::<T>::zeros(s));
        let mut d_q = DVector::<T>::zeros(trace.hidden.nrows());
        let p = self.cell.shape().projection;
        let mut d_projection = DVector::<T>::zeros(p);
        let ex = self.config.decoder_input_width();
        let mut d_x = DVector::<T>::zeros(ex);
        let mut scratch = Workspace::new();
        let zero_memory = vec![T::zero(); m];
        for j in (0..=step).rev() {
            if j == step || self.config.decoder.input_feeding {
                for k in 0..hd {
                    let o = trace.out[(k, j)];
                    d_comb[k] = d_out[k] * (T::one() - o * o);
                }
                d_joined.gemv_tr(T::one(), &self.combine.weight, &d_comb, T::zero());
                let d_ctx = d_joined.rows(0, d);
                d_h += d_joined.rows(d, hd);
                let a = trace.weights.column(j);
                d_top.ger(T::one(), &d_ctx, &a, T::one());
                d_a.gemv_tr(T::one(), top, &d_ctx, T::zero());
                let mean = a.dot(&d_a);
                for pos in 0..s {
                    d_e[pos] = a[pos] * (d_a[pos] - mean);
                }
                let h = trace.h.column(j);
                match &self.attention {
                    DecoderAttention::Dot => {
                        d_top.ger(T::one(), &h, &d_e, T::one());
                        d_h.gemv(T::one(), top, &d_e, T::one());
                    }
                    DecoderAttention::General { .. } => {
                        d_h.gemv(T::one(), &trace.keys, &d_e, T::one());
                        d_keys.ger(T::one(), &h, &d_e, T::one());
                    }
                    DecoderAttention::Additive { query, score, .. } => {
                        d_q.fill(T::zero());
                        for pos in 0..s {
                            for k in 0..score.len() {
                                let u = trace.hidden[(k, j * s + pos)];
                                let du = score[k] * d_e[pos] * (T::one() - u * u);
                                d_keys[(k, pos)] += du;
                                d_q[k] += du;
                            }
                        }
                        d_h.gemv_tr(T::one(), query, &d_q, T::one());
                    }
                }
            }
            // The cell: the gradient at h_j and c_j -> at x_j, h_{j-1}, c_{j-1}.
            d_h_prev.fill(T::zero());
            d_c_prev.fill(T::zero());
            self.cell.gradient_step(
                self.cell_view(trace, j, &zero_memory),
                StepGradient {
                    next: State {
                        h: block(d_h.as_slice(), hd, 1),
                        memory: block(d_c.as_slice(), m, 1),
                    },
                    projection: block_mut(d_projection.as_mut_slice(), p, 1),
                    previous: StateMut {
                        h: block_mut(d_h_prev.as_mut_slice(), hd, 1),
                        memory: block_mut(d_c_prev.as_mut_slice(), m, 1),
                    },
                    scratch: &mut scratch,
                },
            );
            d_x.fill(T::zero());
            self.cell.project_gradient(
                block(d_projection.as_slice(), p, 1),
                block_mut(d_x.as_mut_slice(), ex, 1),
            );
            std::mem::swap(&mut d_h, &mut d_h_prev);
            std::mem::swap(&mut d_c, &mut d_c_prev);
            d_target.column_mut(j).copy_from(&d_x.rows(0, et));
            if self.config.decoder.input_feeding && j > 0 {
                d_out.copy_from(&d_x.rows(et, hd));
            }
        }
        if let Some(bridge) = &self.bridge {
            for k in 0..hd {
                let h0 = trace.h0[k];
                d_h[k] *= T::one() - h0 * h0;
            }
            let d_last = bridge.weight.tr_mul(&d_h);
            self.encoder
                .final_state()
                .scatter(&trace.packing, 0, &mut d_top, d_last.as_slice());
        }
        match &self.attention {
            DecoderAttention::Additive { key, .. } => d_top.gemm_tr(T::one(), &key.weight, &d_keys, T::one()),
            DecoderAttention::General { bilinear } => d_top.gemm_tr(T::one(), bilinear, &d_keys, T::one()),
            DecoderAttention::Dot => {}
        }
        let mut d_source = DMatrix::<T>::zeros(self.config.encoder.input_size, s);
        Stage::gradient(
            &self.encoder,
            &trace.packing,
            trace.encoder.as_ref(),
            &trace.source_vectors,
            &d_top,
            &mut d_source,
        );
        if !d_source.iter().chain(d_target.iter()).all(|v| v.is_finite()) {
            return Err(Error::NonFiniteResult { pass: "gradient" });
        }
        Ok(Seq2SeqGradient {
            source: d_source,
            target: d_target,
        })
    }

    /// The same source and teacher-forced target up to `step`, from input
    /// vectors `[Es, S]` and `[Et, step + 1]`: logit `token` of the last step.
    fn logit_of(
        &self,
        trace: &Seq2SeqTrace<T>,
        step: usize,
        token: usize,
        source: DMatrix<T>,
        target: DMatrix<T>,
    ) -> Result<(T, Seq2SeqTrace<T>), Error> {
        let tr = self.run(
            &trace.source,
            source,
            Decode::Forced(&trace.target[..=step], Some(target)),
        )?;
        Ok((tr.logits[(token, step)], tr))
    }

    /// Attributes logit `token` of step `step` by `method`: LRP, or the
    /// baselines of `docs/rules.md` on the source vectors and the decoder's
    /// input vectors (occlusion zeroes one vector at a time; integrated
    /// gradients scale all of them from zero).
    pub fn attribute(
        &self,
        trace: &Seq2SeqTrace<T>,
        step: usize,
        token: usize,
        method: crate::Method<'_, T>,
    ) -> Result<Seq2SeqAttribution<T>, Error> {
        use crate::Method;
        self.check_trace(trace, step, token)?;
        let sums = |m: &DMatrix<T>| m.column_iter().map(|c| c.sum()).collect::<Vec<T>>();
        let target_vectors = || trace.target_vectors.columns(0, step + 1).into_owned();
        let plain = |source: Vec<T>, target: Vec<T>| Seq2SeqAttribution {
            source,
            target,
            initial_state_relevance: None,
            unexplained_relevance: None,
        };
        let found = match method {
            Method::Lrp(rules) => {
                let e = self.lrp(trace, step, token, rules)?;
                Seq2SeqAttribution {
                    source: e.source_relevance.per_position(),
                    target: e.target_relevance.per_position(),
                    initial_state_relevance: Some(e.initial_state_relevance),
                    unexplained_relevance: Some(e.unexplained_relevance),
                }
            }
            Method::Sensitivity => {
                let g = self.gradient(trace, step, token)?;
                plain(sums(&g.source.map(|v| v * v)), sums(&g.target.map(|v| v * v)))
            }
            Method::GradientTimesInput => {
                let g = self.gradient(trace, step, token)?;
                plain(
                    sums(&g.source.component_mul(&trace.source_vectors)),
                    sums(&g.target.component_mul(&target_vectors())),
                )
            }
            Method::Occlusion => {
                let score = trace.logits[(token, step)];
                let mut source = Vec::with_capacity(trace.source.len());
                for pos in 0..trace.source.len() {
                    let mut x = trace.source_vectors.clone();
                    x.column_mut(pos).fill(T::zero());
                    source.push(score - self.logit_of(trace, step, token, x, target_vectors())?.0);
                }
                let mut target = Vec::with_capacity(step + 1);
                for pos in 0..=step {
                    let mut y = target_vectors();
                    y.column_mut(pos).fill(T::zero());
                    target.push(score - self.logit_of(trace, step, token, trace.source_vectors.clone(), y)?.0);
                }
                plain(source, target)
            }
            Method::IntegratedGradients { steps } => {
                method.validate()?;
                let (x, y) = (&trace.source_vectors, target_vectors());
                let (mut gx, mut gy) = (
                    DMatrix::<T>::zeros(x.nrows(), x.ncols()),
                    DMatrix::<T>::zeros(y.nrows(), y.ncols()),
                );
                for m in 1..=steps {
                    let alpha = T::of_f64(m as f64 / steps as f64);
                    let (_, tr) = self.logit_of(trace, step, token, x * alpha, &y * alpha)?;
                    let g = self.gradient(&tr, step, token)?;
                    gx += g.source;
                    gy += g.target;
                }
                let n = T::of_f64(steps as f64);
                plain(sums(&(gx.component_mul(x) / n)), sums(&(gy.component_mul(&y) / n)))
            }
        };
        if !found.source.iter().chain(&found.target).all(|v| v.is_finite()) {
            return Err(Error::NonFiniteRelevance {
                method: method.name(),
                stage: "result".into(),
                rules: String::new(),
                position: None,
            });
        }
        Ok(found)
    }
}

impl<T: Float> Seq2SeqTrace<T> {
    /// Keeps the first `steps` columns of every per-step matrix.
    fn shrink(&mut self, steps: usize, s: usize) {
        let keep = |m: &mut DMatrix<T>, cols: usize| {
            *m = m.columns(0, cols).into_owned();
        };
        for m in [
            &mut self.target_vectors,
            &mut self.x,
            &mut self.record,
            &mut self.memory,
            &mut self.h,
            &mut self.weights,
            &mut self.context,
            &mut self.combined,
            &mut self.out,
            &mut self.logits,
        ] {
            keep(m, steps);
        }
        keep(&mut self.hidden, steps * s);
    }
}

/// The index of the largest value (the first on ties).
fn argmax<T: Float>(values: &[T]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(0, |best, (k, &v)| if v > values[best] { k } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faithfulness::SplitMix64;
    use crate::Tensor;

    /// A seeded random model of this shape.
    fn model(cell: &str, dec: &str, bi: bool, layers: usize, kind: &str, feeding: bool, bridge: bool) -> Seq2Seq<f64> {
        let hd = if kind == "dot" {
            if bi {
                8
            } else {
                4
            }
        } else {
            6
        };
        let kind_of = |k: &str| match k {
            "additive" => AttentionKind::Additive,
            "general" => AttentionKind::General,
            _ => AttentionKind::Dot,
        };
        let cell_of = |c: &str| if c == "lstm" { CellKind::Lstm } else { CellKind::Gru };
        let config = Seq2SeqConfig {
            format: "lrp-model".into(),
            version: 1,
            architecture: ARCHITECTURE.into(),
            layout: Layout::Pytorch,
            weights: "w".into(),
            source_vocab_size: 9,
            source_vocab: None,
            target_vocab_size: 7,
            target_vocab: None,
            unk_token: None,
            lowercase: false,
            target_start: 1,
            target_end: Some(2),
            encoder: EncoderConfig {
                cell: cell_of(cell),
                input_size: 3,
                hidden_size: 4,
                num_layers: layers,
                bidirectional: bi,
                recurrent_activation: None,
                gru_reset: None,
                forget_bias: None,
            },
            decoder: DecoderConfig {
                cell: cell_of(dec),
                input_size: 5,
                hidden_size: hd,
                input_feeding: feeding,
                init: if bridge { DecoderInit::Bridge } else { DecoderInit::Zero },
            },
            attention: AttentionConfig {
                kind: kind_of(kind),
                size: (kind == "additive").then_some(5),
            },
        };
        let mut rng = SplitMix64(7);
        let mut tensors = Tensors::new();
        for (name, shape) in seq2seq_manifest(&config).unwrap() {
            let values = (0..shape.iter().product()).map(|_| rng.next_signed() * 0.6).collect();
            tensors.insert(name, Tensor { shape, values });
        }
        Seq2Seq::from_config(config, tensors).unwrap()
    }

    #[test]
    fn relevance_is_conserved_with_bias_factor_one() {
        let rules = Composite::epsilon(0.0, 1.0).unwrap();
        for (cell, dec, bi, layers, kind, feeding, bridge) in [
            ("lstm", "lstm", false, 1, "dot", false, false),
            ("lstm", "lstm", true, 2, "additive", true, true),
            ("gru", "gru", true, 1, "general", true, false),
            ("gru", "lstm", false, 2, "additive", false, true),
            ("lstm", "gru", true, 1, "dot", true, true),
        ] {
            let m = model(cell, dec, bi, layers, kind, feeding, bridge);
            let trace = m.forward(&[3, 1, 4, 1, 5], &[6, 2, 5, 3]).unwrap();
            for step in 0..4 {
                let token = trace.target()[step];
                let e = m.lrp(&trace, step, token, &rules).unwrap();
                let total = e.source_relevance.total()
                    + e.target_relevance.total()
                    + e.initial_state_relevance
                    + e.unexplained_relevance;
                assert!(
                    (total - e.score).abs() <= 1e-12 * e.score.abs().max(1.0),
                    "{cell}/{dec} bi={bi} {kind} feeding={feeding} bridge={bridge} step {step}: {total} vs {}",
                    e.score
                );
            }
        }
    }
}
