//! Finding the hidden states in an ONNX graph, its inputs, and the nodes a
//! truncated pass needs.

use std::collections::HashSet;

use crate::proto::{OnnxModel, ELEM_INT32, ELEM_INT64};

/// Layer-norm operators whose first output is a BERT hidden state: the
/// standard op, and ONNX Runtime's fused forms (an exported graph that was
/// optimised offline has Embed/SkipLayerNormalization instead).
const LAYER_NORMS: [&str; 3] = [
    "LayerNormalization",
    "SkipLayerNormalization",
    "EmbedLayerNormalization",
];

/// `AttributeProto.AttributeType` GRAPH and GRAPHS: a node with a subgraph
/// may read outer values its inputs do not list.
const ATTRIBUTE_GRAPH: i32 = 5;
const ATTRIBUTE_GRAPHS: i32 = 10;

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
    if names.len() < 2 {
        return Err(format!(
            "`hidden_states` lists {} tensor(s); it needs the embeddings' output and at least \
             one layer's",
            names.len()
        ));
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
    let norms: Vec<&str> = model
        .nodes
        .iter()
        .filter(|n| LAYER_NORMS.contains(&n.op_type.as_str()))
        .filter_map(|n| n.output.first().map(String::as_str))
        .collect();
    if norms.len() < 3 {
        return Err(format!(
            "no hidden states found: the graph has {} LayerNormalization node(s), not the \
             embeddings' plus two per layer of a BERT-style encoder; list the hidden states' \
             tensor names in `hidden_states` (embeddings first)",
            norms.len()
        ));
    }
    if norms.len() % 2 == 0 {
        return Err(format!(
            "cannot tell the hidden states apart: the graph has {} LayerNormalization nodes, \
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
        let has_subgraph = node
            .attribute
            .iter()
            .any(|a| a.r#type == ATTRIBUTE_GRAPH || a.r#type == ATTRIBUTE_GRAPHS);
        if node.output.iter().any(|o| wanted.contains(o.as_str())) {
            keep[index] = true;
            wanted.extend(node.input.iter().map(String::as_str));
            if has_subgraph {
                // Conservative: keep everything before a control-flow node.
                keep[..index].fill(true);
                break;
            }
        }
    }
    keep
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
        *slot = Some((input.name.clone(), id_type));
    }
    let missing = |what: &str| format!("the model has no '{what}' input");
    Ok(ModelInputs {
        input_ids: ids.ok_or_else(|| missing("input_ids"))?,
        attention_mask: mask.ok_or_else(|| missing("attention_mask"))?,
        token_type_ids: types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_numbers() {
        assert_eq!(trailing_number("hidden_states.12"), Some(12));
        assert_eq!(trailing_number("hidden_states"), None);
    }
}
