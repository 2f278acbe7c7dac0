//! The architecture description of `config.json` (`docs/model-format.md`).
//!
//! Only the shape of the model lives here; reading the file and the weights
//! is `lrp-io`'s job. Unknown keys are rejected, so a typo cannot silently
//! describe a different model.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The whole `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Must be `"lrp-model"`.
    pub format: String,
    /// Must be `1`.
    pub version: u32,
    /// Tensor names and gate order.
    pub layout: Layout,
    /// Weights file, relative to the model directory.
    pub weights: String,
    /// Whether the model starts with `embedding.weight` `[V, E]` and reads tokens.
    #[serde(default)]
    pub embedding: bool,
    /// Rows of the embedding `V` (required with `embedding`).
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Vocabulary file, one token a line (line k is embedding row k).
    #[serde(default)]
    pub vocab: Option<String>,
    /// Token that unknown words map to; without it unknown words are an error.
    #[serde(default)]
    pub unk_token: Option<String>,
    /// Whether text is lowercased before vocabulary lookup (default false).
    #[serde(default)]
    pub lowercase: bool,
    /// A convolutional front end over time in front of the encoder, in
    /// order (empty: none). Written only when there is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "front_layers")]
    pub front: Vec<FrontLayer>,
    /// The recurrent encoder.
    pub encoder: EncoderConfig,
    /// Attention pooling, or `null`.
    #[serde(default)]
    pub attention: Option<AttentionConfig>,
    /// The linear head.
    pub head: HeadConfig,
    /// Class names, `[C]`.
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

/// Tensor naming and gate order of the weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Layout {
    /// PyTorch `state_dict()` names, gates i, f, g, o (LSTM) / r, z, n (GRU).
    Pytorch,
    /// The numpy release of Arras et al. 2017: gates i, g, f, o, `_Left`/`_Right`.
    Reference,
    /// Keras (`keras.layers.LSTM`, `GRU`, `Bidirectional`, `Dense`): kernels
    /// `[in, G H]`, gates i, f, c, o (LSTM) / z, r, h (GRU), one bias
    /// (two rows `[2, 3H]` for a GRU with `reset_after`).
    Keras,
    /// ONNX `LSTM` / `GRU` operators: `W` `[dirs, G H, in]`, `R` `[dirs, G H, H]`,
    /// `B` `[dirs, 2 G H]` = `[Wb; Rb]`, gates i, o, f, c (LSTM) / z, r, h (GRU).
    Onnx,
    /// TensorFlow 1 `LSTMCell`: one kernel `[in + H, 4H]` over `[x; h]`, one
    /// bias `[4H]`, gates i, j, f, o (LSTM only).
    Tf1,
}

/// The activation of the gates (LSTM i, f, o; GRU r, z), config key
/// `encoder.recurrent_activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecurrentActivation {
    /// `σ(x) = 1 / (1 + e^{-x})` (PyTorch, ONNX, TF1 and Keras' default).
    #[default]
    Sigmoid,
    /// Keras 2's `hard_sigmoid`, ONNX `HardSigmoid` with its defaults:
    /// `clip(0.2 x + 0.5, 0, 1)`.
    #[serde(rename = "hard_sigmoid_keras2")]
    HardSigmoidKeras2,
    /// Keras 3's `hard_sigmoid` (PyTorch `hardsigmoid`): `relu6(x + 3) / 6`.
    #[serde(rename = "hard_sigmoid_keras3")]
    HardSigmoidKeras3,
}

/// Where a GRU applies its reset gate, config key `encoder.gru_reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum GruReset {
    /// After the recurrent product: `n = tanh(W_n x + b_in + r * (U_n h + b_hn))`
    /// (PyTorch, Keras `reset_after=True`, ONNX `linear_before_reset=1`).
    #[default]
    After,
    /// Before it: `n = tanh(W_n x + b_n + U_n (r * h))` (Keras
    /// `reset_after=False`, ONNX `linear_before_reset=0`).
    Before,
}

/// Recurrent cell kind, with PyTorch semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CellKind {
    /// `nn.LSTM`.
    Lstm,
    /// `nn.GRU`.
    Gru,
    /// minGRU (Feng et al. 2024; [`crate::MinGruCell`]): lrp's own
    /// `pytorch` layout only.
    #[serde(rename = "mingru")]
    MinGru,
    /// minLSTM (Feng et al. 2024; [`crate::MinLstmCell`]): lrp's own
    /// `pytorch` layout only.
    #[serde(rename = "minlstm")]
    MinLstm,
}

/// `encoder` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// LSTM or GRU.
    pub cell: CellKind,
    /// Width `E` of the input vectors (the embedding width with an embedding).
    pub input_size: usize,
    /// Hidden size `H` of one direction.
    pub hidden_size: usize,
    /// Stacked layers (default 1).
    #[serde(default = "one")]
    pub num_layers: usize,
    /// Whether each layer runs in both directions (default false).
    #[serde(default)]
    pub bidirectional: bool,
    /// The gates' activation; absent means [`RecurrentActivation::Sigmoid`]
    /// (see [`EncoderConfig::recurrent_activation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent_activation: Option<RecurrentActivation>,
    /// GRU only: where the reset gate acts; absent means
    /// [`GruReset::After`] (see [`EncoderConfig::gru_reset`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gru_reset: Option<GruReset>,
    /// LSTM only: a constant added to the forget gate's pre-activation
    /// (TF1's `forget_bias`, 1.0 there); absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forget_bias: Option<f64>,
}

impl EncoderConfig {
    /// The gates' activation, the default filled in.
    pub fn recurrent_activation(&self) -> RecurrentActivation {
        self.recurrent_activation.unwrap_or_default()
    }

    /// Where a GRU applies its reset gate, the default filled in.
    pub fn gru_reset(&self) -> GruReset {
        self.gru_reset.unwrap_or_default()
    }

    /// The forget gate's constant, the default (0) filled in.
    pub fn forget_bias(&self) -> f64 {
        self.forget_bias.unwrap_or(0.0)
    }
}

fn one() -> usize {
    1
}

/// The most layers a `front` may list.
pub const MAX_FRONT_LAYERS: usize = 64;

/// One layer of the convolutional front end (config key `front`, a list
/// applied over time in order before the encoder), with PyTorch's
/// arguments and defaults. A layer with tensors reads them under
/// `front.{k}.` (`k` its place in the list, from 0), the names of an
/// `nn.Sequential` saved as the attribute `front`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum FrontLayer {
    /// `nn.Conv1d(in_channels, out_channels, kernel_size, stride,
    /// padding, dilation, bias)` with zero padding and one group:
    /// `front.{k}.weight` `[out, in, K]` and `front.{k}.bias` `[out]`.
    Conv1d {
        /// Channels `C_in` it reads.
        in_channels: usize,
        /// Channels `C_out` it writes.
        out_channels: usize,
        /// Taps `K` of the kernel.
        kernel_size: usize,
        /// Step between outputs (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Zero positions added at each end (default 0).
        #[serde(default)]
        padding: usize,
        /// Step between taps (default 1).
        #[serde(default = "one")]
        dilation: usize,
        /// Whether it has `front.{k}.bias` (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `nn.ReLU()`: `max(0, x)`; no tensors. (A variant with braces, so
    /// that a key given to it is refused as unknown.)
    Relu {},
    /// `nn.MaxPool1d(kernel_size, stride, padding, dilation)` over time,
    /// per channel; no tensors.
    Maxpool1d {
        /// Positions `K` in a window.
        kernel_size: usize,
        /// Step between windows; absent means `kernel_size`, as in PyTorch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<usize>,
        /// Positions added at each end, which never win (default 0; at
        /// most half of `dilation (kernel_size - 1) + 1`).
        #[serde(default)]
        padding: usize,
        /// Step between the positions of a window (default 1).
        #[serde(default = "one")]
        dilation: usize,
    },
}

impl FrontLayer {
    /// The value of `kind` as `config.json` writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            FrontLayer::Conv1d { .. } => "conv1d",
            FrontLayer::Relu {} => "relu",
            FrontLayer::Maxpool1d { .. } => "maxpool1d",
        }
    }

    /// How its window slides over time (`None` for a ReLU), with the
    /// defaults filled in: what [`crate::Conv1d`] and [`crate::MaxPool1d`]
    /// are built with.
    pub fn window(&self) -> Option<crate::Window> {
        match *self {
            FrontLayer::Conv1d {
                kernel_size,
                stride,
                padding,
                dilation,
                ..
            } => Some(crate::Window {
                kernel: kernel_size,
                stride,
                padding,
                dilation,
            }),
            FrontLayer::Maxpool1d {
                kernel_size,
                stride,
                padding,
                dilation,
            } => Some(crate::Window {
                kernel: kernel_size,
                stride: stride.unwrap_or(kernel_size),
                padding,
                dilation,
            }),
            FrontLayer::Relu {} => None,
        }
    }

    /// The channels it writes when it reads `width` channels.
    pub fn output_channels(&self, width: usize) -> usize {
        match self {
            FrontLayer::Conv1d { out_channels, .. } => *out_channels,
            FrontLayer::Relu {} | FrontLayer::Maxpool1d { .. } => width,
        }
    }

    /// Its sizes by config key, each with its least value, for the checks.
    fn sizes(&self) -> Vec<(&'static str, usize, usize)> {
        let mut sizes = match *self {
            FrontLayer::Conv1d {
                in_channels,
                out_channels,
                ..
            } => vec![("in_channels", in_channels, 1), ("out_channels", out_channels, 1)],
            _ => Vec::new(),
        };
        if let Some(w) = self.window() {
            sizes.extend([
                ("kernel_size", w.kernel, 1),
                ("stride", w.stride, 1),
                ("padding", w.padding, 0),
                ("dilation", w.dilation, 1),
            ]);
        }
        sizes
    }
}

/// Reads `front`, naming the layer (`front[k]`) in what goes wrong with
/// it, and refusing more than [`MAX_FRONT_LAYERS`] layers.
fn front_layers<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<FrontLayer>, D::Error> {
    struct Layers;
    impl<'de> serde::de::Visitor<'de> for Layers {
        type Value = Vec<FrontLayer>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of front layers")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            use serde::de::Error as _;
            let mut layers = Vec::new();
            loop {
                let k = layers.len();
                if k == MAX_FRONT_LAYERS {
                    return match seq.next_element::<serde::de::IgnoredAny>()? {
                        None => Ok(layers),
                        Some(_) => Err(A::Error::custom(format!("front: more than {MAX_FRONT_LAYERS} layers"))),
                    };
                }
                match seq.next_element::<FrontLayer>() {
                    Ok(Some(layer)) => layers.push(layer),
                    Ok(None) => return Ok(layers),
                    Err(e) => return Err(A::Error::custom(format!("front[{k}]: {e}"))),
                }
            }
        }
    }
    deserializer.deserialize_seq(Layers)
}

fn yes() -> bool {
    true
}

/// Attention score function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AttentionKind {
    /// `e_t = q . tanh(P h_t + b)`, a learned query (Yang et al. 2016).
    Context,
    /// `e_t = s . tanh(K h_t + b + Q last)` (Bahdanau et al. 2015).
    Additive,
    /// `e_t = last . h_t` (Luong et al. 2015).
    Dot,
    /// `e_t = last . (W h_t)` (Luong et al. 2015).
    General,
}

/// `attention` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// Score function.
    pub kind: AttentionKind,
    /// Width `A` of the score network (`context`, `additive`).
    #[serde(default)]
    pub size: Option<usize>,
}

/// What the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HeadInput {
    /// The top layer's final state.
    #[serde(rename = "last")]
    Last,
    /// The attention context `sum_t a_t h_t`.
    #[serde(rename = "context")]
    Context,
    /// `[context; last]`.
    #[serde(rename = "context+last")]
    ContextLast,
    /// The mean of the top layer's outputs over positions.
    #[serde(rename = "mean")]
    Mean,
    /// The maximum of each dimension of the top layer's outputs over
    /// positions.
    #[serde(rename = "max")]
    Max,
    /// Every position's output: a per-step head, one output vector per
    /// position.
    #[serde(rename = "each")]
    Each,
}

/// What the head's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Task {
    /// Class scores: the prediction is the largest.
    #[default]
    Classification,
    /// Real-valued outputs, explained as they are.
    Regression,
}

/// `head` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// What the head reads.
    pub input: HeadInput,
    /// Number of classes `C`.
    pub num_classes: usize,
    /// Whether the head has a bias (default true).
    #[serde(default = "yes")]
    pub bias: bool,
    /// Class scores or real outputs (default classification).
    #[serde(default)]
    pub task: Task,
}

impl Layout {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Pytorch => "pytorch",
            Layout::Reference => "reference",
            Layout::Keras => "keras",
            Layout::Onnx => "onnx",
            Layout::Tf1 => "tf1",
        }
    }
}

impl RecurrentActivation {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            RecurrentActivation::Sigmoid => "sigmoid",
            RecurrentActivation::HardSigmoidKeras2 => "hard_sigmoid_keras2",
            RecurrentActivation::HardSigmoidKeras3 => "hard_sigmoid_keras3",
        }
    }
}

impl GruReset {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            GruReset::After => "after",
            GruReset::Before => "before",
        }
    }
}

impl CellKind {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Lstm => "lstm",
            CellKind::Gru => "gru",
            CellKind::MinGru => "mingru",
            CellKind::MinLstm => "minlstm",
        }
    }

    /// Whether the cell is minGRU or minLSTM, whose gates read only the
    /// input: no recurrent weights, no options, no other framework's layout.
    pub fn is_min(self) -> bool {
        matches!(self, CellKind::MinGru | CellKind::MinLstm)
    }
}

impl AttentionKind {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            AttentionKind::Context => "context",
            AttentionKind::Additive => "additive",
            AttentionKind::Dot => "dot",
            AttentionKind::General => "general",
        }
    }
}

impl HeadInput {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            HeadInput::Last => "last",
            HeadInput::Context => "context",
            HeadInput::ContextLast => "context+last",
            HeadInput::Mean => "mean",
            HeadInput::Max => "max",
            HeadInput::Each => "each",
        }
    }

    /// Whether the head reads the attention context.
    pub fn reads_attention(self) -> bool {
        matches!(self, HeadInput::Context | HeadInput::ContextLast)
    }
}

impl Task {
    /// The value as `config.json` writes it.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

impl ModelConfig {
    /// Width `D` of one position of the top layer's output.
    pub fn output_width(&self) -> usize {
        self.encoder.hidden_size * if self.encoder.bidirectional { 2 } else { 1 }
    }

    /// Width of what the head reads: `D`, or `2D` for `context+last`.
    pub fn head_width(&self) -> usize {
        match self.head.input {
            HeadInput::ContextLast => 2 * self.output_width(),
            HeadInput::Last | HeadInput::Context | HeadInput::Mean | HeadInput::Max | HeadInput::Each => {
                self.output_width()
            }
        }
    }

    /// Width of the model's input vectors: the first convolution's
    /// `in_channels` when `front` has one, else `encoder.input_size`.
    pub fn input_width(&self) -> usize {
        self.front
            .iter()
            .find_map(|layer| match layer {
                FrontLayer::Conv1d { in_channels, .. } => Some(*in_channels),
                _ => None,
            })
            .unwrap_or(self.encoder.input_size)
    }

    /// Checks `front`: every size in its range, each convolution reading
    /// the channels the layers before it write, and the encoder reading
    /// what the last one writes.
    fn validate_front(&self, limit: usize) -> Result<(), Error> {
        if self.front.is_empty() {
            return Ok(());
        }
        let bad = |key: String, message: String| Err(Error::Config { key, message });
        if self.embedding {
            return bad(
                "front".into(),
                "a front end reads vectors; a model with an embedding reads token ids".into(),
            );
        }
        if self.layout != Layout::Pytorch {
            return bad(
                "front".into(),
                format!(
                    "a front end's tensors are named in layout \"pytorch\" only, not \"{}\"",
                    self.layout.name()
                ),
            );
        }
        let mut width = self.input_width();
        for (k, layer) in self.front.iter().enumerate() {
            let kind = layer.kind();
            for (key, value, least) in layer.sizes() {
                if value < least {
                    return bad(format!("front[{k}].{key}"), format!("{kind}: must be at least {least}"));
                }
                if value > limit {
                    return bad(
                        format!("front[{k}].{key}"),
                        format!("{kind}: {value} is larger than the supported {limit}"),
                    );
                }
            }
            match layer {
                FrontLayer::Conv1d { in_channels, .. } if *in_channels != width => {
                    return bad(
                        format!("front[{k}].in_channels"),
                        format!("conv1d: {in_channels}, but the layers before it write {width} channels"),
                    );
                }
                FrontLayer::Maxpool1d {
                    kernel_size,
                    padding,
                    dilation,
                    ..
                } if 2 * padding > dilation * (kernel_size - 1) + 1 => {
                    return bad(
                        format!("front[{k}].padding"),
                        format!(
                            "maxpool1d: {padding} is more than half of dilation x (kernel_size - 1) + 1 = {}",
                            dilation * (kernel_size - 1) + 1
                        ),
                    );
                }
                _ => {}
            }
            width = layer.output_channels(width);
        }
        if width != self.encoder.input_size {
            return bad(
                "encoder.input_size".into(),
                format!("{}, but the front end writes {width} channels", self.encoder.input_size),
            );
        }
        Ok(())
    }

    /// Whether the head gives one output vector per position (`"each"`).
    pub fn per_step(&self) -> bool {
        self.head.input == HeadInput::Each
    }

    /// Checks every value and every combination before anything is built.
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
        let e = &self.encoder;
        for (key, value) in [
            ("encoder.input_size", e.input_size),
            ("encoder.hidden_size", e.hidden_size),
            ("encoder.num_layers", e.num_layers),
            ("head.num_classes", self.head.num_classes),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        // Far beyond any real recurrent model; keeps a hostile config from
        // asking for terabytes before a single weight is checked.
        const LIMIT: usize = 1 << 16;
        for (key, value) in [
            ("encoder.input_size", e.input_size),
            ("encoder.hidden_size", e.hidden_size),
            ("encoder.num_layers", e.num_layers),
            ("head.num_classes", self.head.num_classes),
        ] {
            if value > LIMIT {
                return bad(key, format!("{value} is larger than the supported {LIMIT}"));
            }
        }
        self.validate_front(LIMIT)?;
        if e.gru_reset.is_some() && e.cell != CellKind::Gru {
            return bad(
                "encoder.gru_reset",
                format!("applies to a GRU only; this encoder is an {}", e.cell.name()),
            );
        }
        if let Some(value) = e.forget_bias {
            if e.cell != CellKind::Lstm {
                return bad(
                    "encoder.forget_bias",
                    format!("applies to an LSTM only; this encoder is a {}", e.cell.name()),
                );
            }
            // JSON has no NaN or infinity, but a config built in code may.
            if !value.is_finite() {
                return bad("encoder.forget_bias", format!("must be a finite number, found {value}"));
            }
        }
        if e.cell.is_min() {
            if self.layout != Layout::Pytorch {
                return bad(
                    "layout",
                    format!(
                        "a {} is stored in lrp's own \"pytorch\" layout only, found {:?}",
                        e.cell.name(),
                        self.layout.name()
                    ),
                );
            }
            if e.recurrent_activation() != RecurrentActivation::Sigmoid {
                return bad(
                    "encoder.recurrent_activation",
                    format!("a {} has logistic sigmoid gates only", e.cell.name()),
                );
            }
        }
        if self.attention.is_none() && self.head.input.reads_attention() {
            return bad(
                "head.input",
                "reads the attention context, but \"attention\" is null".into(),
            );
        }
        if let Some(att) = &self.attention {
            let needs_size = matches!(att.kind, AttentionKind::Context | AttentionKind::Additive);
            match (needs_size, att.size) {
                (true, None) | (true, Some(0)) => {
                    return bad("attention.size", format!("{:?} attention needs a size >= 1", att.kind))
                }
                (true, Some(s)) if s > LIMIT => return bad("attention.size", format!("{s} is too large")),
                (false, Some(_)) => return bad("attention.size", format!("{:?} attention has no size", att.kind)),
                _ => {}
            }
        }
        if self.embedding {
            match self.vocab_size {
                None | Some(0) => return bad("vocab_size", "an embedding needs vocab_size >= 1".into()),
                Some(v) if v > 1 << 24 => return bad("vocab_size", format!("{v} is too large")),
                _ => {}
            }
        } else if self.vocab_size.is_some() || self.vocab.is_some() || self.unk_token.is_some() {
            return bad(
                "embedding",
                "is false, but vocab_size, vocab or unk_token are given".into(),
            );
        }
        if let Some(labels) = &self.labels {
            if labels.len() != self.head.num_classes {
                return bad(
                    "labels",
                    format!("{} labels for {} classes", labels.len(), self.head.num_classes),
                );
            }
        }
        if matches!(self.layout, Layout::Keras | Layout::Onnx | Layout::Tf1)
            && !(self.weights.ends_with(".npz") || self.weights.ends_with(".safetensors"))
        {
            return bad(
                "weights",
                format!(
                    "layout \"{}\" reads a .npz or a .safetensors file, found {:?}",
                    self.layout.name(),
                    self.weights
                ),
            );
        }
        if self.layout == Layout::Tf1 && e.cell != CellKind::Lstm {
            return bad(
                "layout",
                "\"tf1\" holds LSTMCell weights; a GRU has no tf1 layout".into(),
            );
        }
        if self.layout == Layout::Reference {
            let fits = e.cell == CellKind::Lstm
                && e.num_layers == 1
                && e.bidirectional
                && self.attention.is_none()
                && self.head.input == HeadInput::Last
                && !self.head.bias
                && !self.embedding;
            if !fits {
                return bad(
                    "layout",
                    "\"reference\" holds exactly one bidirectional LSTM layer with a bias-free head on \"last\", no attention, no embedding".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_front(front: &str, input_size: usize) -> Result<ModelConfig, String> {
        let json = format!(
            r#"{{"format": "lrp-model", "version": 1, "layout": "pytorch", "weights": "model.safetensors",
                "front": {front},
                "encoder": {{"cell": "lstm", "input_size": {input_size}, "hidden_size": 4}},
                "head": {{"input": "last", "num_classes": 2}}}}"#
        );
        let config: ModelConfig = serde_json::from_str(&json).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_front_end_reads_pytorchs_arguments_and_defaults() {
        let config = with_front(
            r#"[{"kind": "conv1d", "in_channels": 3, "out_channels": 8, "kernel_size": 5, "padding": 2},
                {"kind": "relu"}, {"kind": "maxpool1d", "kernel_size": 2}]"#,
            8,
        )
        .unwrap();
        assert_eq!(config.input_width(), 3);
        assert_eq!(
            config.front[0],
            FrontLayer::Conv1d {
                in_channels: 3,
                out_channels: 8,
                kernel_size: 5,
                stride: 1,
                padding: 2,
                dilation: 1,
                bias: true
            }
        );
        assert_eq!(
            config.front[2],
            FrontLayer::Maxpool1d {
                kernel_size: 2,
                stride: None,
                padding: 0,
                dilation: 1
            }
        );
        // Written back, the defaults are filled in and an absent stride stays absent.
        let json = serde_json::to_string(&config.front).unwrap();
        assert_eq!(
            json,
            r#"[{"kind":"conv1d","in_channels":3,"out_channels":8,"kernel_size":5,"stride":1,"padding":2,"dilation":1,"bias":true},{"kind":"relu"},{"kind":"maxpool1d","kernel_size":2,"padding":0,"dilation":1}]"#
        );
    }

    #[test]
    fn a_bad_front_layer_is_named_with_its_field() {
        let conv = |fields: &str| format!(r#"[{{"kind": "conv1d", "in_channels": 3, "out_channels": 8, {fields}}}]"#);
        let cases = [
            (
                conv(r#""kernel_size": 0"#),
                8,
                "config: front[0].kernel_size: conv1d: must be at least 1",
            ),
            (
                conv(r#""kernel_size": 3, "stride": 70000"#),
                8,
                "config: front[0].stride: conv1d: 70000 is larger than the supported 65536",
            ),
            (
                conv(r#""kernel_size": 3"#),
                6,
                "config: encoder.input_size: 6, but the front end writes 8 channels",
            ),
            (
                r#"[{"kind": "maxpool1d", "kernel_size": 2, "padding": 2}]"#.to_string(),
                8,
                "config: front[0].padding: maxpool1d: 2 is more than half of dilation x (kernel_size - 1) + 1 = 2",
            ),
        ];
        for (front, input, expected) in &cases {
            assert_eq!(with_front(front, *input).unwrap_err(), *expected);
        }
        // A convolution reading other channels than the layers before it write.
        let two = r#"[{"kind": "conv1d", "in_channels": 3, "out_channels": 8, "kernel_size": 3},
                      {"kind": "conv1d", "in_channels": 4, "out_channels": 8, "kernel_size": 3}]"#;
        assert_eq!(
            with_front(two, 8).unwrap_err(),
            "config: front[1].in_channels: conv1d: 4, but the layers before it write 8 channels"
        );
        // Unknown fields and kinds name the layer.
        let typo = with_front(r#"[{"kind": "relu"}, {"kind": "conv1d", "in_channel": 3}]"#, 8).unwrap_err();
        assert!(typo.starts_with("front[1]: unknown field `in_channel`"), "{typo}");
        let relu = with_front(r#"[{"kind": "relu", "inplace": true}]"#, 8).unwrap_err();
        assert!(relu.starts_with("front[0]: unknown field `inplace`"), "{relu}");
        let kind = with_front(r#"[{"kind": "conv2d"}]"#, 8).unwrap_err();
        assert!(kind.starts_with("front[0]: unknown variant `conv2d`"), "{kind}");
        let many = format!("[{}]", vec![r#"{"kind": "relu"}"#; MAX_FRONT_LAYERS + 1].join(","));
        assert!(with_front(&many, 8)
            .unwrap_err()
            .starts_with("front: more than 64 layers"));
    }
}
