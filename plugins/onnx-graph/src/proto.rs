//! The few ONNX protobuf messages this backend reads or builds, and
//! wire-level editing of a model's graph.
//!
//! Only the fields we touch are modelled (field numbers from onnx.proto3).
//! prost drops fields a struct does not declare, so a model is NEVER
//! decoded into these structs and encoded back: [`OnnxModel`] splits the
//! bytes into top-level fields, decodes copies of the ones it needs to read,
//! and rebuilds the model from the untouched original bytes of every field
//! it keeps (initializers, attributes, metadata, opsets...). Appending a
//! length-delimited field to a message is how protobuf extends a repeated
//! field, so new graph outputs are simply appended.

use std::collections::HashSet;
use std::ops::Range;

use prost::bytes::Buf;
use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, WireType};
use prost::Message;

/// `TensorProto.DataType.FLOAT`.
pub const ELEM_FLOAT: i32 = 1;
/// `TensorProto.DataType.INT32`.
pub const ELEM_INT32: i32 = 6;
/// `TensorProto.DataType.INT64`.
pub const ELEM_INT64: i32 = 7;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    /// Only the names (enough for tests that build a graph).
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorName>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    #[prost(string, tag = "7")]
    pub domain: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// `AttributeProto.AttributeType` (2 = INT, 6 = FLOATS, 7 = INTS,
    /// 5 = GRAPH, 10 = GRAPHS).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// `TypeProto` with only its `tensor_type` case.
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<TensorShapeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dimension>,
}

/// `TensorProto` with only its name and where its data is: enough to tell
/// initializers from real inputs (IR < 4 lists initializers among the
/// graph inputs) and to know whether the model file holds its weights.
#[derive(Clone, PartialEq, Message)]
pub struct TensorName {
    #[prost(string, tag = "8")]
    pub name: String,
    /// `TensorProto.DataLocation`: 0 DEFAULT (in the message), 1 EXTERNAL
    /// (in a file beside the model).
    #[prost(int32, tag = "14")]
    pub data_location: i32,
}

/// `TensorProto.DataLocation.EXTERNAL`.
pub const DATA_EXTERNAL: i32 = 1;

/// One dimension: the `value` oneof as two optional fields.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// `AttributeProto.AttributeType` GRAPH and GRAPHS.
const ATTRIBUTE_GRAPH: i32 = 5;
const ATTRIBUTE_GRAPHS: i32 = 10;

impl NodeProto {
    /// Whether the node holds a subgraph (If, Loop, Scan): such a node may
    /// read outer values its inputs do not list.
    pub fn has_subgraph(&self) -> bool {
        self.attribute
            .iter()
            .any(|a| a.r#type == ATTRIBUTE_GRAPH || a.r#type == ATTRIBUTE_GRAPHS)
    }
}

impl ValueInfoProto {
    /// A tensor of `elem_type` with dynamic dimensions named `dims`.
    pub fn tensor(name: &str, elem_type: i32, dims: &[&str]) -> Self {
        let dim = dims
            .iter()
            .map(|d| Dimension {
                dim_value: None,
                dim_param: Some((*d).to_string()),
            })
            .collect();
        ValueInfoProto {
            name: name.to_string(),
            r#type: Some(TypeProto {
                tensor_type: Some(TensorTypeProto {
                    elem_type,
                    shape: Some(TensorShapeProto { dim }),
                }),
            }),
        }
    }

    /// The tensor's dimensions, if it is a tensor with a stated shape.
    pub fn dims(&self) -> Option<&[Dimension]> {
        self.r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.as_slice())
    }

    /// The tensor element type, if this is a tensor.
    pub fn elem_type(&self) -> Option<i32> {
        self.r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .map(|t| t.elem_type)
    }
}

/// One top-level field of a message: its number and the byte ranges of the
/// whole field (key included) and of its payload (length-delimited only).
#[derive(Clone, Debug)]
struct RawField {
    number: u32,
    whole: Range<usize>,
    payload: Option<Range<usize>>,
}

/// Splits a message into its top-level fields without interpreting them.
fn split_fields(bytes: &[u8]) -> Result<Vec<RawField>, String> {
    let mut fields = Vec::new();
    let mut buf = bytes;
    while buf.has_remaining() {
        let start = bytes.len() - buf.remaining();
        let (number, wire_type) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        let payload = match wire_type {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(|e| e.to_string())?;
                None
            }
            WireType::SixtyFourBit => skip(&mut buf, 8, None)?,
            WireType::ThirtyTwoBit => skip(&mut buf, 4, None)?,
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|e| e.to_string())?;
                let len = usize::try_from(len).map_err(|_| "field length overflows".to_string())?;
                let at = bytes.len() - buf.remaining();
                skip(&mut buf, len, Some(at))?
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err("protobuf groups are not used by ONNX".into())
            }
        };
        let end = bytes.len() - buf.remaining();
        fields.push(RawField {
            number,
            whole: start..end,
            payload,
        });
    }
    Ok(fields)
}

fn skip(buf: &mut &[u8], len: usize, at: Option<usize>) -> Result<Option<Range<usize>>, String> {
    if buf.remaining() < len {
        return Err("truncated field".into());
    }
    buf.advance(len);
    Ok(at.map(|at| at..at + len))
}

/// A model split into fields: the graph's nodes, inputs and outputs decoded
/// for reading, everything else kept as bytes.
#[derive(Debug)]
pub struct OnnxModel {
    bytes: Vec<u8>,
    /// Top-level ModelProto fields other than the graph (field 7).
    model_fields: Vec<Range<usize>>,
    /// Offset of the graph's payload in `bytes`.
    graph_start: usize,
    /// GraphProto fields, ranges relative to `graph_start`.
    graph_fields: Vec<RawField>,
    pub nodes: Vec<NodeProto>,
    /// For each node, the index of its field in `graph_fields`.
    node_fields: Vec<usize>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    pub initializers: Vec<String>,
    /// Initializers whose data lives in a file beside the model (external
    /// data): a copy of the model elsewhere does not find them.
    pub external_initializers: Vec<String>,
    /// For each initializer, the index of its field in `graph_fields`.
    initializer_fields: Vec<usize>,
    /// (value_info name, field index), so that a name that becomes an
    /// output can be dropped from value_info.
    value_infos: Vec<(String, usize)>,
}

const MODEL_GRAPH: u32 = 7;
const GRAPH_NODE: u32 = 1;
const GRAPH_INITIALIZER: u32 = 5;
const GRAPH_INPUT: u32 = 11;
const GRAPH_OUTPUT: u32 = 12;
const GRAPH_VALUE_INFO: u32 = 13;

impl OnnxModel {
    /// Splits a serialized ModelProto. Errors name what is wrong, so that a
    /// file that is not ONNX is reported as such.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        let not_onnx = |why: String| format!("not a valid ONNX model ({why})");
        let fields = split_fields(&bytes).map_err(not_onnx)?;
        let mut model_fields = Vec::new();
        let mut graph = None;
        for field in fields {
            if field.number == MODEL_GRAPH {
                if graph.is_some() {
                    return Err(not_onnx("two graphs".into()));
                }
                graph = Some(
                    field
                        .payload
                        .ok_or_else(|| not_onnx("the graph field is not a message".into()))?,
                );
            } else {
                model_fields.push(field.whole);
            }
        }
        let graph = graph.ok_or_else(|| not_onnx("no graph".into()))?;
        let graph_fields =
            split_fields(&bytes[graph.clone()]).map_err(|e| not_onnx(format!("graph: {e}")))?;
        let mut model = OnnxModel {
            model_fields,
            graph_start: graph.start,
            graph_fields: Vec::new(),
            nodes: Vec::new(),
            node_fields: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            initializers: Vec::new(),
            external_initializers: Vec::new(),
            initializer_fields: Vec::new(),
            value_infos: Vec::new(),
            bytes: Vec::new(),
        };
        for (index, field) in graph_fields.iter().enumerate() {
            let Some(payload) = field.payload.clone() else {
                continue;
            };
            let payload = &bytes[graph.start + payload.start..graph.start + payload.end];
            let bad = |what: &str, e: prost::DecodeError| not_onnx(format!("{what}: {e}"));
            match field.number {
                GRAPH_NODE => {
                    model
                        .nodes
                        .push(NodeProto::decode(payload).map_err(|e| bad("node", e))?);
                    model.node_fields.push(index);
                }
                GRAPH_INITIALIZER => {
                    let tensor = TensorName::decode(payload).map_err(|e| bad("initializer", e))?;
                    if tensor.data_location == DATA_EXTERNAL {
                        model.external_initializers.push(tensor.name.clone());
                    }
                    model.initializers.push(tensor.name);
                    model.initializer_fields.push(index);
                }
                GRAPH_INPUT => model
                    .inputs
                    .push(ValueInfoProto::decode(payload).map_err(|e| bad("input", e))?),
                GRAPH_OUTPUT => model
                    .outputs
                    .push(ValueInfoProto::decode(payload).map_err(|e| bad("output", e))?),
                GRAPH_VALUE_INFO => {
                    let info = ValueInfoProto::decode(payload).map_err(|e| bad("value_info", e))?;
                    model.value_infos.push((info.name, index));
                }
                _ => {}
            }
        }
        if model.nodes.is_empty() {
            return Err(not_onnx("the graph has no nodes".into()));
        }
        model.graph_fields = graph_fields;
        model.bytes = bytes;
        Ok(model)
    }

    /// The model with `outputs` (float tensors) as its only graph outputs
    /// and, when `keep` is given, only the nodes it marks and the
    /// initializers those read (the weights of pruned layers are not even
    /// loaded). All other bytes are copied unchanged.
    pub fn with_outputs(&self, outputs: &[String], keep: Option<&[bool]>) -> Vec<u8> {
        let mut dropped = vec![false; self.graph_fields.len()];
        if let Some(keep) = keep {
            for (node, &field) in self.node_fields.iter().enumerate() {
                dropped[field] = !keep[node];
            }
            if let Some(read) = self.read_by_kept_nodes(keep) {
                for (name, &field) in self.initializers.iter().zip(&self.initializer_fields) {
                    dropped[field] = !read.contains(name.as_str());
                }
            }
        }
        for (index, field) in self.graph_fields.iter().enumerate() {
            if field.number == GRAPH_OUTPUT {
                dropped[index] = true;
            }
        }
        // A tensor listed both as output and in value_info is legal but
        // redundant; drop the value_info so the two cannot disagree.
        for (name, index) in &self.value_infos {
            if outputs.contains(name) {
                dropped[*index] = true;
            }
        }
        let mut graph = Vec::with_capacity(self.bytes.len());
        for (index, field) in self.graph_fields.iter().enumerate() {
            if !dropped[index] {
                let start = self.graph_start + field.whole.start;
                graph.extend_from_slice(&self.bytes[start..self.graph_start + field.whole.end]);
            }
        }
        for name in outputs {
            let info = ValueInfoProto::tensor(name, ELEM_FLOAT, &[]);
            // No shape at all: ONNX Runtime infers it.
            let info = ValueInfoProto {
                r#type: info.r#type.map(|mut t| {
                    if let Some(tensor) = t.tensor_type.as_mut() {
                        tensor.shape = None;
                    }
                    t
                }),
                ..info
            };
            encode_key(GRAPH_OUTPUT, WireType::LengthDelimited, &mut graph);
            encode_varint(info.encoded_len() as u64, &mut graph);
            info.encode_raw(&mut graph);
        }
        let mut model = Vec::with_capacity(graph.len() + 1024);
        for range in &self.model_fields {
            model.extend_from_slice(&self.bytes[range.clone()]);
        }
        encode_key(MODEL_GRAPH, WireType::LengthDelimited, &mut model);
        encode_varint(graph.len() as u64, &mut model);
        model.extend_from_slice(&graph);
        model
    }

    /// The values the kept nodes read, or `None` (all of them) when a kept
    /// node has a subgraph, which may read outer values without listing them.
    fn read_by_kept_nodes(&self, keep: &[bool]) -> Option<HashSet<&str>> {
        let mut read = HashSet::new();
        for (node, _) in self.nodes.iter().zip(keep).filter(|(_, &kept)| kept) {
            if node.has_subgraph() {
                return None;
            }
            read.extend(node.input.iter().map(String::as_str));
        }
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Vec<u8> {
        let graph = GraphProto {
            node: vec![
                NodeProto {
                    input: vec!["x".into()],
                    output: vec!["a".into()],
                    op_type: "Relu".into(),
                    ..Default::default()
                },
                NodeProto {
                    input: vec!["a".into(), "w".into()],
                    output: vec!["b".into()],
                    op_type: "Mul".into(),
                    ..Default::default()
                },
            ],
            name: "g".into(),
            initializer: vec![TensorName {
                name: "w".into(),
                data_location: 0,
            }],
            input: vec![ValueInfoProto::tensor("x", ELEM_FLOAT, &["n"])],
            output: vec![ValueInfoProto::tensor("b", ELEM_FLOAT, &["n"])],
        };
        ModelProto {
            ir_version: 8,
            producer_name: "test".into(),
            graph: Some(graph),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn round_trip_keeps_everything_but_outputs() {
        let model = OnnxModel::parse(tiny()).expect("parse");
        assert_eq!(model.nodes.len(), 2);
        assert_eq!(model.outputs[0].name, "b");
        let edited = model.with_outputs(&["a".into(), "b".into()], None);
        let decoded = ModelProto::decode(edited.as_slice()).expect("decode");
        let graph = decoded.graph.expect("graph");
        assert_eq!(decoded.producer_name, "test");
        assert_eq!(decoded.opset_import.len(), 1);
        assert_eq!(graph.node.len(), 2);
        assert_eq!(graph.initializer.len(), 1);
        let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn pruning_drops_unmarked_nodes_and_their_weights() {
        let model = OnnxModel::parse(tiny()).expect("parse");
        let edited = model.with_outputs(&["a".into()], Some(&[true, false]));
        let graph = ModelProto::decode(edited.as_slice())
            .expect("decode")
            .graph
            .expect("graph");
        assert_eq!(graph.node.len(), 1);
        assert_eq!(graph.node[0].op_type, "Relu");
        assert!(graph.initializer.is_empty(), "the pruned node's weight");
    }

    #[test]
    fn weights_in_external_files_are_listed() {
        let mut graph = ModelProto::decode(tiny().as_slice())
            .expect("decode")
            .graph
            .expect("graph");
        graph.initializer[0].data_location = DATA_EXTERNAL;
        let bytes = ModelProto {
            ir_version: 8,
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec();
        let model = OnnxModel::parse(bytes).expect("parse");
        assert_eq!(model.external_initializers, ["w"]);
        assert!(OnnxModel::parse(tiny())
            .expect("parse")
            .external_initializers
            .is_empty());
    }

    #[test]
    fn random_bytes_are_not_onnx() {
        let junk: Vec<u8> = (0..200u32).map(|i| (i * 7919 % 251) as u8).collect();
        let message = OnnxModel::parse(junk).expect_err("error");
        assert!(message.contains("not a valid ONNX model"), "{message}");
    }
}
