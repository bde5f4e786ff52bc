//! Sieve backend plugin `candle`: BERT and MPNet encoders in pure Rust
//! (candle, fp32, CPU) that return every layer's hidden state.
//!
//! The architecture comes from config.json's `model_type`: `mpnet`
//! (all-mpnet-base-v2; relative-position attention bias), else BERT
//! (`bert`, or none given: MiniLM and other BERT-architecture models).
//!
//! Parameters (the spec's `model.params`, plus `model` from `model.path`):
//!
//! | name | meaning |
//! |---|---|
//! | `model` | Hugging Face model folder: config.json, model.safetensors, tokenizer.json or vocab.txt (required) |
//! | `max_length` | longest sequence in tokens, specials included; at most the model's longest sequence (BERT: `max_position_embeddings`; MPNet: 2 less) (default: that maximum). Longer units are windowed |
//! | `batch_tokens` | most padded tokens per forward pass, on top of the spec's `batch_size` (default 8192); bounds memory for long sequences |
//! | `threads` | threads for this backend's forward pass (default: `RAYON_NUM_THREADS`, else all cores) |
//!
//! The library is also an rlib: [`CandleBackend`] and [`Encoder`] can be
//! used directly (tests, benchmarks).

mod bert;
mod check;
mod config;
mod device_forward;
mod encoder;
mod kernels;
mod mpnet;
mod ops;
mod params;
mod weights;

pub use config::{Activation, BertConfig};
pub use encoder::{Encoder, EncoderShape};
pub use mpnet::MpnetConfig;
pub use params::CandleParams;

pub use device_forward::{parse_device, DeviceEncoder};
use sieve_core::{EncodeRequest, EncodedRows, EncoderPlugin, ModelDescription};
use sieve_encoder_common::{encode_request, EncodeLimits, TokenizerBundle};

/// Forward passes run at once: two keep both threads of a small machine
/// busy through the GEMMs' fork-join gaps (measured: +2-3% on 2 cores)
/// for the memory of one more batch.
const CONCURRENT_BATCHES: usize = 2;

/// A loaded model and its tokenizer, ready to encode requests.
pub struct CandleBackend {
    encoder: Encoder,
    /// The same weights on a GPU, when `device` names one.
    on_device: Option<DeviceEncoder>,
    tokenizer: TokenizerBundle,
    description: ModelDescription,
    limits: EncodeLimits,
    pool: Option<rayon::ThreadPool>,
}

impl CandleBackend {
    /// Loads the model folder named by `params`.
    pub fn open(params: &CandleParams) -> Result<Self, String> {
        let dir = params.model_folder()?;
        let encoder = Encoder::load(&dir)?;
        let tokenizer = TokenizerBundle::from_folder(&dir)?;
        let shape = encoder.shape();
        let max_positions = params.max_positions(shape.max_positions)?;
        let description = ModelDescription {
            name: params.model_name().into(),
            architecture: shape.architecture.into(),
            num_layers: shape.num_layers as u32,
            hidden_size: shape.hidden_size as u32,
            max_positions: max_positions as u32,
        };
        let limits = EncodeLimits {
            max_positions,
            num_layers: shape.num_layers,
            hidden_size: shape.hidden_size,
            batch_tokens: Some(params.batch_tokens()),
            concurrent_batches: CONCURRENT_BATCHES,
        };
        let pool = params.thread_pool()?;
        let on_device = match params.device.as_deref().map(parse_device).transpose()? {
            Some(device) if !device.is_cpu() => Some(
                DeviceEncoder::new(&encoder, &device)
                    .map_err(|e| format!("cannot copy the model to {device:?}: {e}"))?,
            ),
            _ => None,
        };
        Ok(CandleBackend {
            encoder,
            on_device,
            tokenizer,
            description,
            limits,
            pool,
        })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn tokenizer(&self) -> &TokenizerBundle {
        &self.tokenizer
    }

    fn encode_here(&self, request: &EncodeRequest) -> Result<EncodedRows, String> {
        encode_request(
            request,
            &self.tokenizer,
            &self.limits,
            // candle's tensors own their memory: the spare buffer goes unused.
            |batch, last_layer, _buffer| match &self.on_device {
                Some(gpu) => gpu.hidden_states(&self.encoder, batch, last_layer),
                None => self.encoder.hidden_states(batch, last_layer),
            },
        )
    }
}

impl std::fmt::Debug for CandleBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleBackend")
            .field("description", &self.description)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EncoderPlugin for CandleBackend {
    fn describe(&self) -> ModelDescription {
        self.description.clone()
    }

    /// Runs in the backend's own thread pool when `threads` was given.
    fn encode(&self, request: &EncodeRequest) -> Result<EncodedRows, String> {
        match &self.pool {
            Some(pool) => pool.install(|| self.encode_here(request)),
            None => self.encode_here(request),
        }
    }
}

/// The plugin constructor: parameters as a JSON object.
pub fn open(params_json: &str) -> Result<CandleBackend, String> {
    CandleBackend::open(&CandleParams::from_json(params_json)?)
}

/// The plugin's `validate`: the parameters, and the model folder checked
/// without loading it (config.json against the safetensors header, the
/// tokenizer). Errors name the parameter at fault (`model` for anything
/// wrong in the folder) so the runner can point at the spec's line.
pub fn validate(params_json: &str) -> Result<(), String> {
    let params = CandleParams::from_json(params_json)?;
    let named = |name: &'static str| {
        move |e: String| format!("candle backend: {}", sieve_core::param_error(name, e))
    };
    let dir = params.model_folder().map_err(named("model"))?;
    let max_positions = check::check_model(&dir).map_err(named("model"))?;
    TokenizerBundle::from_folder(&dir).map_err(named("model"))?;
    params
        .max_positions(max_positions)
        .map_err(named("max_length"))?;
    if params.threads == Some(0) {
        return Err(named("threads")("must be at least 1".into()));
    }
    if let Some(device) = params.device.as_deref() {
        parse_device(device).map_err(named("device"))?;
    }
    Ok(())
}

sieve_core::export_backend_plugin!(
    name: "candle",
    description: "BERT and MPNet encoders in candle (fp32, CPU): every layer's hidden states \
                  from a Hugging Face folder (config.json, model.safetensors, tokenizer)",
    open: open,
    validate: validate,
);
