//! ONNX graphs without ONNX Runtime: the few protobuf messages sieve reads
//! ([`proto`]), finding a BERT-style encoder's hidden states and the nodes
//! that compute hidden states `0..=L` ([`graph`]), and writing a model with
//! chosen outputs and only the nodes and weights they need
//! ([`proto::OnnxModel::with_outputs`]).
//!
//! Shared by the `onnx` backend plugin (which edits graphs in memory
//! before handing them to ONNX Runtime) and the runner's `sieve export`
//! (which saves the graph pruned after the selected layer); the runner
//! must not link ONNX Runtime, so this crate depends on prost only.

pub mod graph;
pub mod proto;

pub use graph::{
    find_hidden_states, model_inputs, needed_nodes, truncated_model, HiddenSource,
    HiddenStateNames, IdType, ModelInputs,
};
pub use proto::OnnxModel;
