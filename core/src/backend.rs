//! Backend plugins: text in, per-layer activations out.
//!
//! Layer 0 is the embedding layer's output and layers 1..=K the encoder
//! layers' outputs. A request names the last layer it needs, and a backend
//! must really stop its forward pass there (that is the point of
//! LayerSelector).

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, ROption, RResult, RString, RVec},
    StableAbi,
};

use crate::guard::catch_plugin_panic;

/// What a loaded model is.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ModelDescription {
    /// Human-readable name (the model folder's name or the hub id).
    pub name: RString,
    /// `bert`, `mpnet`, ... as the backend understood the model.
    pub architecture: RString,
    /// Encoder layers K; the backend yields K + 1 hidden states.
    pub num_layers: u32,
    /// Width of every hidden state.
    pub hidden_size: u32,
    /// Longest subword sequence (specials included) one forward pass takes.
    pub max_positions: u32,
}

impl ModelDescription {
    /// Hidden states per token: embeddings + every encoder layer.
    pub fn num_hidden_states(&self) -> u32 {
        self.num_layers + 1
    }
}

/// One unit of input text.
///
/// For word-level tasks `words` holds the pre-split words (one output row per
/// word); for sentence tasks `text` (and `pair` for sentence pairs) is used
/// and one row per unit is produced.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct TextUnit {
    pub words: RVec<RString>,
    pub text: RString,
    pub pair: ROption<RString>,
}

impl TextUnit {
    pub fn words<S: AsRef<str>>(words: &[S]) -> Self {
        TextUnit {
            words: words.iter().map(|w| RString::from(w.as_ref())).collect(),
            text: RString::new(),
            pair: ROption::RNone,
        }
    }

    pub fn sentence(text: &str, pair: Option<&str>) -> Self {
        TextUnit {
            words: RVec::new(),
            text: text.into(),
            pair: pair.map(RString::from).into(),
        }
    }
}

/// How a word split into several subwords becomes one row.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubwordPooling {
    First,
    Last,
    Average,
}

/// How a sentence becomes one row.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SentencePooling {
    /// The first token ([CLS]).
    Cls,
    /// Mean over the sentence's tokens (specials excluded).
    Mean,
}

/// Which rows to produce.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLevel {
    Word,
    Sentence,
}

/// A batch of text to encode.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct EncodeRequest {
    pub units: RVec<TextUnit>,
    pub level: RowLevel,
    pub subword_pooling: SubwordPooling,
    pub sentence_pooling: SentencePooling,
    /// Encode hidden states 0..=last_layer only (the forward pass stops there).
    pub last_layer: u32,
    /// Sequences per forward pass.
    pub batch_size: u32,
}

/// Activations for a request, row-major `[rows, layers, hidden]` where
/// `layers = last_layer + 1`. Rows follow the units in order.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default)]
pub struct EncodedRows {
    pub values: RVec<f32>,
    pub rows: u64,
    pub layers: u32,
    pub hidden: u32,
    /// Rows produced by each unit (its word count, or 1 for sentences).
    pub rows_per_unit: RVec<u32>,
    /// Subword tokens that went through the encoder (specials and padding
    /// excluded): the unit of throughput.
    pub subword_tokens: u64,
    /// Units longer than the model's maximum that were encoded in windows.
    pub windowed_units: u32,
}

/// The Rust-side contract a backend implements; [`EncoderBox::from_plugin`]
/// makes it callable across the boundary.
pub trait EncoderPlugin: Send + Sync + 'static {
    fn describe(&self) -> ModelDescription;
    fn encode(&self, request: &EncodeRequest) -> Result<EncodedRows, String>;
}

/// The boundary-safe encoder trait (generated into `Encoder_TO`).
#[sabi_trait]
pub trait Encoder: Send + Sync {
    fn describe(&self) -> ModelDescription;

    #[sabi(last_prefix_field)]
    fn encode(&self, request: &EncodeRequest) -> RResult<EncodedRows, RString>;
}

/// An owned encoder from a plugin.
pub type EncoderBox = Encoder_TO<'static, RBox<()>>;

/// Adapts an [`EncoderPlugin`] into the boundary trait, catching panics.
struct GuardedEncoder<T>(T);

impl<T: EncoderPlugin> Encoder for GuardedEncoder<T> {
    fn describe(&self) -> ModelDescription {
        self.0.describe()
    }

    fn encode(&self, request: &EncodeRequest) -> RResult<EncodedRows, RString> {
        catch_plugin_panic("encode", || self.0.encode(request))
    }
}

impl EncoderBox {
    pub fn from_plugin<T: EncoderPlugin>(plugin: T) -> Self {
        Encoder_TO::from_value(GuardedEncoder(plugin), TD_Opaque)
    }
}
