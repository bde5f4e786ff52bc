//! Sieve backend plugin `onnx`: BERT-style encoders exported to ONNX, run by
//! ONNX Runtime (loaded at run time through `ort`'s `load-dynamic`), every
//! layer's hidden state.
//!
//! Real exports only output the last hidden state. The graph is edited in
//! memory (see [`proto`]) so that the hidden states become outputs: the
//! tensors named by `hidden_states`, else graph outputs that already are
//! all hidden states, else the layer-norm outputs of a post-LN encoder
//! (embeddings LayerNorm, then every second one; LayerNormalization nodes,
//! ONNX Runtime's fused forms, or the ReduceMean/Sub/Div chain of exports
//! below opset 17). A request for layers `0..=L` with `L < K` runs a graph
//! pruned to the nodes (and weights) those states need, so the work really
//! stops at layer L (one session per L, built on first use and cached).
//!
//! Tokenisation, windowing, batching and pooling are the shared ones of
//! `sieve-encoder-common`, so rows match the candle backend's row for row.
//!
//! Parameters (the spec's `model.params`, plus `model` from `model.path`):
//!
//! | name | meaning |
//! |---|---|
//! | `model` | the .onnx file (required) |
//! | `tokenizer` | folder with tokenizer.json or vocab.txt (default: the model's folder; relative to it when relative) |
//! | `runtime` | libonnxruntime.so (default: `ORT_DYLIB_PATH`, `SIEVE_ORT_LIB`, else `assets/onnxruntime/` near the current directory or executable; relative to the model's folder when relative) |
//! | `threads` | ONNX Runtime intra-op threads (default: `RAYON_NUM_THREADS`, which the runner sets from the spec's `threads`, else ONNX Runtime's own choice) |
//! | `optimization` | disable, basic, extended or all (default all) |
//! | `max_length` | longest sequence in tokens, specials included (default 512); longer units are windowed |
//! | `batch_tokens` | most padded tokens per forward pass (default 8192) |
//! | `hidden_states` | tensor names of hidden states 0..=K, embeddings first (default: found in the graph) |

mod params;
pub mod runtime;

// The graph code has no ONNX Runtime in it and lives in its own crate,
// shared with the runner's `sieve export`; re-exported under the old paths.
pub use sieve_onnx_graph::{graph, proto};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{DynValue, Tensor};
use sieve_core::{EncodeRequest, EncodedRows, EncoderPlugin, ModelDescription};
use sieve_encoder_common::{
    encode_request, EncodeLimits, HiddenStates, PaddedBatch, TokenizerBundle,
};

pub use graph::{HiddenSource, HiddenStateNames, IdType, ModelInputs};
pub use params::OnnxParams;
use proto::OnnxModel;

/// `Session::run` takes `&mut self` in ort, so a session serves one batch
/// at a time; ONNX Runtime's intra-op pool already keeps the cores busy.
const CONCURRENT_BATCHES: usize = 1;

type SharedSession = Arc<Mutex<Session>>;

/// A loaded ONNX model and its tokenizer, ready to encode requests.
pub struct OnnxBackend {
    env: Environment,
    model: OnnxModel,
    hidden: HiddenStateNames,
    inputs: ModelInputs,
    tokenizer: TokenizerBundle,
    description: ModelDescription,
    limits: EncodeLimits,
    threads: Option<usize>,
    optimization: GraphOptimizationLevel,
    /// Sessions by last layer: the full graph at K, pruned ones below.
    sessions: Mutex<HashMap<usize, SharedSession>>,
}

impl OnnxBackend {
    /// Loads the runtime, the model and its tokenizer, and runs one tiny
    /// pass to learn the hidden size (the graph does not state it plainly).
    pub fn open(params: &OnnxParams) -> Result<Self, String> {
        let model_file = params.model_file()?;
        let library = runtime::locate(params.runtime_path())?;
        let env = runtime::environment(&library)?;
        let (model, inputs, hidden) = read_graph(params, model_file)?;
        let tokenizer = TokenizerBundle::from_folder(&params.tokenizer_folder())?;
        let max_positions = params.max_positions()?;
        let num_layers = hidden.num_layers();
        let mut backend = OnnxBackend {
            env,
            model,
            hidden,
            inputs,
            tokenizer,
            description: ModelDescription {
                name: params.model_name().into(),
                architecture: "bert-onnx".into(),
                num_layers: num_layers as u32,
                hidden_size: 0,
                max_positions: max_positions as u32,
            },
            limits: EncodeLimits {
                max_positions,
                num_layers,
                hidden_size: 0,
                batch_tokens: Some(params.batch_tokens()),
                concurrent_batches: CONCURRENT_BATCHES,
            },
            threads: params.threads()?,
            optimization: params.optimization_level()?,
            sessions: Mutex::new(HashMap::new()),
        };
        let hidden_size = backend.probe_hidden_size()?;
        backend.description.hidden_size = hidden_size as u32;
        backend.limits.hidden_size = hidden_size;
        Ok(backend)
    }

    pub fn tokenizer(&self) -> &TokenizerBundle {
        &self.tokenizer
    }

    pub fn hidden_state_names(&self) -> &HiddenStateNames {
        &self.hidden
    }

    pub fn inputs(&self) -> &ModelInputs {
        &self.inputs
    }

    /// Nodes the session for `last_layer` runs, and all nodes of the model.
    pub fn node_counts(&self, last_layer: usize) -> (usize, usize) {
        let outputs = &self.hidden.names[..=last_layer.min(self.hidden.num_layers())];
        let kept = graph::needed_nodes(&self.model, outputs);
        (kept.iter().filter(|&&k| k).count(), kept.len())
    }

    /// `[CLS] [SEP]` through the full graph: every hidden state must come
    /// back as `[1, 2, H]` with one H.
    fn probe_hidden_size(&self) -> Result<usize, String> {
        let special = self.tokenizer.special_ids();
        let batch = PaddedBatch::from_ids(&[vec![special.cls, special.sep]], special.pad);
        let shapes = self.run(&batch, self.hidden.num_layers(), &mut Vec::new())?;
        let mut size = None;
        for (name, shape) in self.hidden.names.iter().zip(&shapes) {
            let hidden = match shape.as_slice() {
                [1, 2, h] if *h > 0 => *h as usize,
                other => {
                    return Err(format!(
                        "hidden state '{name}' has shape {other:?} for one sequence of 2 tokens, \
                         expected [1, 2, hidden]; list the right tensors in `hidden_states`"
                    ))
                }
            };
            if size.is_some_and(|s| s != hidden) {
                return Err(format!(
                    "hidden state '{name}' is {hidden} wide, the earlier ones {size:?}; list \
                     the right tensors in `hidden_states`"
                ));
            }
            size = Some(hidden);
        }
        size.ok_or_else(|| "no hidden states".to_string())
    }

    /// The session that computes hidden states `0..=last_layer`.
    fn session(&self, last_layer: usize) -> Result<SharedSession, String> {
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| "an ONNX session build panicked earlier".to_string())?;
        if let Some(session) = sessions.get(&last_layer) {
            return Ok(Arc::clone(session));
        }
        let bytes = graph::truncated_model(&self.model, &self.hidden, last_layer);
        // The CPU provider named explicitly, with ONNX Runtime's own default
        // arena (ort's `CPU::default()` turns the arena off, and a session
        // without providers gets ort's automatic device policy, which prefers
        // an NPU or GPU provider when one is present). Same as Python's
        // `providers=["CPUExecutionProvider"]`; measured equally fast here.
        let cpu = ort::ep::CPU::default().with_arena_allocator(true).build();
        let mut builder = Session::builder(&self.env)
            .map_err(|e| format!("ONNX Runtime session options: {e}"))?
            .with_execution_providers([cpu])
            .map_err(|e| format!("ONNX Runtime CPU execution provider: {e}"))?
            .with_optimization_level(self.optimization)
            .map_err(|e| format!("ONNX Runtime optimization level: {e}"))?;
        if let Some(threads) = self.threads {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| format!("ONNX Runtime threads: {e}"))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| {
            format!("ONNX Runtime cannot load the model (hidden states 0..={last_layer}): {e}")
        })?;
        let session = Arc::new(Mutex::new(session));
        sessions.insert(last_layer, Arc::clone(&session));
        Ok(session)
    }

    fn id_tensor(
        &self,
        values: &[u32],
        id_type: IdType,
        shape: [usize; 2],
    ) -> Result<DynValue, String> {
        let made = match id_type {
            IdType::I64 => Tensor::from_array((
                shape,
                values.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
            ))
            .map(Tensor::upcast),
            IdType::I32 => {
                let ids: Result<Vec<i32>, _> = values.iter().map(|&v| i32::try_from(v)).collect();
                let ids =
                    ids.map_err(|_| "a token id does not fit the model's int32 input".to_string())?;
                Tensor::from_array((shape, ids)).map(Tensor::upcast)
            }
        };
        made.map(DynValue::from)
            .map_err(|e| format!("cannot build an input tensor: {e}"))
    }

    /// Runs the session for `last_layer` on a batch: appends the hidden
    /// states' values to `values` in layer order (copied once, straight
    /// from ONNX Runtime's buffers) and returns their shapes.
    fn run(
        &self,
        batch: &PaddedBatch,
        last_layer: usize,
        values: &mut Vec<f32>,
    ) -> Result<Vec<Vec<i64>>, String> {
        let session = self.session(last_layer)?;
        let shape = [batch.batch, batch.seq_len];
        let mut inputs: Vec<(String, DynValue)> = vec![
            (
                self.inputs.input_ids.0.clone(),
                self.id_tensor(&batch.input_ids, self.inputs.input_ids.1, shape)?,
            ),
            (
                self.inputs.attention_mask.0.clone(),
                self.id_tensor(&batch.attention_mask, self.inputs.attention_mask.1, shape)?,
            ),
        ];
        if let Some((name, id_type)) = &self.inputs.token_type_ids {
            inputs.push((
                name.clone(),
                self.id_tensor(&batch.type_ids, *id_type, shape)?,
            ));
        }
        let mut session = session
            .lock()
            .map_err(|_| "an ONNX Runtime run panicked earlier".to_string())?;
        let outputs = session
            .run(inputs)
            .map_err(|e| format!("ONNX Runtime forward pass failed: {e}"))?;
        self.hidden.names[..=last_layer]
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| format!("ONNX Runtime did not return '{name}'"))?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("hidden state '{name}' is not a float tensor: {e}"))?;
                values.extend_from_slice(data);
                Ok(shape.to_vec())
            })
            .collect()
    }

    /// The forward pass `encode_request` drives: padded `[layers, batch,
    /// seq_len, hidden]`, copied into `values` (an empty, reused buffer).
    pub fn hidden_states(
        &self,
        batch: &PaddedBatch,
        last_layer: usize,
        mut values: Vec<f32>,
    ) -> Result<HiddenStates, String> {
        let hidden = self.limits.hidden_size;
        let want = [batch.batch as i64, batch.seq_len as i64, hidden as i64];
        values.reserve((last_layer + 1) * batch.batch * batch.seq_len * hidden);
        let shapes = self.run(batch, last_layer, &mut values)?;
        for (name, shape) in self.hidden.names.iter().zip(shapes) {
            if shape != want {
                return Err(format!(
                    "hidden state '{name}' came back with shape {shape:?}, expected {want:?}"
                ));
            }
        }
        HiddenStates::padded(values, last_layer + 1, batch.batch, batch.seq_len, hidden)
    }

    pub fn encode_request(&self, request: &EncodeRequest) -> Result<EncodedRows, String> {
        encode_request(
            request,
            &self.tokenizer,
            &self.limits,
            |batch, last_layer, buffer| self.hidden_states(batch, last_layer, buffer),
        )
    }
}

impl std::fmt::Debug for OnnxBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxBackend")
            .field("description", &self.description)
            .field("hidden", &self.hidden)
            .field("inputs", &self.inputs)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EncoderPlugin for OnnxBackend {
    fn describe(&self) -> ModelDescription {
        self.description.clone()
    }

    fn encode(&self, request: &EncodeRequest) -> Result<EncodedRows, String> {
        self.encode_request(request)
    }
}

/// The .onnx file read and parsed: its inputs and hidden states.
fn read_graph(
    params: &OnnxParams,
    model_file: &std::path::Path,
) -> Result<(OnnxModel, ModelInputs, HiddenStateNames), String> {
    let in_file = |e: String| format!("'{}': {e}", model_file.display());
    let bytes = std::fs::read(model_file)
        .map_err(|e| format!("cannot read '{}': {e}", model_file.display()))?;
    let model = OnnxModel::parse(bytes).map_err(in_file)?;
    let inputs = graph::model_inputs(&model).map_err(in_file)?;
    let hidden =
        graph::find_hidden_states(&model, params.hidden_states.as_deref()).map_err(in_file)?;
    Ok((model, inputs, hidden))
}

/// The plugin constructor: parameters as a JSON object.
pub fn open(params_json: &str) -> Result<OnnxBackend, String> {
    OnnxBackend::open(&OnnxParams::from_json(params_json)?)
}

/// The plugin's `validate`: the parameters, the .onnx graph (read and
/// parsed, its inputs and hidden states found), the tokenizer and the ONNX
/// Runtime library (loaded), without building a session. Errors name the
/// parameter at fault so the runner can point at the spec's line.
pub fn validate(params_json: &str) -> Result<(), String> {
    let params = OnnxParams::from_json(params_json)?;
    let named = |name: &'static str| {
        move |e: String| format!("onnx backend: {}", sieve_core::param_error(name, e))
    };
    let or_model = |given: bool, name: &'static str| if given { name } else { "model" };
    let model_file = params.model_file().map_err(named("model"))?;
    read_graph(&params, model_file).map_err(named(or_model(
        params.hidden_states.is_some(),
        "hidden_states",
    )))?;
    TokenizerBundle::from_folder(&params.tokenizer_folder())
        .map_err(named(or_model(params.tokenizer.is_some(), "tokenizer")))?;
    params.max_positions().map_err(named("max_length"))?;
    params.threads().map_err(named("threads"))?;
    params.optimization_level().map_err(named("optimization"))?;
    // Without a `runtime` parameter the library comes from the environment
    // or the assets folder: no spec line to blame, the message says where.
    let blame_runtime = |e: String| match params.runtime {
        Some(_) => named("runtime")(e),
        None => format!("onnx backend: {e}"),
    };
    let library = runtime::locate(params.runtime_path()).map_err(blame_runtime)?;
    runtime::environment(&library).map_err(blame_runtime)?;
    Ok(())
}

sieve_core::export_backend_plugin!(
    name: "onnx",
    description: "ONNX encoders through ONNX Runtime (load-dynamic): every layer's hidden states \
                  of a BERT-style .onnx export, truncated graphs for early layers",
    open: open,
    validate: validate,
);
