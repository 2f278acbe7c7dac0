//! Reading an ONNX graph of a recurrent classifier into an lrp model
//! (`lrp import FILE.onnx`).
//!
//! The graph is decoded with `prost` from the ONNX types in [`proto`]
//! (generated once from `onnx.proto` by `tools/onnx-proto`, committed).
//! What is translated: an optional embedding `Gather` of the graph's
//! input, then `LSTM` or `GRU` nodes (one per layer, forward or
//! bidirectional, each reading the one before), then a linear head
//! (`Gemm`, or `MatMul` and `Add`) on the top layer's final state (`h_n`,
//! head input `last`) or on its output at the last position (`out[:, -1]`:
//! the same for one direction; for two, the backward half has seen only
//! the last position, and the head is imported as what it is, a per-step
//! head `each` looked at at the last position). Between them only shape
//! operators may touch the data (`Transpose`, `Squeeze`, `Unsqueeze`,
//! `Reshape`, `Concat`, `Slice`, `Gather`, `Expand`, `Identity`,
//! `Flatten`, ...): what exporters put around a recurrent node to lay out
//! its input and pick its states.
//!
//! The graph is run on symbols (module `symbolic`): the input's elements, the
//! embedding's, each layer's states, as arrays moved about by the shape
//! operators, and numbers for everything computed without the input
//! (shapes, indices, initial states, evaluated however they are built). So
//! the import knows which states the head reads, and that each layer reads
//! the one below in order, instead of assuming it. Anything else that reads
//! the data is refused, naming the first such node and what to change in
//! the export.
//!
//! Weights may be in an external data file beside the graph
//! (module `external`).
//!
//! ONNX orders gates `i, o, f, c` (LSTM) and `z, r, h` (GRU) and stores
//! both biases in one `B = [Wb; Rb]`; the import writes them in PyTorch's
//! order `i, f, g, o` and `r, z, n`, as `bias_ih` and `bias_hh`.

#[allow(clippy::all, missing_docs, rustdoc::all)]
#[rustfmt::skip]
pub mod proto;
mod external;
mod scan;
mod symbolic;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use lrp_models::canonize::GateOrder;
use lrp_models::config::{CellKind, Layout};
use lrp_models::{ModelConfig, Tensor};
use prost::Message;

use crate::message::shown;

use crate::{read_file_capped, Error, LimitKind, Limits};

use external::ExternalData;
use proto::{AttributeProto, GraphProto, NodeProto, TensorProto};
use symbolic::{Element, Value};

/// ONNX element types lrp reads weights of.
const FLOAT: i32 = 1;
const DOUBLE: i32 = 11;

/// What `lrp import` made of an ONNX graph.
#[derive(Debug, Clone)]
pub struct OnnxImport {
    /// The model's config (layout `pytorch`, weights `model.safetensors`).
    pub config: ModelConfig,
    /// The tensors in PyTorch's names and gate order, in manifest order.
    pub tensors: Vec<(String, Tensor)>,
    /// Whether any weight was stored as float64 (the model is then written
    /// in float64, else in float32).
    pub double: bool,
    /// What was read, one line per part, for the user to compare with the
    /// model they exported.
    pub notes: Vec<String>,
}

/// What the walk knows of a value.
#[derive(Debug, Clone)]
enum Slot {
    /// Its elements; `data` when any is computed from the graph's input.
    Known { value: Rc<Value>, data: bool },
    /// Not followed, and why (a value only an unsupported node could read).
    Opaque(Rc<str>),
    /// Computed from the data by a node refused once it is clear that the
    /// value is used (a matrix product that is not the head, which an
    /// attention then reads: the attention is the better thing to name).
    Deferred(Rc<Refusal>),
}

/// A refusal of a node, kept until the value it made is used.
#[derive(Debug)]
struct Refusal {
    op: String,
    name: String,
    reason: String,
}

impl Refusal {
    fn error(&self, path: &Path) -> Error {
        Error::Unsupported {
            path: path.to_path_buf(),
            op: self.op.clone(),
            name: self.name.clone(),
            reason: self.reason.clone(),
        }
    }
}

impl Slot {
    fn known(value: Value) -> Self {
        let data = !value.is_constant();
        Slot::Known {
            value: Rc::new(value),
            data,
        }
    }
}

/// The values of the walk by name, and how many elements they hold.
#[derive(Default)]
struct Values<'a> {
    slots: HashMap<&'a str, Slot>,
    held: usize,
}

/// The most elements the walk holds over all values.
const MAX_HELD: usize = 1 << 23;

impl<'a> Values<'a> {
    fn put(&mut self, name: &'a str, slot: Slot) {
        if let Slot::Known { value, .. } = &slot {
            self.held += value.elements.len();
        }
        self.slots.insert(name, slot);
    }

    fn has_room(&self, elements: usize) -> bool {
        self.held.saturating_add(elements) <= MAX_HELD
    }

    /// Whether `name` is the head's product before its bias.
    fn is_product(&self, name: &str) -> bool {
        matches!(self.slots.get(name), Some(Slot::Known { value, .. })
            if value.elements.first().is_some_and(|e| matches!(e, Element::Product { .. })))
    }
}

/// What the walk has found so far.
struct Walk {
    /// The shape of the input's positions (without the component axis of
    /// vectors).
    positions: Vec<usize>,
    /// Whether the input is vectors (else token ids).
    vectors: bool,
    embedding: Option<(Tensor, bool)>,
    layers: Vec<Recurrent>,
    /// The number of positions the layers run over.
    steps: usize,
    head: Option<Head>,
    /// What the head reads.
    reads: Option<HeadReads>,
    double: bool,
}

/// What the head reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadReads {
    /// The top layer's final state, PyTorch's `h_n` (config `"last"`).
    FinalState,
    /// The top layer's output at the last position, `out[:, -1]`: for two
    /// directions the backward half has seen only the last position (a
    /// per-step head, config `"each"`, looked at at the last position).
    LastOutput,
}

/// The operators that only move elements: a refusal waiting on their
/// input waits on their output.
const SHAPE_OPERATORS: [&str; 14] = [
    "Identity",
    "Cast",
    "CastLike",
    "Transpose",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Slice",
    "Gather",
    "Expand",
    "Tile",
    "Shape",
];

/// Why an operator outside the supported graphs is refused.
const NOT_SUPPORTED: &str =
    "not an operator of the supported graphs (embedding, LSTM/GRU layers, final state, linear head)";

/// Why pooling and attention are refused.
const POOLING: &str = "pooling or attention over the states is not imported (the head must read the final state h_n or out[:, -1]); export the model without attention, or explain it with a model directory written by tools/pytorch_models.py";

/// How to say what to change in the export call after a refusal of the
/// graph's shape.
const EXPORT_SHAPE: &str =
    "export a module whose forward() is embedding, LSTM/GRU, then a linear head on h_n or out[:, -1]";

/// One recurrent node as read.
struct Recurrent {
    lstm: bool,
    hidden: usize,
    directions: usize,
    width: usize,
    /// `[directions][G H x width]`, `[directions][G H x H]`, `[directions][2 G H]`
    /// in ONNX gate order.
    w: Tensor,
    r: Tensor,
    b: Option<Tensor>,
    linear_before_reset: bool,
}

/// The linear head as read: `[C, D]` and an optional bias `[C]`.
struct Head {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Reads an ONNX model file within `limits` (its size is limited as a
/// weights file's) and translates it (see the module documentation).
///
/// The counts of the graph's nodes, attributes and other entries are
/// checked against `limits` on the file's bytes before any is decoded; the
/// tensors' `raw_data` are then views of the file, not copies, and each
/// tensor kept is converted once.
pub fn import_onnx(path: &Path, limits: &Limits) -> Result<OnnxImport, Error> {
    let bytes = read_file_capped(path, limits.max_weights_bytes, LimitKind::WeightsBytes)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    import(path, Some(dir), prost::bytes::Bytes::from(bytes), limits)
}

/// [`import_onnx`] on the bytes of the file (`path` names it in messages).
/// Each tensor's `raw_data` is copied out of `bytes`; [`import_onnx`] shares
/// the file's buffer instead. With no directory to read beside, a tensor in
/// an external data file is refused.
pub fn import_onnx_bytes(path: &Path, bytes: &[u8], limits: &Limits) -> Result<OnnxImport, Error> {
    import(path, None, bytes, limits)
}

/// Checks the counts in `bytes`, decodes them and reads the graph
/// (external data from `dir`).
fn import(
    path: &Path,
    dir: Option<&Path>,
    bytes: impl prost::bytes::Buf + AsRef<[u8]>,
    limits: &Limits,
) -> Result<OnnxImport, Error> {
    let format = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    scan::scan(bytes.as_ref(), limits).map_err(|refusal| match refusal {
        scan::Refusal::Malformed(what) => format(format!("not an ONNX model: {what}")),
        scan::Refusal::Limit(kind, limit) => Error::Limit {
            path: path.to_path_buf(),
            line: None,
            kind,
            limit,
        },
    })?;
    let model = proto::ModelProto::decode(bytes).map_err(|e| format(format!("not an ONNX model: {e}")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| format("the ONNX model has no graph".into()))?;
    let mut reader = Reader::new(path, graph)?;
    reader.external = ExternalData::new(path, dir, limits.max_weights_bytes);
    reader.read()
}

/// The walk over one graph.
struct Reader<'a> {
    path: &'a Path,
    graph: &'a GraphProto,
    /// Constant tensors by name: initializers and `Constant` nodes' values.
    constants: HashMap<&'a str, &'a TensorProto>,
    /// The node that writes each value.
    producers: HashMap<&'a str, &'a NodeProto>,
    /// What [`Reader::is_zero`] found for each value it looked at: each
    /// value is looked at once, so a graph whose nodes name one value many
    /// times costs no more than its size (a walk of every path would be
    /// exponential in the depth).
    zero_values: RefCell<HashMap<&'a str, bool>>,
    /// How many times [`Reader::is_zero`] looked at a value, for the tests.
    #[cfg(test)]
    zero_visits: std::cell::Cell<usize>,
    /// The external data files beside the graph.
    external: ExternalData,
}

impl<'a> Reader<'a> {
    fn new(path: &'a Path, graph: &'a GraphProto) -> Result<Self, Error> {
        let mut constants = HashMap::new();
        for tensor in &graph.initializer {
            constants.insert(tensor.name(), tensor);
        }
        let mut producers = HashMap::new();
        for node in &graph.node {
            for output in &node.output {
                producers.insert(output.as_str(), node);
            }
            if node.op_type() == "Constant" {
                if let (Some(output), Some(value)) =
                    (node.output.first(), attribute(node, "value").and_then(|a| a.t.as_ref()))
                {
                    constants.insert(output.as_str(), value);
                }
            }
        }
        Ok(Self {
            path,
            graph,
            constants,
            producers,
            zero_values: RefCell::new(HashMap::new()),
            #[cfg(test)]
            zero_visits: std::cell::Cell::new(0),
            external: ExternalData::new(path, None, 0),
        })
    }

    fn unsupported(&self, node: &NodeProto, reason: impl Into<String>) -> Error {
        Error::Unsupported {
            path: self.path.to_path_buf(),
            op: node.op_type().to_string(),
            name: node.name().to_string(),
            reason: reason.into(),
        }
    }

    fn format(&self, message: impl Into<String>) -> Error {
        Error::Format {
            path: self.path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The float values of a constant input, or why it is not one.
    fn constant(&self, node: &NodeProto, name: &str, what: &str) -> Result<(Tensor, bool), Error> {
        match self.constants.get(name) {
            Some(tensor) => {
                let external = self.external_bytes(tensor)?;
                float_tensor(tensor, external.as_deref())
                    .map_err(|reason| self.unsupported(node, format!("{what}: {reason}")))
            }
            None => Err(self.unsupported(
                node,
                format!("{what} ({:?}) is computed in the graph, not stored", shown(name)),
            )),
        }
    }

    /// The bytes of a tensor stored in an external data file (`None`: it is
    /// stored in the graph).
    fn external_bytes(&self, tensor: &TensorProto) -> Result<Option<Vec<u8>>, Error> {
        if tensor.data_location() != proto::tensor_proto::DataLocation::External && tensor.external_data.is_empty() {
            return Ok(None);
        }
        let needed = element_size(tensor.data_type())
            .and_then(|size| {
                tensor
                    .dims
                    .iter()
                    .try_fold(size, |n, &d| usize::try_from(d).ok().and_then(|d| n.checked_mul(d)))
            })
            .ok_or_else(|| {
                self.format(format!(
                    "tensor {:?}: external data of element type {} and shape {:?}",
                    shown(tensor.name()),
                    tensor.data_type(),
                    tensor.dims
                ))
            })?;
        self.external.bytes(tensor, needed).map(Some)
    }

    /// A stored tensor of any integer or float element type as numbers, for
    /// the walk (shapes, indices, initial states).
    fn numbers_of(&self, tensor: &TensorProto) -> Result<Value, String> {
        let shape: Vec<usize> = tensor
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension in {:?}", tensor.dims)))
            .collect::<Result<_, _>>()?;
        let n = symbolic::count(&shape)?;
        let external = self.external_bytes(tensor).map_err(|e| e.to_string())?;
        let kind = tensor.data_type();
        let values: Vec<f64> = match external.as_deref().or(tensor.raw_data.as_deref()) {
            Some(raw) => {
                let size = element_size(kind).filter(|_| kind != 10 && kind != 16);
                let size = size.ok_or_else(|| format!("element type {kind}"))?;
                if raw.len() != n * size {
                    return Err(format!(
                        "shape {:?} needs {} bytes, the file holds {}",
                        tensor.dims,
                        n * size,
                        raw.len()
                    ));
                }
                raw.chunks_exact(size)
                    .map(|b| {
                        let mut w = [0u8; 8];
                        w[..size].copy_from_slice(b);
                        match kind {
                            FLOAT => f64::from(f32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                            DOUBLE => f64::from_le_bytes(w),
                            3 => f64::from(w[0] as i8),
                            5 => f64::from(i16::from_le_bytes([w[0], w[1]])),
                            6 => f64::from(i32::from_le_bytes([w[0], w[1], w[2], w[3]])),
                            7 => i64::from_le_bytes(w) as f64,
                            _ => u64::from_le_bytes(w) as f64,
                        }
                    })
                    .collect()
            }
            None => match kind {
                FLOAT => tensor.float_data.iter().map(|&v| f64::from(v)).collect(),
                DOUBLE => tensor.double_data.clone(),
                7 => tensor.int64_data.iter().map(|&v| v as f64).collect(),
                12 | 13 => tensor.uint64_data.iter().map(|&v| v as f64).collect(),
                2..=6 | 9 => tensor.int32_data.iter().map(|&v| f64::from(v)).collect(),
                other => return Err(format!("element type {other}")),
            },
        };
        Value::numbers(shape, values)
    }

    /// Whether `name` is a value that is zero everywhere: an empty input, a
    /// stored zero tensor, or zeros made to a shape (`ConstantOfShape`,
    /// possibly reshaped or expanded). Followed at most 16 producers deep.
    ///
    /// Each value is judged once and remembered, so the walk is linear in
    /// the graph however often its nodes name the same value. A value is
    /// remembered as not zero while it is being judged: a cycle (which a
    /// valid graph does not have) then reads as not zero, never as zero.
    fn is_zero(&self, name: &'a str, depth: usize) -> bool {
        #[cfg(test)]
        self.zero_visits.set(self.zero_visits.get() + 1);
        if name.is_empty() {
            return true;
        }
        if let Some(tensor) = self.constants.get(name) {
            return all_zero(tensor);
        }
        if depth > 16 {
            return false;
        }
        if let Some(&known) = self.zero_values.borrow().get(name) {
            return known;
        }
        let Some(node) = self.producers.get(name) else {
            return false;
        };
        self.zero_values.borrow_mut().insert(name, false);
        let zero = match node.op_type() {
            "ConstantOfShape" => attribute(node, "value").and_then(|a| a.t.as_ref()).is_none_or(all_zero),
            "Expand" | "Reshape" | "Unsqueeze" | "Squeeze" | "Transpose" | "Identity" | "Cast" | "Tile" => {
                node.input.first().is_some_and(|x| self.is_zero(x, depth + 1))
            }
            "Concat" => node.input.iter().all(|x| self.is_zero(x, depth + 1)),
            _ => false,
        };
        self.zero_values.borrow_mut().insert(name, zero);
        zero
    }

    /// The graph's input as symbols, in a concrete shape: each symbolic
    /// dimension [`symbolic::SYMBOLIC_DIM`]; and whether it is vectors
    /// (floats, the last axis their components) rather than token ids.
    fn input_value(&self, name: &str) -> Result<(Value, bool), Error> {
        let info = self.graph.input.iter().find(|i| i.name() == name);
        let tensor_type = info.and_then(|i| match &i.r#type.as_ref()?.value {
            Some(proto::type_proto::Value::TensorType(t)) => Some(t),
            _ => None,
        });
        let Some(tensor_type) = tensor_type.filter(|t| t.shape.is_some()) else {
            return Err(self.format(format!("the graph's input {:?} has no shape", shown(name))));
        };
        let shape: Vec<usize> = tensor_type
            .shape
            .iter()
            .flat_map(|s| &s.dim)
            .map(|d| match d.value {
                Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => v as usize,
                _ => symbolic::SYMBOLIC_DIM,
            })
            .collect();
        let vectors = matches!(tensor_type.elem_type(), FLOAT | DOUBLE | 10 | 16);
        let width = if vectors { shape.last().copied().unwrap_or(0) } else { 1 };
        let too_large = |_| {
            self.format(format!(
                "the graph's input has shape {shape:?}, too large to follow; export with an example of one sequence"
            ))
        };
        let n = symbolic::count(&shape).map_err(too_large)?;
        if width == 0 || n >= u32::MAX as usize {
            return Err(self.format(format!("the graph's input has shape {shape:?}")));
        }
        let elements = (0..n)
            .map(|k| Element::Input {
                position: (k / width) as u32,
                component: (k % width) as u32,
            })
            .collect();
        let value = Value::new(shape, elements).map_err(|e| self.format(e))?;
        Ok((value, vectors))
    }

    /// The value named `name`: computed before, or a stored constant (its
    /// numbers read now), or unknown.
    fn slot(&self, values: &mut Values<'a>, name: &'a str) -> Slot {
        if let Some(slot) = values.slots.get(name) {
            return slot.clone();
        }
        let slot = match self.constants.get(name) {
            Some(tensor) => match self.numbers_of(tensor) {
                Ok(value) if !values.has_room(value.elements.len()) => {
                    Slot::Opaque("the values followed so far are too large".into())
                }
                Ok(value) => Slot::known(value),
                Err(why) => Slot::Opaque(format!("the constant {:?}: {why}", shown(name)).into()),
            },
            None => Slot::Opaque(format!("{:?} is read before any node writes it", shown(name)).into()),
        };
        values.put(name, slot.clone());
        slot
    }

    /// Whether the node reads a value computed from the graph's input.
    fn reads_data(values: &Values<'a>, node: &NodeProto) -> bool {
        node.input.iter().any(|i| {
            matches!(
                values.slots.get(i.as_str()),
                Some(Slot::Known { data: true, .. } | Slot::Deferred(_))
            )
        })
    }

    /// The refusal a value waits with, if one of the node's inputs has one.
    fn deferred(values: &Values<'a>, node: &NodeProto) -> Option<Rc<Refusal>> {
        node.input.iter().find_map(|i| match values.slots.get(i.as_str()) {
            Some(Slot::Deferred(error)) => Some(error.clone()),
            _ => None,
        })
    }

    fn read(&self) -> Result<OnnxImport, Error> {
        let inputs: Vec<&str> = self
            .graph
            .input
            .iter()
            .map(|i| i.name())
            .filter(|n| !self.constants.contains_key(n))
            .collect();
        let [input] = inputs[..] else {
            return Err(self.format(format!(
                "the graph has {} inputs besides its weights; lrp imports a graph of one input (token ids or vectors): export with one example tensor",
                inputs.len()
            )));
        };
        let (input_value, vectors) = self.input_value(input)?;
        // The input's positions: its shape without the component axis of vectors.
        let positions: Vec<usize> = if vectors {
            input_value.shape[..input_value.shape.len().saturating_sub(1)].to_vec()
        } else {
            input_value.shape.clone()
        };
        let mut values = Values::default();
        values.put(input, Slot::known(input_value));
        let mut walk = Walk {
            positions,
            vectors,
            embedding: None,
            layers: Vec::new(),
            steps: 0,
            head: None,
            reads: None,
            double: false,
        };
        for node in &self.graph.node {
            self.step(node, &mut values, &mut walk)?;
        }
        let outputs: Vec<&str> = self.graph.output.iter().map(|o| o.name()).collect();
        let [output] = outputs[..] else {
            return Err(self.format(format!(
                "the graph has {} outputs; lrp imports a graph whose one output is the class scores: return only the scores from forward()",
                outputs.len()
            )));
        };
        if walk.layers.is_empty() {
            return Err(self.format("the graph has no LSTM or GRU node"));
        }
        let scores = match self.slot(&mut values, output) {
            Slot::Known { value, .. } => value.elements.iter().all(|e| match e {
                Element::Score { .. } => true,
                Element::Product { .. } => walk.head.as_ref().is_some_and(|h| h.bias.is_none()),
                _ => false,
            }),
            Slot::Opaque(_) => false,
            Slot::Deferred(error) => return Err(error.error(self.path)),
        };
        let (Some(head), Some(reads), true) = (walk.head, walk.reads, scores) else {
            return Err(self.format(format!(
                "the graph's output {:?} is not the linear head on the top layer's state: return the head's output from forward()",
                shown(output)
            )));
        };
        self.assemble(walk.embedding, walk.layers, head, reads, walk.double)
    }

    /// Runs one node on the values before it.
    fn step(&self, node: &'a NodeProto, values: &mut Values<'a>, walk: &mut Walk) -> Result<(), Error> {
        let data = Self::reads_data(values, node);
        if !matches!(node.domain(), "" | "ai.onnx") {
            if data {
                return Err(self.unsupported(
                    node,
                    format!("operator domain {:?}; {EXPORT_SHAPE}", shown(node.domain())),
                ));
            }
            return self.opaque(node, values, format!("operator domain {:?}", shown(node.domain())));
        }
        if let Some(error) = Self::deferred(values, node) {
            // Shape operators carry the refusal on; anything else is refused
            // here, or (a layer, the head) with the refusal waiting.
            let reason = match node.op_type() {
                op if SHAPE_OPERATORS.contains(&op) => {
                    for name in &node.output {
                        values.put(name, Slot::Deferred(error.clone()));
                    }
                    return Ok(());
                }
                "Softmax" | "Tanh" | "ReduceSum" | "ReduceMean" | "ReduceMax" => POOLING.to_string(),
                "LSTM" | "GRU" | "Gemm" | "MatMul" | "Add" => return Err(error.error(self.path)),
                _ => format!("{NOT_SUPPORTED}; {EXPORT_SHAPE}"),
            };
            return Err(self.unsupported(node, reason));
        }
        let input = |k: usize| node.input.get(k).map(String::as_str).unwrap_or("");
        let outputs: Vec<Value> = match node.op_type() {
            "LSTM" | "GRU" => {
                if !data {
                    return Err(self.unsupported(
                        node,
                        format!("a recurrent layer must read the embedding or input (bottom layer) or the layer below it; {EXPORT_SHAPE}"),
                    ));
                }
                self.recurrent_step(node, values, walk)?
            }
            "Gather"
                if data
                    && self.constants.contains_key(input(0))
                    && !matches!(values.slots.get(input(0)), Some(Slot::Known { data: true, .. })) =>
            {
                vec![self.embedding_step(node, values, walk)?]
            }
            "Gemm" | "MatMul" if data => match self.head_step(node, values, walk)? {
                Ok(value) => vec![value],
                Err(reason) => {
                    let error = Rc::new(Refusal {
                        op: node.op_type().to_string(),
                        name: node.name().to_string(),
                        reason,
                    });
                    for name in &node.output {
                        values.put(name, Slot::Deferred(error.clone()));
                    }
                    return Ok(());
                }
            },
            "Add" if data && node.input.iter().any(|i| values.is_product(i)) => {
                vec![self.bias_step(node, values, walk)?]
            }
            op => {
                let slots: Vec<Option<Slot>> = node
                    .input
                    .iter()
                    .map(|i| (!i.is_empty()).then(|| self.slot(values, i)))
                    .collect();
                match self.evaluate(node, &slots) {
                    Ok(outputs) => outputs,
                    Err(why) if data => {
                        let reads_scores = node.input.iter().any(|i| {
                            matches!(values.slots.get(i.as_str()), Some(Slot::Known { value, .. })
                                if value.elements.iter().any(|e| matches!(e, Element::Score { .. } | Element::Product { .. })))
                        });
                        let reason = match op {
                            _ if reads_scores => format!(
                                "{op} after the head: lrp explains the scores the head computes; return fc(...) from forward(), without {op}"
                            ),
                            "Softmax" | "Tanh" | "ReduceSum" | "ReduceMean" | "ReduceMax" => POOLING.to_string(),
                            _ => format!("{why}; {EXPORT_SHAPE}"),
                        };
                        return Err(self.unsupported(node, reason));
                    }
                    Err(why) => return self.opaque(node, values, why),
                }
            }
        };
        for (name, value) in node.output.iter().zip(outputs) {
            let data = !value.is_constant();
            if !values.has_room(value.elements.len()) {
                if data {
                    return Err(self.unsupported(node, "the values followed so far are too large"));
                }
                values.put(name, Slot::Opaque("the values followed so far are too large".into()));
                continue;
            }
            values.put(
                name,
                Slot::Known {
                    value: Rc::new(value),
                    data,
                },
            );
        }
        Ok(())
    }

    /// The node's outputs are values the walk does not know (`why`).
    fn opaque(&self, node: &'a NodeProto, values: &mut Values<'a>, why: String) -> Result<(), Error> {
        let why: Rc<str> = format!("{} {:?}: {why}", node.op_type(), shown(node.name())).into();
        for name in &node.output {
            values.put(name, Slot::Opaque(why.clone()));
        }
        Ok(())
    }

    /// A node of shape and index computations run on its inputs (numbers,
    /// or symbols moved about), or why it cannot be.
    fn evaluate(&self, node: &NodeProto, slots: &[Option<Slot>]) -> Result<Vec<Value>, String> {
        let value = |k: usize| -> Result<Option<&Value>, String> {
            match slots.get(k) {
                None | Some(None) => Ok(None),
                Some(Some(Slot::Known { value, .. })) => Ok(Some(value)),
                Some(Some(Slot::Opaque(why))) => Err(why.to_string()),
                Some(Some(Slot::Deferred(refused))) => Err(refused.reason.clone()),
            }
        };
        let required = |k: usize| value(k)?.ok_or_else(|| format!("input {k} is missing"));
        let integers = |k: usize| value(k)?.map(Value::integers).transpose();
        let ints_attr = |name: &str| attribute(node, name).map(|a| a.ints.clone());
        let int_attr = |name: &str, default: i64| attribute_int(node, name).unwrap_or(default);
        // `arity` inputs (0: one or more).
        let numbers = |arity: usize, f: fn(&[f64]) -> f64| -> Result<Vec<Value>, String> {
            if slots.len() != arity && (arity > 0 || slots.is_empty()) {
                return Err(format!("{} with {} inputs", node.op_type(), slots.len()));
            }
            let all: Vec<&Value> = (0..slots.len()).map(required).collect::<Result<_, _>>()?;
            Ok(vec![Value::elementwise(&all, f)?])
        };
        let one = |v: Value| Ok(vec![v]);
        match node.op_type() {
            "Constant" => {
                let attr = node.attribute.first().ok_or("a Constant without a value")?;
                match attr.name() {
                    "value" => one(self.numbers_of(attr.t.as_ref().ok_or("a Constant without a tensor")?)?),
                    "value_float" => one(Value::numbers(vec![], [f64::from(attr.f.unwrap_or(0.0))])?),
                    "value_floats" => one(Value::numbers(
                        vec![attr.floats.len()],
                        attr.floats.iter().map(|&v| f64::from(v)),
                    )?),
                    "value_int" => one(Value::numbers(vec![], [attr.i.unwrap_or(0) as f64])?),
                    "value_ints" => one(Value::numbers(
                        vec![attr.ints.len()],
                        attr.ints.iter().map(|&v| v as f64),
                    )?),
                    other => Err(format!("a Constant of kind {:?}", shown(other))),
                }
            }
            "Identity" | "Cast" | "CastLike" => one(required(0)?.clone()),
            "Transpose" => one(required(0)?.transpose(ints_attr("perm").filter(|p| !p.is_empty()))?),
            "Reshape" => one(required(0)?.reshape(
                &integers(1)?.ok_or("Reshape without a shape")?,
                int_attr("allowzero", 0) != 0,
            )?),
            "Flatten" => one(required(0)?.flatten(int_attr("axis", 1))?),
            "Squeeze" => one(required(0)?.squeeze(integers(1)?.or(ints_attr("axes")))?),
            "Unsqueeze" => {
                one(required(0)?.unsqueeze(&integers(1)?.or(ints_attr("axes")).ok_or("Unsqueeze without axes")?)?)
            }
            "Concat" => {
                let all: Vec<&Value> = (0..slots.len())
                    .filter_map(|k| value(k).transpose())
                    .collect::<Result<_, _>>()?;
                one(Value::concat(&all, int_attr("axis", 0))?)
            }
            "Slice" => {
                let (starts, ends, axes, steps) = if slots.len() > 1 {
                    (
                        integers(1)?.ok_or("Slice without starts")?,
                        integers(2)?.ok_or("Slice without ends")?,
                        integers(3)?,
                        integers(4)?,
                    )
                } else {
                    (
                        ints_attr("starts").unwrap_or_default(),
                        ints_attr("ends").unwrap_or_default(),
                        ints_attr("axes"),
                        None,
                    )
                };
                one(required(0)?.slice(&starts, &ends, axes, steps)?)
            }
            "Gather" => one(required(0)?.gather(required(1)?, int_attr("axis", 0))?),
            "Expand" => one(required(0)?.expand(&integers(1)?.ok_or("Expand without a shape")?)?),
            "Tile" => one(required(0)?.tile(&integers(1)?.ok_or("Tile without repeats")?)?),
            "Shape" | "Size" => {
                let shape = &required(0)?.shape;
                if node.op_type() == "Size" {
                    return one(Value::numbers(vec![], [shape.iter().product::<usize>() as f64])?);
                }
                let rank = shape.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
                let (start, end) = (clamp(int_attr("start", 0)), clamp(int_attr("end", rank)));
                let dims: Vec<f64> = shape[start..end.max(start)].iter().map(|&d| d as f64).collect();
                one(Value::numbers(vec![dims.len()], dims)?)
            }
            "ConstantOfShape" => {
                let shape: Vec<usize> = integers(0)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|d| usize::try_from(d).map_err(|_| format!("ConstantOfShape of dimension {d}")))
                    .collect::<Result<_, _>>()?;
                let fill = match attribute(node, "value").and_then(|a| a.t.as_ref()) {
                    Some(t) => self
                        .numbers_of(t)?
                        .elements
                        .first()
                        .and_then(Element::number)
                        .unwrap_or(0.0),
                    None => 0.0,
                };
                let n = symbolic::count(&shape)?;
                one(Value::numbers(shape, std::iter::repeat_n(fill, n))?)
            }
            "Range" => {
                let [start, limit, delta] = [0, 1, 2].map(|k| {
                    required(k).and_then(|v| {
                        v.elements
                            .first()
                            .and_then(Element::number)
                            .ok_or_else(|| "a Range of the data".to_string())
                    })
                });
                let (start, limit, delta) = (start?, limit?, delta?);
                let n = if delta == 0.0 {
                    0.0
                } else {
                    ((limit - start) / delta).ceil().max(0.0)
                };
                if n > symbolic::MAX_ELEMENTS as f64 {
                    return Err(format!("a Range of {n} values"));
                }
                one(Value::numbers(
                    vec![n as usize],
                    (0..n as usize).map(|k| start + k as f64 * delta),
                )?)
            }
            "Add" => numbers(2, |a| a[0] + a[1]),
            "Sub" => numbers(2, |a| a[0] - a[1]),
            "Mul" => numbers(2, |a| a[0] * a[1]),
            "Div" => numbers(2, |a| a[0] / a[1]),
            "Neg" => numbers(1, |a| -a[0]),
            "Abs" => numbers(1, |a| a[0].abs()),
            "Max" => numbers(0, |a| a.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            "Min" => numbers(0, |a| a.iter().copied().fold(f64::INFINITY, f64::min)),
            "Equal" => numbers(2, |a| f64::from(u8::from(a[0] == a[1]))),
            "Less" => numbers(2, |a| f64::from(u8::from(a[0] < a[1]))),
            "Greater" => numbers(2, |a| f64::from(u8::from(a[0] > a[1]))),
            "Not" => numbers(1, |a| f64::from(u8::from(a[0] == 0.0))),
            "Where" => numbers(3, |a| if a[0] != 0.0 { a[1] } else { a[2] }),
            _ => Err(NOT_SUPPORTED.into()),
        }
    }

    /// The embedding `Gather(table, ids)`: each id becomes its row's
    /// components.
    fn embedding_step(&self, node: &'a NodeProto, values: &mut Values<'a>, walk: &mut Walk) -> Result<Value, Error> {
        let Slot::Known { value: ids, .. } = self.slot(values, &node.input[1]) else {
            return Err(self.unsupported(node, "the embedding's ids are unknown"));
        };
        let ids_are_input = ids
            .elements
            .iter()
            .all(|e| matches!(e, Element::Input { component: 0, .. }));
        if walk.vectors || walk.embedding.is_some() || !ids_are_input {
            return Err(self.unsupported(
                node,
                format!("a table lookup that is not the embedding of the input; {EXPORT_SHAPE}"),
            ));
        }
        let (table, is_double) = self.constant(node, &node.input[0], "the embedding table")?;
        if table.shape.len() != 2 || attribute_int(node, "axis").unwrap_or(0) != 0 {
            return Err(self.unsupported(node, "the embedding must be a [V, E] table read by rows"));
        }
        let width = table.shape[1];
        let mut shape = ids.shape.clone();
        shape.push(width);
        symbolic::count(&shape).map_err(|e| self.unsupported(node, e))?;
        let elements = ids
            .elements
            .iter()
            .flat_map(|id| {
                let position = match id {
                    Element::Input { position, .. } => *position,
                    _ => 0,
                };
                (0..width as u32).map(move |component| Element::Embedded { position, component })
            })
            .collect();
        walk.double |= is_double;
        walk.embedding = Some((table, is_double));
        Value::new(shape, elements).map_err(|e| self.unsupported(node, e))
    }

    /// An `LSTM` or `GRU` node: its input must be the layer below's output
    /// (or the embedding or the input, in order), its initial states zero;
    /// its outputs `Y`, `Y_h` (and `Y_c`) as symbols.
    fn recurrent_step(
        &self,
        node: &'a NodeProto,
        values: &mut Values<'a>,
        walk: &mut Walk,
    ) -> Result<Vec<Value>, Error> {
        let below = "a recurrent layer must read the embedding or input (bottom layer) or the layer below it";
        let Slot::Known { value: x, .. } = self.slot(values, &node.input[0]) else {
            return Err(self.unsupported(node, below));
        };
        let layer = self.recurrent(node)?;
        for (k, what) in [(5, "initial_h"), (6, "initial_c"), (7, "the peepholes P")] {
            self.zero_input(node, values, k, what)?;
        }
        let k = walk.layers.len();
        if let Some(first) = walk.layers.first() {
            if first.lstm != layer.lstm || first.directions != layer.directions || first.hidden != layer.hidden {
                return Err(self.unsupported(
                    node,
                    "every layer must have the cell, directions and hidden size of the first: use one nn.LSTM or nn.GRU with num_layers",
                ));
            }
        }
        let batch_major = attribute_int(node, "layout").unwrap_or(0) != 0;
        let [a, b_len, width] = x.shape[..] else {
            return Err(self.unsupported(node, format!("its input has shape {:?}, not [T, B, E]", x.shape)));
        };
        let (t_len, b_len) = if batch_major { (b_len, a) } else { (a, b_len) };
        if width != layer.width || t_len == 0 || (k > 0 && t_len != walk.steps) {
            return Err(self.unsupported(node, format!("its input has shape {:?}; {below}", x.shape)));
        }
        let (h, dirs) = (layer.hidden, layer.directions);
        // Component w of the input at step t of sequence b: x[t, b, w], or
        // x[b, t, w] batch-major.
        let at = |t: usize, b: usize, w: usize| {
            let row = if batch_major { b * t_len + t } else { t * b_len + b };
            x.elements[row * width + w]
        };
        // Where each (t, b) reads the input, for the bottom layer.
        let mut reads = vec![0u32; t_len * b_len];
        for t in 0..t_len {
            for b in 0..b_len {
                for w in 0..width {
                    let ok = match at(t, b, w) {
                        // Every component of one step from one input position.
                        Element::Embedded { position, component } | Element::Input { position, component }
                            if k == 0
                                && if walk.embedding.is_some() {
                                    matches!(at(t, b, w), Element::Embedded { .. })
                                } else {
                                    walk.vectors
                                } =>
                        {
                            if w == 0 {
                                reads[t * b_len + b] = position;
                            }
                            component as usize == w && reads[t * b_len + b] == position
                        }
                        Element::State {
                            layer: l,
                            dir,
                            t: s,
                            b: c,
                            unit,
                        } if k > 0 => {
                            l as usize == k - 1
                                && dir as usize == w / h
                                && unit as usize == w % h
                                && s as usize == t
                                && c as usize == b
                        }
                        _ => false,
                    };
                    if !ok {
                        return Err(self.unsupported(node, format!("{below}, in order; {EXPORT_SHAPE}")));
                    }
                }
            }
        }
        if k == 0 {
            // Some axis of the input must be the time axis: position t
            // of the sequence at step t, the other axes fixed per sequence.
            let coordinates =
                |t: usize, b: usize| symbolic::input_coordinates(reads[t * b_len + b] as usize, &walk.positions);
            let in_order = (0..walk.positions.len()).any(|axis| {
                (0..b_len).all(|b| {
                    let mut start = coordinates(0, b);
                    start.remove(axis);
                    (0..t_len).all(|t| {
                        let mut c = coordinates(t, b);
                        let step = c.remove(axis);
                        step == t && c == start
                    })
                })
            });
            if !in_order {
                return Err(self.unsupported(
                    node,
                    format!("the bottom layer does not read the input's positions in order; {EXPORT_SHAPE}"),
                ));
            }
            walk.steps = t_len;
        }
        let layer_index = k as u16;
        let state = |dir: usize, t: usize, b: usize, unit: usize| Element::State {
            layer: layer_index,
            dir: dir as u8,
            t: t as u32,
            b: b as u32,
            unit: unit as u32,
        };
        // Y: [T, dirs, B, H] (layout 1: [B, T, dirs, H]).
        let mut y = Vec::new();
        let y_shape = if batch_major {
            vec![b_len, t_len, dirs, h]
        } else {
            vec![t_len, dirs, b_len, h]
        };
        symbolic::count(&y_shape).map_err(|e| self.unsupported(node, e))?;
        for i in 0..y_shape[0] {
            for j in 0..y_shape[1] {
                for l in 0..y_shape[2] {
                    for unit in 0..h {
                        y.push(if batch_major {
                            state(l, j, i, unit)
                        } else {
                            state(j, i, l, unit)
                        });
                    }
                }
            }
        }
        // Y_h: [dirs, B, H] (layout 1: [B, dirs, H]); the forward
        // direction's final state is its state after the last position,
        // the backward direction's after the first.
        let last = |dir: usize| if dir == 0 { t_len - 1 } else { 0 };
        let final_shape = if batch_major {
            vec![b_len, dirs, h]
        } else {
            vec![dirs, b_len, h]
        };
        let mut y_h = Vec::new();
        let mut y_c = Vec::new();
        for i in 0..final_shape[0] {
            for j in 0..final_shape[1] {
                for unit in 0..h {
                    let (dir, b) = if batch_major { (j, i) } else { (i, j) };
                    y_h.push(state(dir, last(dir), b, unit));
                    y_c.push(Element::Cell {
                        layer: layer_index,
                        dir: dir as u8,
                        b: b as u32,
                        unit: unit as u32,
                    });
                }
            }
        }
        walk.double |= layer_double(self, node);
        walk.layers.push(layer);
        let make = |shape: Vec<usize>, elements| Value::new(shape, elements).map_err(|e| self.unsupported(node, e));
        Ok(vec![
            make(y_shape, y)?,
            make(final_shape.clone(), y_h)?,
            make(final_shape, y_c)?,
        ])
    }

    /// Refuses a recurrent node's optional input `k` unless it is absent or
    /// zero everywhere, however it is computed.
    fn zero_input(&self, node: &'a NodeProto, values: &mut Values<'a>, k: usize, what: &str) -> Result<(), Error> {
        let name = node.input.get(k).map(String::as_str).unwrap_or("");
        if name.is_empty() {
            return Ok(());
        }
        let hint = "call the layer without an initial state (lstm(x), not lstm(x, (h0, c0)))";
        let problem = match self.slot(values, name) {
            Slot::Known { data: true, .. } | Slot::Deferred(_) => format!("{what} is computed from the input; {hint}"),
            Slot::Known { value, .. } => match value.elements.iter().find_map(|e| e.number().filter(|v| *v != 0.0)) {
                None => return Ok(()),
                Some(v) => format!("{what} is not zero (it holds {v}); {hint}"),
            },
            Slot::Opaque(_) if self.is_zero(name, 0) => return Ok(()),
            Slot::Opaque(why) => format!("{what} is not known to be zero ({why}); {hint}"),
        };
        Err(self.unsupported(node, problem))
    }

    /// The head's matrix product on the top layer's state: which state each
    /// row of its input is, checked; its outputs as symbols.
    /// A refusal that says what the head reads is kept (`Ok(Err(reason))`)
    /// until the product is used.
    fn head_step(
        &self,
        node: &'a NodeProto,
        values: &mut Values<'a>,
        walk: &mut Walk,
    ) -> Result<Result<Value, String>, Error> {
        let not_head = format!("a matrix product that is not the head on the top layer's state; {EXPORT_SHAPE}");
        let Slot::Known { value: a, data: true } = self.slot(values, &node.input[0]) else {
            return Err(self.unsupported(node, not_head));
        };
        if walk.head.is_some() || walk.layers.is_empty() {
            return Ok(Err(not_head));
        }
        let (found, is_double) = self.head(node)?;
        let (classes, width) = (found.weight.shape[0], found.weight.shape[1]);
        if width == 0 || a.shape.last() != Some(&width) || (node.op_type() == "Gemm" && a.shape.len() != 2) {
            return Err(self.unsupported(
                node,
                format!("the head reads shape {:?} with weights for width {width}", a.shape),
            ));
        }
        let top = walk.layers.len() - 1;
        let (h, dirs) = (walk.layers[top].hidden, walk.layers[top].directions);
        let mut reads = None;
        for row in a.elements.chunks(width) {
            let found = match self.head_reads(row, top, dirs, h, walk.steps) {
                Ok(found) => found,
                Err(what) => return Ok(Err(format!(
                    "the head must read the top layer's final state (h_n) or its output at the last position (out[:, -1]), but it reads {what}; {EXPORT_SHAPE}"
                ))),
            };
            if reads.is_some_and(|r| r != found) {
                return Ok(Err(
                    "the head reads the final state in some rows and the last output in others".into(),
                ));
            }
            reads = Some(found);
        }
        let mut shape = a.shape[..a.shape.len() - 1].to_vec();
        shape.push(classes);
        let rows = a.elements.len() / width;
        let gemm = node.op_type() == "Gemm";
        let elements = (0..rows as u32)
            .flat_map(|row| {
                (0..classes as u32).map(move |class| {
                    if gemm {
                        Element::Score { row, class }
                    } else {
                        Element::Product { row, class }
                    }
                })
            })
            .collect();
        walk.double |= is_double;
        walk.head = Some(found);
        walk.reads = reads;
        Value::new(shape, elements)
            .map(Ok)
            .map_err(|e| self.unsupported(node, e))
    }

    /// What one row of the head's input is: the top layer's final state
    /// (the forward half after the last position, the backward half after
    /// the first), or its output at the last position; else what it is, in
    /// words.
    fn head_reads(
        &self,
        row: &[Element],
        top: usize,
        dirs: usize,
        h: usize,
        steps: usize,
    ) -> Result<HeadReads, String> {
        if row.len() != dirs * h {
            return Err(format!(
                "{} values, where the top layer's state has {}",
                row.len(),
                dirs * h
            ));
        }
        let b = match row[0] {
            Element::State { b, .. } => b,
            _ => 0,
        };
        // Element w of the top layer's state after position t.
        let state = |w: usize, t: usize| Element::State {
            layer: top as u16,
            dir: (w / h) as u8,
            t: t as u32,
            b,
            unit: (w % h) as u32,
        };
        let final_state = |w: usize| state(w, if w / h == 0 { steps - 1 } else { 0 });
        if row.iter().enumerate().all(|(w, e)| *e == final_state(w)) {
            return Ok(HeadReads::FinalState);
        }
        if row.iter().enumerate().all(|(w, e)| *e == state(w, steps - 1)) {
            return Ok(HeadReads::LastOutput);
        }
        // What the first element that is not the final state's is.
        let what = match row
            .iter()
            .enumerate()
            .find(|&(w, e)| *e != final_state(w))
            .map(|(_, e)| *e)
        {
            Some(Element::Number(_)) => "a constant".to_string(),
            Some(Element::Input { .. } | Element::Embedded { .. }) => "the input or its embedding".into(),
            Some(Element::Cell { .. }) => "the LSTM's cell state (c_n), not its hidden state".into(),
            Some(Element::Product { .. } | Element::Score { .. }) => "the head's own output".into(),
            Some(Element::State { layer, .. }) if layer as usize != top => {
                format!("the states of layer {layer}, not of the top layer")
            }
            Some(Element::State { t, dir, .. }) => format!(
                "the {} direction's output at position {} of {steps}",
                if dir == 0 { "forward" } else { "backward" },
                t + 1
            ),
            None => "a mixture of states".into(),
        };
        Err(what)
    }

    /// The head's bias added to its product.
    fn bias_step(&self, node: &'a NodeProto, values: &mut Values<'a>, walk: &mut Walk) -> Result<Value, Error> {
        let product = node
            .input
            .iter()
            .find(|i| values.is_product(i))
            .map(String::as_str)
            .unwrap_or("");
        let other = node
            .input
            .iter()
            .find(|x| x.as_str() != product)
            .filter(|x| self.constants.contains_key(x.as_str()))
            .ok_or_else(|| self.unsupported(node, "adds two computed values"))?;
        let (bias, is_double) = self.constant(node, other, "the head's bias")?;
        let classes = walk.head.as_ref().map_or(0, |h| h.weight.shape[0]);
        if bias.values.len() != classes {
            return Err(self.unsupported(
                node,
                format!("the head's bias has {} values for {classes} classes", bias.values.len()),
            ));
        }
        let Slot::Known { value, .. } = self.slot(values, product) else {
            return Err(self.unsupported(node, "adds two computed values"));
        };
        walk.double |= is_double;
        if let Some(h) = walk.head.as_mut() {
            h.bias = Some(Tensor {
                shape: vec![classes],
                values: bias.values,
            });
        }
        let elements = value
            .elements
            .iter()
            .map(|e| match *e {
                Element::Product { row, class } => Element::Score { row, class },
                other => other,
            })
            .collect();
        Value::new(value.shape.clone(), elements).map_err(|e| self.unsupported(node, e))
    }

    /// Reads an `LSTM` or `GRU` node's attributes and weights.
    fn recurrent(&self, node: &'a NodeProto) -> Result<Recurrent, Error> {
        let lstm = node.op_type() == "LSTM";
        let hidden = attribute_int(node, "hidden_size")
            .filter(|h| *h > 0 && *h <= 1 << 16)
            .ok_or_else(|| self.unsupported(node, "hidden_size is missing or out of range"))?
            as usize;
        let directions = match attribute(node, "direction").and_then(|a| a.s.as_deref()) {
            None | Some(b"forward") => 1,
            Some(b"bidirectional") => 2,
            Some(other) => {
                return Err(self.unsupported(
                    node,
                    format!(
                        "direction {:?}: only forward and bidirectional",
                        shown(&String::from_utf8_lossy(other))
                    ),
                ))
            }
        };
        let defaults: &[&[u8]] = if lstm {
            &[b"Sigmoid", b"Tanh", b"Tanh"]
        } else {
            &[b"Sigmoid", b"Tanh"]
        };
        if let Some(a) = attribute(node, "activations") {
            let standard = a.strings.len() == defaults.len() * directions
                && a.strings
                    .iter()
                    .zip(defaults.iter().cycle())
                    .all(|(s, d)| s.as_slice() == *d);
            if !standard {
                return Err(self.unsupported(node, "activations other than sigmoid and tanh"));
            }
        }
        if attribute(node, "clip").is_some() {
            return Err(self.unsupported(node, "cell clipping (clip)"));
        }
        if attribute_int(node, "input_forget").unwrap_or(0) != 0 {
            return Err(self.unsupported(node, "coupled input and forget gates (input_forget)"));
        }
        let gates = if lstm { 4 } else { 3 };
        let input = |k: usize| node.input.get(k).map(String::as_str).unwrap_or("");
        let (w, _) = self.constant(node, input(1), "the input weights W")?;
        let (r, _) = self.constant(node, input(2), "the recurrent weights R")?;
        let b = match input(3) {
            "" => None,
            name => Some(self.constant(node, name, "the biases B")?.0),
        };
        if !input(4).is_empty() {
            return Err(self.unsupported(
                node,
                "sequence_lens (padded batches) are not imported; export without pack_padded_sequence",
            ));
        }
        let gh = gates * hidden;
        let width = match w.shape[..] {
            [d, rows, width] if d == directions && rows == gh && width > 0 => width,
            _ => {
                return Err(self.unsupported(
                    node,
                    format!("W has shape {:?}, expected [{directions}, {gh}, E]", w.shape),
                ))
            }
        };
        if r.shape != [directions, gh, hidden] {
            return Err(self.unsupported(
                node,
                format!("R has shape {:?}, expected [{directions}, {gh}, {hidden}]", r.shape),
            ));
        }
        if let Some(b) = &b {
            if b.shape != [directions, 2 * gh] {
                return Err(self.unsupported(
                    node,
                    format!("B has shape {:?}, expected [{directions}, {}]", b.shape, 2 * gh),
                ));
            }
        }
        let linear_before_reset = !lstm && attribute_int(node, "linear_before_reset").unwrap_or(0) != 0;
        Ok(Recurrent {
            lstm,
            hidden,
            directions,
            width,
            w,
            r,
            b,
            linear_before_reset,
        })
    }

    /// Reads the head's matrix (and a `Gemm`'s bias) as `[C, D]`.
    fn head(&self, node: &NodeProto) -> Result<(Head, bool), Error> {
        let weight_name = node.input.get(1).map(String::as_str).unwrap_or("");
        let (matrix, mut double) = self.constant(node, weight_name, "the head's weights")?;
        let [rows, cols] = matrix.shape[..] else {
            return Err(self.unsupported(node, format!("the head's weights have shape {:?}", matrix.shape)));
        };
        let transposed = node.op_type() == "Gemm" && attribute_int(node, "transB").unwrap_or(0) != 0;
        if node.op_type() == "Gemm" {
            let unit = |name: &str| attribute(node, name).and_then(|a| a.f).is_none_or(|v| v == 1.0);
            if !unit("alpha") || !unit("beta") || attribute_int(node, "transA").unwrap_or(0) != 0 {
                return Err(self.unsupported(node, "a Gemm other than x W^T + b (alpha, beta 1, transA 0)"));
            }
        }
        // MatMul and Gemm without transB hold W^T [D, C]: the head is [C, D].
        let weight = if transposed {
            matrix
        } else {
            Tensor::transpose_of(&matrix.values, rows, cols)
                .map_err(|e| self.unsupported(node, format!("the head's weights: {e}")))?
        };
        let classes = weight.shape[0];
        let bias = match node.input.get(2).map(String::as_str) {
            Some(name) if node.op_type() == "Gemm" && !name.is_empty() => {
                let (bias, is_double) = self.constant(node, name, "the head's bias")?;
                if bias.values.len() != classes {
                    return Err(self.unsupported(
                        node,
                        format!("the head's bias has {} values for {classes} classes", bias.values.len()),
                    ));
                }
                double |= is_double;
                Some(Tensor {
                    shape: vec![classes],
                    values: bias.values,
                })
            }
            _ => None,
        };
        Ok((Head { weight, bias }, double))
    }

    /// The model: config and tensors in PyTorch's names and gate order.
    fn assemble(
        &self,
        embedding: Option<(Tensor, bool)>,
        layers: Vec<Recurrent>,
        head: Head,
        reads: HeadReads,
        double: bool,
    ) -> Result<OnnxImport, Error> {
        let first = &layers[0];
        let (lstm, hidden, directions) = (first.lstm, first.hidden, first.directions);
        let d = directions * hidden;
        let mut notes = Vec::new();
        let mut tensors = Vec::new();
        let e = first.width;
        if let Some((table, _)) = &embedding {
            if table.shape[1] != e {
                return Err(self.format(format!(
                    "the embedding is [{}, {}] but the first layer reads width {e}",
                    table.shape[0], table.shape[1]
                )));
            }
            notes.push(format!("embedding [{}, {}] (Gather)", table.shape[0], e));
        }
        for (k, layer) in layers.iter().enumerate() {
            let want = if k == 0 { e } else { d };
            if layer.width != want {
                return Err(self.format(format!(
                    "layer {k} reads width {}, but the layer below writes {want}",
                    layer.width
                )));
            }
        }
        let gru_before = !lstm && !first.linear_before_reset;
        if layers
            .iter()
            .any(|l| l.linear_before_reset != first.linear_before_reset)
        {
            return Err(self.format("the GRU layers differ in linear_before_reset"));
        }
        notes.push(format!(
            "{} layer{} of {} ({}), H = {hidden}, gates reordered from ONNX's {} to PyTorch's {}",
            layers.len(),
            if layers.len() == 1 { "" } else { "s" },
            if lstm { "LSTM" } else { "GRU" },
            if directions == 2 { "bidirectional" } else { "forward" },
            if lstm { "i, o, f, c" } else { "z, r, h" },
            if lstm { "i, f, g, o" } else { "r, z, n" },
        ));
        if !lstm {
            notes.push(if gru_before {
                "linear_before_reset = 0: the reset gate multiplies h before the matrix product (gru_reset \"before\")"
                    .into()
            } else {
                "linear_before_reset = 1: PyTorch's GRU".into()
            });
        }
        // Block j of PyTorch's order is block order[j] of ONNX's: the
        // loader's own canonizer, applied here once to write PyTorch's form.
        let cell = if lstm { CellKind::Lstm } else { CellKind::Gru };
        let order = GateOrder::for_layout(Layout::Onnx, cell).ok_or_else(|| self.format("no ONNX gate order"))?;
        let vocab_size = embedding.as_ref().map(|(table, _)| table.shape[0]);
        if let Some((table, _)) = embedding {
            tensors.push(("embedding.weight".to_string(), table));
        }
        for (k, layer) in layers.iter().enumerate() {
            let gh = order.from_blocks().len() * hidden;
            for dir in 0..directions {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let w_rows = slice(&layer.w, dir, gh * layer.width);
                let r_rows = slice(&layer.r, dir, gh * hidden);
                let b_all = match &layer.b {
                    Some(b) => slice(b, dir, 2 * gh).to_vec(),
                    None => vec![0.0; 2 * gh],
                };
                let blocks = |values: &[f64], cols: usize| order.reorder_values(values, hidden * cols);
                tensors.push((
                    format!("encoder.weight_ih_l{k}{suffix}"),
                    Tensor {
                        shape: vec![gh, layer.width],
                        values: blocks(w_rows, layer.width),
                    },
                ));
                tensors.push((
                    format!("encoder.weight_hh_l{k}{suffix}"),
                    Tensor {
                        shape: vec![gh, hidden],
                        values: blocks(r_rows, hidden),
                    },
                ));
                tensors.push((
                    format!("encoder.bias_ih_l{k}{suffix}"),
                    Tensor {
                        shape: vec![gh],
                        values: blocks(&b_all[..gh], 1),
                    },
                ));
                tensors.push((
                    format!("encoder.bias_hh_l{k}{suffix}"),
                    Tensor {
                        shape: vec![gh],
                        values: blocks(&b_all[gh..], 1),
                    },
                ));
            }
        }
        if head.weight.shape[1] != d {
            return Err(self.format(format!(
                "the head reads width {}, but the top layer's state is {d} wide",
                head.weight.shape[1]
            )));
        }
        let classes = head.weight.shape[0];
        // One direction's output at the last position is its final state.
        let per_step = reads == HeadReads::LastOutput && directions == 2;
        notes.push(format!(
            "head [{classes}, {d}]{} on {}",
            if head.bias.is_some() { " with bias" } else { ", no bias" },
            match reads {
                HeadReads::FinalState => "the top layer's final state (h_n): head input \"last\"",
                HeadReads::LastOutput if per_step => "the top layer's output at the last position (out[:, -1]), whose backward half has seen only the last position: head input \"each\", a head at every position, explained at the last",
                HeadReads::LastOutput => "the top layer's output at the last position (out[:, -1]), its final state: head input \"last\"",
            }
        ));
        let has_bias = head.bias.is_some();
        tensors.push(("head.weight".to_string(), head.weight));
        if let Some(bias) = head.bias {
            tensors.push(("head.bias".to_string(), bias));
        }
        let mut encoder = serde_json::json!({
            "cell": if lstm { "lstm" } else { "gru" },
            "input_size": e,
            "hidden_size": hidden,
            "num_layers": layers.len(),
            "bidirectional": directions == 2,
        });
        if gru_before {
            encoder["gru_reset"] = "before".into();
        }
        let mut config = serde_json::json!({
            "format": "lrp-model",
            "version": 1,
            "layout": "pytorch",
            "weights": "model.safetensors",
            "encoder": encoder,
            "attention": null,
            "head": {"input": if per_step { "each" } else { "last" }, "num_classes": classes, "bias": has_bias},
        });
        if let Some(vocab_size) = vocab_size {
            config["embedding"] = true.into();
            config["vocab_size"] = vocab_size.into();
        }
        let config: ModelConfig = serde_json::from_value(config).map_err(|e| {
            self.format(if gru_before {
                format!("a GRU with linear_before_reset = 0 needs the encoder key gru_reset, which this lrp does not know ({e})")
            } else {
                format!("the imported config is invalid: {e}")
            })
        })?;
        config.validate().map_err(|source| Error::Model {
            dir: self.path.to_path_buf(),
            source,
        })?;
        Ok(OnnxImport {
            config,
            tensors,
            double,
            notes,
        })
    }
}

/// Whether any of a recurrent node's weights is stored as float64.
fn layer_double(reader: &Reader<'_>, node: &NodeProto) -> bool {
    node.input
        .iter()
        .skip(1)
        .take(3)
        .filter_map(|x| reader.constants.get(x.as_str()))
        .any(|t| t.data_type() == DOUBLE)
}

/// Direction `dir`'s `len` values of a tensor stacked by direction.
fn slice(tensor: &Tensor, dir: usize, len: usize) -> &[f64] {
    &tensor.values[dir * len..(dir + 1) * len]
}

fn attribute<'n>(node: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    node.attribute.iter().find(|a| a.name() == name)
}

fn attribute_int(node: &NodeProto, name: &str) -> Option<i64> {
    attribute(node, name).and_then(|a| a.i)
}

/// A stored float32 or float64 tensor's shape and values (and whether it
/// is float64), checked: dimensions from 0, as many values as they say,
/// all finite; `external`: its bytes, read from an external data file.
fn float_tensor(tensor: &TensorProto, external: Option<&[u8]>) -> Result<(Tensor, bool), String> {
    let mut shape = Vec::with_capacity(tensor.dims.len());
    let mut count: usize = 1;
    for &dim in &tensor.dims {
        let dim = usize::try_from(dim).map_err(|_| format!("negative dimension in {:?}", tensor.dims))?;
        count = count
            .checked_mul(dim)
            .ok_or_else(|| format!("shape {:?} is too large", tensor.dims))?;
        shape.push(dim);
    }
    let raw = external.or(tensor.raw_data.as_deref());
    let (values, double): (Vec<f64>, bool) = match tensor.data_type() {
        FLOAT => match raw {
            Some(raw) => (
                raw.chunks_exact(4)
                    .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
                false,
            ),
            None => (tensor.float_data.iter().map(|&v| f64::from(v)).collect(), false),
        },
        DOUBLE => match raw {
            Some(raw) => (
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
                true,
            ),
            None => (tensor.double_data.clone(), true),
        },
        other => {
            return Err(format!(
                "element type {other}; only float32 (1) and float64 (11) are read"
            ))
        }
    };
    let stored_bytes = raw.map(<[u8]>::len);
    let element = if double { 8 } else { 4 };
    if values.len() != count || stored_bytes.is_some_and(|n| n != count * element) {
        return Err(format!(
            "shape {:?} needs {count} values, the file holds {}",
            tensor.dims,
            stored_bytes.map_or(values.len(), |n| n / element)
        ));
    }
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("value {k} is {}", values[k]));
    }
    Ok((Tensor { shape, values }, double))
}

/// The bytes of one element of an ONNX element type, for the types read.
fn element_size(data_type: i32) -> Option<usize> {
    match data_type {
        2 | 3 | 9 => Some(1),
        4 | 5 | 10 | 16 => Some(2),
        FLOAT | 6 | 12 => Some(4),
        DOUBLE | 7 | 13 => Some(8),
        _ => None,
    }
}

/// Whether a stored tensor (of any element type) is zero everywhere.
fn all_zero(tensor: &TensorProto) -> bool {
    if !tensor.external_data.is_empty() {
        return false;
    }
    match tensor.raw_data.as_deref() {
        Some(raw) => raw.iter().all(|b| *b == 0),
        None => {
            tensor.float_data.iter().all(|v| *v == 0.0)
                && tensor.double_data.iter().all(|v| *v == 0.0)
                && tensor.int32_data.iter().all(|v| *v == 0)
                && tensor.int64_data.iter().all(|v| *v == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `z0 = ConstantOfShape()`, then `z{k} = Concat(z{k-1}, ... fan_in times)`.
    fn concat_chain(depth: usize, fan_in: usize) -> GraphProto {
        let node = |op: &str, inputs: Vec<String>, output: String| NodeProto {
            op_type: Some(op.into()),
            input: inputs,
            output: vec![output],
            ..Default::default()
        };
        let mut nodes = vec![node("ConstantOfShape", vec!["shape".into()], "z0".into())];
        for k in 1..=depth {
            nodes.push(node("Concat", vec![format!("z{}", k - 1); fan_in], format!("z{k}")));
        }
        GraphProto {
            node: nodes,
            ..Default::default()
        }
    }

    #[test]
    fn the_zero_check_looks_at_each_value_once() {
        for fan_in in [2, 8] {
            let graph = concat_chain(16, fan_in);
            let reader = Reader::new(Path::new("chain.onnx"), &graph).unwrap();
            assert!(reader.is_zero("z16", 0), "fan-in {fan_in}");
            // z16 once, then each of z15 ... z0 once per node naming it
            // (a walk of every path looks fan_in^16 times).
            assert_eq!(reader.zero_visits.get(), 1 + 16 * fan_in, "fan-in {fan_in}");
        }
        // Deeper than the check follows: not zero, and still one look per naming.
        let graph = concat_chain(40, 8);
        let reader = Reader::new(Path::new("chain.onnx"), &graph).unwrap();
        assert!(!reader.is_zero("z40", 0));
        assert!(reader.zero_visits.get() <= 1 + 40 * 8, "{}", reader.zero_visits.get());
    }

    #[test]
    fn a_cycle_is_not_zero() {
        let node = |inputs: &[&str], output: &str| NodeProto {
            op_type: Some("Concat".into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node(&["b", "b"], "a"), node(&["a", "a"], "b")],
            ..Default::default()
        };
        let reader = Reader::new(Path::new("cycle.onnx"), &graph).unwrap();
        assert!(!reader.is_zero("a", 0));
    }
}

#[cfg(test)]
mod symbolic_run_tests {
    use super::*;
    use proto::tensor_shape_proto::{dimension, Dimension};
    use proto::{type_proto, TensorShapeProto, TypeProto, ValueInfoProto};

    fn value_info(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(elem_type),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                value: Some(dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn floats(name: &str, dims: &[i64], first: f32) -> TensorProto {
        let n = dims.iter().product::<i64>() as usize;
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(FLOAT),
            float_data: (0..n).map(|k| first + 0.1 * k as f32).collect(),
            ..Default::default()
        }
    }

    fn ints(name: &str, values: &[i64]) -> TensorProto {
        TensorProto {
            name: Some(name.into()),
            dims: vec![values.len() as i64],
            data_type: Some(7),
            int64_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn node(op: &str, name: &str, input: &[&str], output: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: Some(name.into()),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: output.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        }
    }

    fn int_attribute(name: &str, value: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(value),
            ..Default::default()
        }
    }

    /// Vectors x `[1, 3, 2]` (batch-major), one forward LSTM of H = 1 with
    /// `layout = 1`, then `pick` nodes from its outputs `Y` `[B, T, 1, 1]`
    /// and `Y_h` `[B, 1, 1]` to `features` `[1, 1]`, then a MatMul head of
    /// 2 classes.
    fn batch_major_graph(pick: Vec<NodeProto>) -> GraphProto {
        let mut nodes = vec![node(
            "LSTM",
            "lstm",
            &["x", "W", "R"],
            &["Y", "Y_h"],
            vec![int_attribute("hidden_size", 1), int_attribute("layout", 1)],
        )];
        nodes.extend(pick);
        nodes.push(node("MatMul", "head", &["features", "V"], &["scores"], vec![]));
        GraphProto {
            node: nodes,
            initializer: vec![
                floats("W", &[1, 4, 2], 0.1),
                floats("R", &[1, 4, 1], -0.2),
                floats("V", &[1, 2], 0.5),
                ints("shape", &[1, 1]),
                ints("zero", &[0]),
                ints("last", &[-1]),
                ints("axis1", &[1]),
            ],
            input: vec![value_info("x", FLOAT, &[1, 3, 2])],
            output: vec![value_info("scores", FLOAT, &[1, 2])],
            ..Default::default()
        }
    }

    fn read(graph: &GraphProto) -> Result<OnnxImport, Error> {
        Reader::new(Path::new("g.onnx"), graph)?.read()
    }

    #[test]
    fn a_batch_major_layer_is_followed_to_its_final_state_and_refused_at_its_first_output() {
        // Y_h [B, dirs, H] reshaped: the final state.
        let graph = batch_major_graph(vec![node("Reshape", "r", &["Y_h", "shape"], &["features"], vec![])]);
        let imported = read(&graph).unwrap();
        assert_eq!(imported.config.head.input.name(), "last");
        assert_eq!(imported.config.encoder.input_size, 2);
        // Y [B, T, dirs, H] at the last position: the same, for one direction.
        let last = vec![
            node("Gather", "g", &["Y", "last"], &["y_t"], vec![int_attribute("axis", 1)]),
            node("Reshape", "r", &["y_t", "shape"], &["features"], vec![]),
        ];
        assert_eq!(read(&batch_major_graph(last)).unwrap().config.head.input.name(), "last");
        // At the first position: not a state lrp's heads read.
        let first = vec![
            node("Gather", "g", &["Y", "zero"], &["y_t"], vec![int_attribute("axis", 1)]),
            node("Reshape", "r", &["y_t", "shape"], &["features"], vec![]),
        ];
        let refused = read(&batch_major_graph(first)).unwrap_err().to_string();
        assert!(
            refused.contains("unsupported node MatMul \"head\"")
                && refused.contains("it reads the forward direction's output at position 1 of 3"),
            "{refused}"
        );
        // The sequence reversed before the layer (a Slice of step -1):
        // refused at the layer.
        let mut graph = batch_major_graph(vec![node("Reshape", "r", &["Y_h", "shape"], &["features"], vec![])]);
        graph.initializer.push(ints("minus", &[-1]));
        graph.initializer.push(ints("before_first", &[i64::MIN]));
        graph.node.insert(
            0,
            node(
                "Slice",
                "reverse",
                &["x", "minus", "before_first", "axis1", "minus"],
                &["xt"],
                vec![],
            ),
        );
        graph.node[1].input[0] = "xt".into();
        let refused = read(&graph).unwrap_err().to_string();
        assert!(
            refused.contains(
                "unsupported node LSTM \"lstm\": the bottom layer does not read the input's positions in order"
            ),
            "{refused}"
        );
    }
}
