//! A count of what decoding an ONNX file would allocate, taken from the
//! protobuf wire format before anything is decoded.
//!
//! `prost` decodes a whole `ModelProto` at once, and an entry costs far
//! more decoded than in the file: an empty `NodeProto` is 2 bytes of file
//! and 240 bytes of memory, an empty `AttributeProto` 2 bytes and 1,640
//! (it holds a `TensorProto`, a `GraphProto` and a `SparseTensorProto`
//! inline), an integer of a packed list 1 byte and 8. So the file's size
//! alone does not bound the decoded model. This scan walks the wire format
//! once, without allocating (a fixed stack of nested messages), and counts:
//!
//! - nodes (`NodeProto`) of the graph and of the subgraphs its attributes
//!   hold ([`Limits::max_graph_nodes`]);
//! - attributes (`AttributeProto`) of those nodes
//!   ([`Limits::max_graph_attributes`]);
//! - entries: every other message, every string or bytes field and every
//!   element of an integer list (initializers, inputs, outputs, value_info,
//!   node input and output names, dims, metadata, ...), each at most 336
//!   bytes decoded ([`Limits::max_graph_entries`]). The parts this scan does
//!   not look into (value_info's types, functions, training info, sparse
//!   tensors, annotations, metadata) count one entry per byte, which bounds
//!   any message or integer inside them.
//!
//! Not counted: float and double lists (`float_data`, `double_data`, an
//! attribute's `floats`), which decode to as many bytes as they take in the
//! file, and `raw_data`, which shares the file's buffer.
//!
//! [`Limits::max_graph_nodes`]: crate::Limits::max_graph_nodes
//! [`Limits::max_graph_attributes`]: crate::Limits::max_graph_attributes
//! [`Limits::max_graph_entries`]: crate::Limits::max_graph_entries

use crate::{LimitKind, Limits};

/// How deep messages may nest: `prost`'s own recursion limit.
const MAX_DEPTH: usize = 100;

/// The messages the scan looks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
}

/// What a field of a message is, as far as memory goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// A message the scan looks into.
    Message(Kind),
    /// A message the scan does not look into: one entry per byte.
    Opaque,
    /// A list of integers (packed: one entry per integer).
    Integers,
    /// A list of floats or doubles, or `raw_data`: as large decoded as in the file.
    Data,
    /// A string, bytes or scalar: one entry if it is a string or bytes.
    Plain,
}

/// The fields of `onnx.proto` (`tools/onnx-proto/onnx.proto`) by number.
fn field(kind: Kind, number: u64) -> Field {
    use Field::*;
    match (kind, number) {
        // ModelProto: graph; opset_import, metadata_props, training_info,
        // functions, configuration.
        (Kind::Model, 7) => Message(Kind::Graph),
        (Kind::Model, 8 | 14 | 20 | 25 | 26) => Opaque,
        // GraphProto: node, initializer; sparse_initializer, input, output,
        // value_info, quantization_annotation, metadata_props.
        (Kind::Graph, 1) => Message(Kind::Node),
        (Kind::Graph, 5) => Message(Kind::Tensor),
        (Kind::Graph, 11..=16) => Opaque,
        // NodeProto: attribute; metadata_props, device_configurations.
        (Kind::Node, 5) => Message(Kind::Attribute),
        (Kind::Node, 9 | 10) => Opaque,
        // AttributeProto: t, g, tensors, graphs; floats; ints; sparse_tensor,
        // tp, sparse_tensors, type_protos.
        (Kind::Attribute, 5 | 10) => Message(Kind::Tensor),
        (Kind::Attribute, 6 | 11) => Message(Kind::Graph),
        (Kind::Attribute, 7) => Data,
        (Kind::Attribute, 8) => Integers,
        (Kind::Attribute, 14 | 15 | 22 | 23) => Opaque,
        // TensorProto: dims, int32_data, int64_data, uint64_data; float_data,
        // double_data, raw_data; segment, external_data, metadata_props.
        (Kind::Tensor, 1 | 5 | 7 | 11) => Integers,
        (Kind::Tensor, 4 | 9 | 10) => Data,
        (Kind::Tensor, 3 | 13 | 16) => Opaque,
        _ => Plain,
    }
}

/// Why the scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The bytes are not protobuf (the message says where).
    Malformed(String),
    /// A count passed its limit.
    Limit(LimitKind, u64),
}

/// The counts of a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub nodes: u64,
    pub attributes: u64,
    pub entries: u64,
}

impl Counts {
    fn check(&self, limits: &Limits) -> Result<(), Refusal> {
        for (count, limit, kind) in [
            (self.nodes, limits.max_graph_nodes, LimitKind::GraphNodes),
            (self.attributes, limits.max_graph_attributes, LimitKind::GraphAttributes),
            (self.entries, limits.max_graph_entries, LimitKind::GraphEntries),
        ] {
            if count > limit as u64 {
                return Err(Refusal::Limit(kind, limit as u64));
            }
        }
        Ok(())
    }
}

/// Scans the bytes of a `ModelProto`, refusing them as soon as a count
/// passes its limit in `limits` or the wire format is broken. Linear in
/// the bytes; allocates nothing.
pub(crate) fn scan(bytes: &[u8], limits: &Limits) -> Result<Counts, Refusal> {
    let mut counts = Counts::default();
    // The messages being read, innermost last: what each is and where it ends.
    let mut open = [(Kind::Model, 0usize); MAX_DEPTH];
    open[0] = (Kind::Model, bytes.len());
    let mut depth = 1;
    let mut at = 0;
    while depth > 0 {
        let (kind, end) = open[depth - 1];
        if at == end {
            depth -= 1;
            continue;
        }
        let key = varint(bytes, &mut at, end)?;
        let number = key >> 3;
        if number == 0 {
            return Err(malformed(at, "field number 0"));
        }
        let what = field(kind, number);
        match key & 7 {
            // A varint: an integer of an unpacked list is an entry.
            0 => {
                varint(bytes, &mut at, end)?;
                if what == Field::Integers {
                    counts.entries += 1;
                }
            }
            1 => at = skip(at, 8, end)?,
            5 => at = skip(at, 4, end)?,
            2 => {
                let length = varint(bytes, &mut at, end)?;
                let inner = usize::try_from(length)
                    .ok()
                    .and_then(|n| at.checked_add(n))
                    .filter(|&inner| inner <= end)
                    .ok_or_else(|| malformed(at, "a field runs past the end of its message"))?;
                match what {
                    Field::Message(child) => {
                        match child {
                            Kind::Node => counts.nodes += 1,
                            Kind::Attribute => counts.attributes += 1,
                            _ => counts.entries += 1,
                        }
                        if depth == MAX_DEPTH {
                            return Err(malformed(at, "messages nested more than 100 deep"));
                        }
                        open[depth] = (child, inner);
                        depth += 1;
                        counts.check(limits)?;
                        continue; // the child's fields are read next
                    }
                    Field::Opaque => counts.entries += 1 + (inner - at) as u64,
                    // Every byte below 0x80 ends one varint.
                    Field::Integers => counts.entries += bytes[at..inner].iter().filter(|b| **b < 0x80).count() as u64,
                    Field::Data => {}
                    Field::Plain => counts.entries += 1,
                }
                at = inner;
            }
            other => return Err(malformed(at, &format!("wire type {other}"))),
        }
        counts.check(limits)?;
    }
    Ok(counts)
}

fn malformed(at: usize, what: &str) -> Refusal {
    Refusal::Malformed(format!("{what} at byte {at}"))
}

/// `at + length`, if it stays within `end`.
fn skip(at: usize, length: usize, end: usize) -> Result<usize, Refusal> {
    at.checked_add(length)
        .filter(|&next| next <= end)
        .ok_or_else(|| malformed(at, "a field runs past the end of its message"))
}

/// The varint at `at` (at most 10 bytes, before `end`), moving `at` past it.
fn varint(bytes: &[u8], at: &mut usize, end: usize) -> Result<u64, Refusal> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        if *at >= end {
            return Err(malformed(*at, "a number runs past the end of its message"));
        }
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(malformed(*at, "a number longer than 10 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};
    use prost::Message;

    fn generous() -> Limits {
        Limits {
            max_graph_nodes: usize::MAX,
            max_graph_attributes: usize::MAX,
            max_graph_entries: usize::MAX,
            ..Limits::default()
        }
    }

    #[test]
    fn counts_nodes_attributes_and_entries_at_every_depth() {
        let tensor = TensorProto {
            dims: vec![2, 3],
            float_data: vec![0.0; 6],
            raw_data: Some(vec![0; 24].into()),
            name: Some("w".into()),
            ..Default::default()
        };
        let inner = GraphProto {
            node: vec![NodeProto::default(); 3],
            ..Default::default()
        };
        let node = NodeProto {
            input: vec!["a".into(), "b".into()],
            attribute: vec![
                AttributeProto {
                    g: Some(inner),
                    ..Default::default()
                },
                AttributeProto {
                    ints: vec![1, 2, 300],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                node: vec![node, NodeProto::default()],
                initializer: vec![tensor],
                ..Default::default()
            }),
            ..Default::default()
        };
        let counts = scan(&model.encode_to_vec(), &generous()).unwrap();
        // Entries: the graph, its initializer and the subgraph (3); the
        // initializer's 2 dims and name (3); the node's 2 inputs (2); the
        // attribute's 3 ints (3).
        assert_eq!(
            counts,
            Counts {
                nodes: 5,
                attributes: 2,
                entries: 11
            }
        );
    }

    #[test]
    fn empty_messages_are_refused_at_the_first_past_the_limit() {
        let limits = Limits {
            max_graph_nodes: 10,
            ..Limits::default()
        };
        let mut bytes = vec![0x3a, 0]; // ModelProto.graph, whose length is patched below
        let nodes = b"\x0a\x00".repeat(11); // GraphProto.node, empty, 11 times
        bytes[1] = nodes.len() as u8;
        bytes.extend_from_slice(&nodes);
        assert_eq!(scan(&bytes, &limits), Err(Refusal::Limit(LimitKind::GraphNodes, 10)));
        bytes.truncate(bytes.len() - 2);
        bytes[1] -= 2;
        assert_eq!(scan(&bytes, &limits).unwrap().nodes, 10);
    }

    #[test]
    fn broken_and_deep_input_is_malformed() {
        for bytes in [&b"\x3a\x05\x0a"[..], b"\x08\xff", b"\x00", b"\x0b"] {
            assert!(
                matches!(scan(bytes, &generous()), Err(Refusal::Malformed(_))),
                "{bytes:?}"
            );
        }
        // Graph -> node -> attribute -> graph -> ... 150 deep, lengths
        // written from the inside out.
        let mut message: Vec<u8> = Vec::new();
        for level in 0..150 {
            let tag = match level % 3 {
                0 => 0x32u8, // AttributeProto.g
                1 => 0x2a,   // NodeProto.attribute
                _ => 0x0a,   // GraphProto.node
            };
            let mut outer = vec![tag];
            prost::encoding::encode_varint(message.len() as u64, &mut outer);
            outer.extend_from_slice(&message);
            message = outer;
        }
        let mut model = vec![0x3a];
        prost::encoding::encode_varint(message.len() as u64, &mut model);
        model.extend_from_slice(&message);
        assert!(matches!(scan(&model, &generous()), Err(Refusal::Malformed(m)) if m.contains("100 deep")));
    }
}
