//! Finding the hidden states in an ONNX graph, its inputs, and the nodes a
//! truncated pass needs.

use std::collections::{HashMap, HashSet};

use crate::proto::{NodeProto, OnnxModel, ValueInfoProto, ELEM_INT32, ELEM_INT64};

/// Layer-norm operators whose first output is a BERT hidden state: the
/// standard op, and ONNX Runtime's fused forms (an exported graph that was
/// optimised offline has Embed/SkipLayerNormalization instead).
const LAYER_NORMS: [&str; 3] = [
    "LayerNormalization",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
];

/// Where the hidden states come from, for reports and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenSource {
    Explicit,
    GraphOutputs,
    LayerNorms,
}

/// The tensors that hold hidden states 0..=K, embeddings first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenStateNames {
    pub names: Vec<String>,
    pub source: HiddenSource,
}

impl HiddenStateNames {
    /// Encoder layers K.
    pub fn num_layers(&self) -> usize {
        self.names.len() - 1
    }
}

/// The hidden states of `model`: the explicit list if given, else graph
/// outputs that already are all hidden states, else the LayerNorm outputs
/// of a post-LN (BERT-style) encoder.
pub fn find_hidden_states(
    model: &OnnxModel,
    explicit: Option<&[String]>,
) -> Result<HiddenStateNames, String> {
    if let Some(names) = explicit {
        return explicit_names(model, names);
    }
    if let Some(names) = hidden_state_outputs(model) {
        return Ok(HiddenStateNames {
            names,
            source: HiddenSource::GraphOutputs,
        });
    }
    layer_norm_outputs(model)
}

fn explicit_names(model: &OnnxModel, names: &[String]) -> Result<HiddenStateNames, String> {
    // One name is a graph cut after the embeddings (hidden state 0 only),
    // as `sieve export` writes when every selected neuron is in layer 0.
    if names.is_empty() {
        return Err(
            "`hidden_states` is empty; list the embeddings' output first, then each layer's"
                .to_string(),
        );
    }
    let produced = produced_names(model);
    if let Some(missing) = names.iter().find(|n| !produced.contains(n.as_str())) {
        return Err(format!(
            "`hidden_states` names '{missing}', which no node of the graph produces"
        ));
    }
    Ok(HiddenStateNames {
        names: names.to_vec(),
        source: HiddenSource::Explicit,
    })
}

/// Graph outputs named `...hidden_state...<n>` for n = 0..=K (what an
/// export with `output_hidden_states=True` gives).
fn hidden_state_outputs(model: &OnnxModel) -> Option<Vec<String>> {
    let mut numbered: Vec<(usize, String)> = model
        .outputs
        .iter()
        .filter(|o| o.name.to_lowercase().contains("hidden_state"))
        .filter_map(|o| trailing_number(&o.name).map(|n| (n, o.name.clone())))
        .collect();
    numbered.sort();
    let contiguous = numbered.iter().enumerate().all(|(i, (n, _))| i == *n);
    (numbered.len() >= 2 && contiguous).then(|| numbered.into_iter().map(|(_, s)| s).collect())
}

fn trailing_number(name: &str) -> Option<usize> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    name[name.len() - digits..].parse().ok()
}

/// The embeddings LayerNorm, then every second LayerNorm (each layer has
/// one after attention and one at its output; the output one is the
/// layer's hidden state).
fn layer_norm_outputs(model: &OnnxModel) -> Result<HiddenStateNames, String> {
    let norms = layer_norms(model);
    if norms.len() < 3 {
        return Err(format!(
            "no hidden states found: the graph has {} layer normalisation(s) (LayerNormalization \
             nodes or their decomposed ReduceMean/Sub/Div form), not the embeddings' plus two \
             per layer of a BERT-style encoder; list the hidden states' tensor names in \
             `hidden_states` (embeddings first)",
            norms.len()
        ));
    }
    if norms.len().is_multiple_of(2) {
        return Err(format!(
            "cannot tell the hidden states apart: the graph has {} layer normalisations, \
             expected 1 + 2 per layer (post-LN BERT); list the hidden states' tensor names in \
             `hidden_states` (embeddings first)",
            norms.len()
        ));
    }
    Ok(HiddenStateNames {
        names: norms.iter().step_by(2).map(|s| s.to_string()).collect(),
        source: HiddenSource::LayerNorms,
    })
}

/// The outputs of the graph's layer normalisations, in node order: the
/// first output of a LayerNormalization-family node, or the end of a
/// decomposed one. Exports below opset 17 have no LayerNormalization op
/// and spell it out as `d = x - ReduceMean(x)`, `d / Sqrt(ReduceMean(d^2)
/// + eps)`, then `* gamma + beta`: found from its `Div`.
fn layer_norms(model: &OnnxModel) -> Vec<&str> {
    let producer: HashMap<&str, &NodeProto> = model
        .nodes
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut consumers: HashMap<&str, Vec<&NodeProto>> = HashMap::new();
    for node in &model.nodes {
        for input in &node.input {
            consumers.entry(input.as_str()).or_default().push(node);
        }
    }
    let mut norms = Vec::new();
    for node in &model.nodes {
        if LAYER_NORMS.contains(&node.op_type.as_str()) {
            norms.extend(node.output.first().map(String::as_str));
        } else if is_decomposed_norm(node, &producer) {
            norms.extend(after_affine(node, &consumers));
        }
    }
    norms
}

/// Whether `div` is `(x - ReduceMean(x)) / ...`.
fn is_decomposed_norm(div: &NodeProto, producer: &HashMap<&str, &NodeProto>) -> bool {
    let produced_by = |name: Option<&String>, op: &str| {
        name.and_then(|n| producer.get(n.as_str()).copied())
            .filter(|node| node.op_type == op)
    };
    if div.op_type != "Div" {
        return false;
    }
    let Some(sub) = produced_by(div.input.first(), "Sub") else {
        return false;
    };
    produced_by(sub.input.get(1), "ReduceMean")
        .is_some_and(|mean| !mean.input.is_empty() && mean.input.first() == sub.input.first())
}

/// The output of the normalisation's scale and shift: the `Div`'s output,
/// through a following `Mul` and then `Add` when each is its only consumer.
fn after_affine<'a>(
    div: &'a NodeProto,
    consumers: &HashMap<&str, Vec<&'a NodeProto>>,
) -> Option<&'a str> {
    let mut out = div.output.first()?.as_str();
    for op in ["Mul", "Add"] {
        match consumers.get(out).map(Vec::as_slice) {
            Some([next]) if next.op_type == op => match next.output.first() {
                Some(next_out) => out = next_out.as_str(),
                None => break,
            },
            _ => break,
        }
    }
    Some(out)
}

fn produced_names(model: &OnnxModel) -> HashSet<&str> {
    model
        .nodes
        .iter()
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect()
}

/// Which nodes compute `outputs`: a backward walk over the node list, which
/// ONNX requires to be topologically sorted. A node with a subgraph is kept
/// whenever anything after it is (its hidden reads are unknown).
pub fn needed_nodes(model: &OnnxModel, outputs: &[String]) -> Vec<bool> {
    let mut wanted: HashSet<&str> = outputs.iter().map(String::as_str).collect();
    let mut keep = vec![false; model.nodes.len()];
    for (index, node) in model.nodes.iter().enumerate().rev() {
        if node.output.iter().any(|o| wanted.contains(o.as_str())) {
            keep[index] = true;
            wanted.extend(node.input.iter().map(String::as_str));
            if node.has_subgraph() {
                // Conservative: keep everything before a control-flow node.
                keep[..index].fill(true);
                break;
            }
        }
    }
    keep
}

/// The model cut after hidden state `last_layer`: hidden states
/// `0..=last_layer` are its only graph outputs, and only the nodes and
/// weights they need are kept (what the plugin runs for a truncated pass,
/// and what `sieve export` saves). `last_layer` must be at most
/// `hidden.num_layers()`.
pub fn truncated_model(model: &OnnxModel, hidden: &HiddenStateNames, last_layer: usize) -> Vec<u8> {
    let outputs = &hidden.names[..=last_layer];
    let keep = needed_nodes(model, outputs);
    model.with_outputs(outputs, Some(&keep))
}

/// Integer type of the id inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdType {
    I64,
    I32,
}

/// The model's inputs, by role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInputs {
    pub input_ids: (String, IdType),
    pub attention_mask: (String, IdType),
    pub token_type_ids: Option<(String, IdType)>,
}

/// Finds input_ids, attention_mask and (optional) token_type_ids among the
/// graph inputs; any other input, or a non-integer type, is an error.
pub fn model_inputs(model: &OnnxModel) -> Result<ModelInputs, String> {
    let mut ids = None;
    let mut mask = None;
    let mut types = None;
    let initializers: HashSet<&str> = model.initializers.iter().map(String::as_str).collect();
    let real_inputs = model
        .inputs
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()));
    for input in real_inputs {
        let slot = match input.name.as_str() {
            "input_ids" => &mut ids,
            "attention_mask" => &mut mask,
            "token_type_ids" => &mut types,
            other => {
                return Err(format!(
                    "the model has an input '{other}' this backend cannot fill (known: \
                     input_ids, attention_mask, token_type_ids)"
                ))
            }
        };
        let id_type = match input.elem_type() {
            Some(ELEM_INT64) => IdType::I64,
            Some(ELEM_INT32) => IdType::I32,
            other => {
                return Err(format!(
                    "model input '{}' has element type {other:?}; only int64 (7) and int32 (6) \
                     are supported",
                    input.name
                ))
            }
        };
        check_dynamic_shape(input)?;
        *slot = Some((input.name.clone(), id_type));
    }
    let missing = |what: &str| format!("the model has no '{what}' input");
    Ok(ModelInputs {
        input_ids: ids.ok_or_else(|| missing("input_ids"))?,
        attention_mask: mask.ok_or_else(|| missing("attention_mask"))?,
        token_type_ids: types,
    })
}

/// Batches are padded to their longest sequence, so both dimensions of an
/// id input must be free. A fixed size is refused before any run rather than
/// failing inside ONNX Runtime on the first batch that differs.
fn check_dynamic_shape(input: &ValueInfoProto) -> Result<(), String> {
    let Some(dims) = input.dims() else {
        return Ok(()); // no shape stated: anything goes
    };
    let shown: Vec<String> = dims
        .iter()
        .map(|d| match (d.dim_value, &d.dim_param) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) if !p.is_empty() => p.clone(),
            _ => "?".into(),
        })
        .collect();
    if dims.len() != 2 {
        return Err(format!(
            "model input '{}' has shape [{}]; this backend feeds [batch, sequence]",
            input.name,
            shown.join(", ")
        ));
    }
    if dims.iter().any(|d| d.dim_value.is_some_and(|v| v > 0)) {
        return Err(format!(
            "model input '{}' has the fixed shape [{}]; this backend pads each batch to its \
             longest sequence and needs dynamic batch and sequence dimensions (re-export \
             the model with dynamic axes for both)",
            input.name,
            shown.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Dimension, ModelProto, NodeProto, TensorShapeProto, ELEM_FLOAT};
    use prost::Message;

    fn model_with_inputs(inputs: Vec<ValueInfoProto>) -> OnnxModel {
        let graph = crate::proto::GraphProto {
            node: vec![NodeProto {
                input: vec!["input_ids".into()],
                output: vec!["y".into()],
                op_type: "Identity".into(),
                ..Default::default()
            }],
            input: inputs,
            ..Default::default()
        };
        let bytes = ModelProto {
            ir_version: 8,
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec();
        OnnxModel::parse(bytes).expect("parse")
    }

    fn fixed(name: &str, elem_type: i32, dims: &[i64]) -> ValueInfoProto {
        let mut info = ValueInfoProto::tensor(name, elem_type, &[]);
        let tensor = info.r#type.as_mut().and_then(|t| t.tensor_type.as_mut());
        tensor.expect("tensor").shape = Some(TensorShapeProto {
            dim: dims
                .iter()
                .map(|&v| Dimension {
                    dim_value: Some(v),
                    dim_param: None,
                })
                .collect(),
        });
        info
    }

    #[test]
    fn int32_inputs_without_token_types_are_found() {
        let dynamic = |name| ValueInfoProto::tensor(name, ELEM_INT32, &["batch", "sequence"]);
        let model = model_with_inputs(vec![dynamic("input_ids"), dynamic("attention_mask")]);
        let inputs = model_inputs(&model).expect("inputs");
        assert_eq!(inputs.input_ids, ("input_ids".into(), IdType::I32));
        assert_eq!(inputs.token_type_ids, None);
    }

    #[test]
    fn fixed_shapes_and_unknown_inputs_are_refused() {
        let ok = ValueInfoProto::tensor("attention_mask", ELEM_INT64, &["b", "s"]);
        let model = model_with_inputs(vec![fixed("input_ids", ELEM_INT64, &[1, 128]), ok.clone()]);
        let message = model_inputs(&model).expect_err("fixed");
        assert!(message.contains("fixed shape [1, 128]"), "{message}");
        let model = model_with_inputs(vec![fixed("input_ids", ELEM_INT64, &[8]), ok.clone()]);
        let message = model_inputs(&model).expect_err("rank 1");
        assert!(message.contains("[batch, sequence]"), "{message}");
        let pixels = ValueInfoProto::tensor("pixel_values", ELEM_FLOAT, &["b"]);
        let model = model_with_inputs(vec![pixels, ok]);
        let message = model_inputs(&model).expect_err("unknown");
        assert!(message.contains("'pixel_values'"), "{message}");
    }

    #[test]
    fn one_explicit_name_is_a_graph_cut_after_the_embeddings() {
        let dynamic = |name| ValueInfoProto::tensor(name, ELEM_INT64, &["batch", "sequence"]);
        let model = model_with_inputs(vec![dynamic("input_ids"), dynamic("attention_mask")]);
        let names = find_hidden_states(&model, Some(&["y".to_string()])).expect("one state");
        assert_eq!(
            (names.num_layers(), names.source),
            (0, HiddenSource::Explicit)
        );
        let message = find_hidden_states(&model, Some(&[])).expect_err("empty list");
        assert!(message.contains("empty"), "{message}");
    }

    #[test]
    fn trailing_numbers() {
        assert_eq!(trailing_number("hidden_states.12"), Some(12));
        assert_eq!(trailing_number("hidden_states"), None);
    }
}
