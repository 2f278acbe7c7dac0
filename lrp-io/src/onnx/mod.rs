//! Reading an ONNX graph of a recurrent classifier into an lrp model
//! (`lrp import FILE.onnx`).
//!
//! The graph is decoded with `prost` from the ONNX types in [`proto`]
//! (generated once from `onnx.proto` by `tools/onnx-proto`, committed).
//! What is translated: an optional embedding `Gather` of the graph's
//! input, then `LSTM` or `GRU` nodes (one per layer, forward or
//! bidirectional, each reading the one before), then the top layer's
//! final state, then a linear head (`Gemm`, or `MatMul` and `Add`). Between
//! them only shape operators may touch the data (`Transpose`, `Squeeze`,
//! `Unsqueeze`, `Reshape`, `Concat`, `Slice`, `Gather` with a constant
//! index, `Identity`, `Flatten`): what exporters put around a recurrent
//! node to lay out its input and pick its final state. Nodes that only
//! compute shapes, indices or zero initial states (they read no data) are
//! followed only where their values matter. Anything else that reads the
//! data is refused, naming the first such node.
//!
//! ONNX orders gates `i, o, f, c` (LSTM) and `z, r, h` (GRU) and stores
//! both biases in one `B = [Wb; Rb]`; the import writes them in PyTorch's
//! order `i, f, g, o` and `r, z, n`, as `bias_ih` and `bias_hh`.
//!
//! One assumption cannot be read off the shape operators: that the head
//! reads the top layer's final state (for two directions, the forward half
//! after the last position and the backward half after the first, PyTorch's
//! `h_n`). The import says so; `lrp check` against the exporter's scores
//! confirms it.

#[allow(clippy::all, missing_docs, rustdoc::all)]
#[rustfmt::skip]
pub mod proto;
mod scan;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lrp_models::canonize::GateOrder;
use lrp_models::config::{CellKind, Layout};
use lrp_models::{ModelConfig, Tensor};
use prost::Message;

use crate::message::shown;
use std::io::Write;

use crate::{read_file_capped, AtomicFile, Error, LimitKind, Limits};

use proto::{AttributeProto, GraphProto, NodeProto, TensorProto};

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

/// Where a value of the data path stands in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The graph's input (token ids, or vectors).
    Input,
    /// After the embedding.
    Embedded,
    /// After recurrent layer `k` (0 at the bottom).
    Layer(usize),
    /// After the head's matrix product, before its bias.
    Product,
    /// The head's output.
    Scores,
}

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
    import(path, prost::bytes::Bytes::from(bytes), limits)
}

/// [`import_onnx`] on the bytes of the file (`path` names it in messages).
/// Each tensor's `raw_data` is copied out of `bytes`; [`import_onnx`] shares
/// the file's buffer instead.
pub fn import_onnx_bytes(path: &Path, bytes: &[u8], limits: &Limits) -> Result<OnnxImport, Error> {
    import(path, bytes, limits)
}

/// Checks the counts in `bytes`, decodes them and reads the graph.
fn import(path: &Path, bytes: impl prost::bytes::Buf + AsRef<[u8]>, limits: &Limits) -> Result<OnnxImport, Error> {
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
    Reader::new(path, graph)?.read()
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
            Some(tensor) => float_tensor(tensor).map_err(|reason| self.unsupported(node, format!("{what}: {reason}"))),
            None => Err(self.unsupported(
                node,
                format!("{what} ({:?}) is computed in the graph, not stored", shown(name)),
            )),
        }
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
                "the graph has {} inputs besides its weights; lrp imports a graph of one input (token ids or vectors)",
                inputs.len()
            )));
        };
        let mut level: HashMap<&str, Level> = HashMap::from([(input, Level::Input)]);
        let mut embedding: Option<(Tensor, bool)> = None;
        let mut layers: Vec<Recurrent> = Vec::new();
        let mut head: Option<Head> = None;
        let mut double = false;
        for node in &self.graph.node {
            let data: Vec<Level> = node
                .input
                .iter()
                .filter_map(|i| level.get(i.as_str()).copied())
                .collect();
            let Some(&first) = data.first() else {
                continue; // shapes, indices, constants: read where they are used
            };
            if !matches!(node.domain(), "" | "ai.onnx") {
                return Err(self.unsupported(node, format!("operator domain {:?}", shown(node.domain()))));
            }
            if node.op_type() == "Shape" || node.op_type() == "Size" {
                continue; // the data's shape, not its values
            }
            if data.iter().any(|l| *l != first) {
                return Err(self.unsupported(node, "combines values from different stages of the model"));
            }
            let out = match node.op_type() {
                "Gather"
                    if node
                        .input
                        .first()
                        .is_some_and(|x| self.constants.contains_key(x.as_str())) =>
                {
                    if first != Level::Input || embedding.is_some() {
                        return Err(self.unsupported(node, "a table lookup that is not the embedding of the input"));
                    }
                    let (table, is_double) = self.constant(node, &node.input[0], "the embedding table")?;
                    if table.shape.len() != 2 || attribute_int(node, "axis").unwrap_or(0) != 0 {
                        return Err(self.unsupported(node, "the embedding must be a [V, E] table read by rows"));
                    }
                    double |= is_double;
                    embedding = Some((table, is_double));
                    Level::Embedded
                }
                "LSTM" | "GRU" => {
                    let expected = match layers.len() {
                        0 if embedding.is_some() => Level::Embedded,
                        0 => Level::Input,
                        k => Level::Layer(k - 1),
                    };
                    if node.input.first().and_then(|x| level.get(x.as_str())) != Some(&expected) || first != expected {
                        return Err(self.unsupported(
                            node,
                            "a recurrent layer must read the embedding or input (bottom layer) or the layer below it",
                        ));
                    }
                    let layer = self.recurrent(node)?;
                    if let Some(below) = layers.last() {
                        if below.lstm != layer.lstm
                            || below.directions != layer.directions
                            || below.hidden != layer.hidden
                        {
                            return Err(self.unsupported(
                                node,
                                "every layer must have the cell, directions and hidden size of the first",
                            ));
                        }
                    }
                    double |= layer_double(self, node);
                    layers.push(layer);
                    Level::Layer(layers.len() - 1)
                }
                "Gemm" | "MatMul" => {
                    let top = layers.len().checked_sub(1).map(Level::Layer);
                    if top != Some(first) || head.is_some() {
                        return Err(
                            self.unsupported(node, "a matrix product that is not the head on the top layer's state")
                        );
                    }
                    let (found, is_double) = self.head(node)?;
                    double |= is_double;
                    let has_bias = found.bias.is_some();
                    head = Some(found);
                    if node.op_type() == "Gemm" || has_bias {
                        Level::Scores
                    } else {
                        Level::Product
                    }
                }
                "Add" if first == Level::Product => {
                    let other = node
                        .input
                        .iter()
                        .find(|x| !level.contains_key(x.as_str()))
                        .ok_or_else(|| self.unsupported(node, "adds two computed values"))?;
                    let (bias, is_double) = self.constant(node, other, "the head's bias")?;
                    let classes = head.as_ref().map_or(0, |h| h.weight.shape[0]);
                    if bias.values.len() != classes {
                        return Err(self.unsupported(
                            node,
                            format!("the head's bias has {} values for {classes} classes", bias.values.len()),
                        ));
                    }
                    double |= is_double;
                    if let Some(h) = head.as_mut() {
                        h.bias = Some(Tensor {
                            shape: vec![classes],
                            values: bias.values,
                        });
                    }
                    Level::Scores
                }
                "Transpose" | "Squeeze" | "Unsqueeze" | "Reshape" | "Concat" | "Slice" | "Gather" | "Identity"
                | "Flatten" => first,
                other => {
                    let reason = match other {
                        "Softmax" | "Tanh" | "ReduceSum" | "ReduceMean" | "ReduceMax" => {
                            "pooling or attention over the states is not imported (the head must read the final state)"
                        }
                        _ => "not an operator of the supported graphs (embedding, LSTM/GRU layers, final state, linear head)",
                    };
                    return Err(self.unsupported(node, reason));
                }
            };
            for output in &node.output {
                level.insert(output.as_str(), out);
            }
        }
        let outputs: Vec<&str> = self.graph.output.iter().map(|o| o.name()).collect();
        let [output] = outputs[..] else {
            return Err(self.format(format!(
                "the graph has {} outputs; lrp imports a graph whose one output is the class scores",
                outputs.len()
            )));
        };
        if layers.is_empty() {
            return Err(self.format("the graph has no LSTM or GRU node"));
        }
        let head = match (level.get(output), head) {
            (Some(Level::Scores | Level::Product), Some(head)) => head,
            _ => {
                return Err(self.format(format!(
                    "the graph's output {:?} is not the linear head on the top layer's state",
                    shown(output)
                )))
            }
        };
        self.assemble(embedding, layers, head, double)
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
            return Err(self.unsupported(node, "sequence_lens (padded batches) are not imported"));
        }
        for (k, what) in [(5, "initial_h"), (6, "initial_c"), (7, "the peepholes P")] {
            if !self.is_zero(input(k), 0) {
                return Err(self.unsupported(node, format!("{what} is not zero")));
            }
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
        notes.push(format!(
            "head [{classes}, {d}]{} on the top layer's final state (assumed: check the scores with lrp check)",
            if head.bias.is_some() { " with bias" } else { ", no bias" }
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
            "head": {"input": "last", "num_classes": classes, "bias": has_bias},
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
/// all finite, stored in the file (not in external data).
fn float_tensor(tensor: &TensorProto) -> Result<(Tensor, bool), String> {
    if tensor.data_location() == proto::tensor_proto::DataLocation::External || !tensor.external_data.is_empty() {
        return Err("its data is in an external file, which lrp does not read".into());
    }
    let mut shape = Vec::with_capacity(tensor.dims.len());
    let mut count: usize = 1;
    for &dim in &tensor.dims {
        let dim = usize::try_from(dim).map_err(|_| format!("negative dimension in {:?}", tensor.dims))?;
        count = count
            .checked_mul(dim)
            .ok_or_else(|| format!("shape {:?} is too large", tensor.dims))?;
        shape.push(dim);
    }
    let raw = tensor.raw_data.as_deref();
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

/// A model directory written but not yet in place: each file is a
/// temporary file in the directory ([`AtomicFile`]) until
/// [`StagedModelDir::commit`] renames them all into place. Dropped without
/// a commit (an error, a failed check of the model), the temporary files
/// are removed and the directory is as it was.
/// A directory that staging created is removed again with them.
#[derive(Debug)]
pub struct StagedModelDir {
    /// The files, in the order they are put in place (`config.json` last,
    /// so a directory with the new config always has the new weights).
    files: Vec<(PathBuf, AtomicFile)>,
    /// The directory, when staging created it.
    created: Option<PathBuf>,
}

impl StagedModelDir {
    /// Puts every file in place, `config.json` last; returns their paths.
    pub fn commit(mut self) -> Result<Vec<PathBuf>, Error> {
        self.created = None;
        let files = std::mem::take(&mut self.files);
        let mut written = Vec::with_capacity(files.len());
        for (path, file) in files {
            file.commit()?;
            written.push(path);
        }
        Ok(written)
    }
}

impl Drop for StagedModelDir {
    fn drop(&mut self) {
        // Not committed: the temporary files go first, then the directory
        // made for them (only if nothing else was put there meanwhile).
        self.files.clear();
        if let Some(dir) = &self.created {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Writes a model directory, staged ([`StagedModelDir`]): `config.json`
/// (the config with its defaults written out), `model.safetensors` (every
/// tensor in float64 when `double`, else float32) and, when given, the
/// vocabulary's bytes as `vocab.txt`.
///
/// The directory is created if needed. `dir` itself must be a directory or
/// nothing: a symbolic link (even to a directory) is an
/// [`Error::NotDirectoryOutput`]. Every target in it must be a regular file
/// or nothing; all are checked before anything is written, so a refused
/// target leaves every file as it was. The weights stream to their file one
/// tensor after another, without a copy of them in memory.
pub fn stage_model_dir(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(String, Tensor)],
    double: bool,
    vocab: Option<&[u8]>,
) -> Result<StagedModelDir, Error> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    let created = match std::fs::symlink_metadata(dir) {
        Ok(metadata) if metadata.is_dir() => None,
        Ok(metadata) => {
            return Err(Error::NotDirectoryOutput {
                path: dir.to_path_buf(),
                found: crate::read::file_type_name(metadata.file_type()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(fail(dir))?;
            Some(dir.to_path_buf())
        }
        Err(e) => return Err(fail(dir)(e)),
    };
    let weights_path = dir.join(&config.weights);
    let config_path = dir.join("config.json");
    let vocab_path = vocab.map(|_| dir.join(config.vocab.as_deref().unwrap_or("vocab.txt")));
    // Every target checked (and its temporary file made) before any is written.
    let mut vocab_file = vocab_path.as_deref().map(AtomicFile::create).transpose()?;
    let mut weights_file = AtomicFile::create(&weights_path)?;
    let mut config_file = AtomicFile::create(&config_path)?;
    if let (Some(file), Some(bytes), Some(path)) = (vocab_file.as_mut(), vocab, vocab_path.as_deref()) {
        file.write_all(bytes).map_err(fail(path))?;
    }
    write_safetensors(&mut weights_file, tensors, double).map_err(fail(&weights_path))?;
    let mut json = serde_json::to_vec_pretty(config)
        .map_err(std::io::Error::from)
        .map_err(fail(&config_path))?;
    json.push(b'\n');
    config_file.write_all(&json).map_err(fail(&config_path))?;
    let mut files = Vec::with_capacity(3);
    if let (Some(path), Some(file)) = (vocab_path, vocab_file) {
        files.push((path, file));
    }
    files.push((weights_path, weights_file));
    files.push((config_path, config_file));
    Ok(StagedModelDir { files, created })
}

/// Writes `tensors` as a safetensors file (an 8-byte little-endian header
/// length, the JSON header padded with spaces to a multiple of 8 bytes, then
/// each tensor's values in order) in float64 when `double`, else float32,
/// converting a block of values at a time.
fn write_safetensors(out: &mut impl Write, tensors: &[(String, Tensor)], double: bool) -> std::io::Result<()> {
    let (dtype, width) = if double { ("F64", 8) } else { ("F32", 4) };
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let end = offset + tensor.values.len() * width;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": tensor.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = serde_json::to_vec(&header)?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    let mut block = Vec::with_capacity(BLOCK_VALUES * width);
    for (_, tensor) in tensors {
        for values in tensor.values.chunks(BLOCK_VALUES) {
            block.clear();
            for v in values {
                if double {
                    block.extend_from_slice(&v.to_le_bytes());
                } else {
                    block.extend_from_slice(&(*v as f32).to_le_bytes());
                }
            }
            out.write_all(&block)?;
        }
    }
    out.flush()
}

/// Values converted at a time by [`write_safetensors`].
const BLOCK_VALUES: usize = 1 << 16;

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
