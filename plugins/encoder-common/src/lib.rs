//! Everything a Sieve backend needs besides the network itself.
//!
//! A backend plugin (candle, ONNX, ...) only implements a forward pass from
//! padded token ids to per-layer hidden states. This crate does the rest, so
//! that every backend tokenises, aligns, windows, batches and pools the same
//! way and their activations are comparable row for row:
//!
//! - [`TokenizerBundle`]: a Hugging Face tokenizer (`tokenizer.json`, or a
//!   BERT WordPiece tokenizer built from `vocab.txt`) with padding and
//!   truncation turned off, and the special token ids;
//! - [`build_plan`]: text units -> sequences of token ids, with the token
//!   positions that make up every output row (words, sentences), and
//!   windows for units longer than the model's maximum;
//! - [`plan_batches`] and [`PaddedBatch`]: length-sorted, padded batches
//!   that also mark which positions' last-layer states are read (a backend
//!   may skip the rest of its last layer);
//! - [`HiddenStates`] (padded or packed) and [`RowAccumulator`]: pooling of
//!   per-token hidden states into rows;
//! - [`encode_request`]: the driver that ties them together around a
//!   backend's forward pass, running a few batches at once.

mod batch;
mod driver;
mod plan;
mod pooling;
mod tokenize;

pub use batch::{plan_batches, PaddedBatch};
pub use driver::{encode_request, EncodeLimits};
pub use plan::{build_plan, EncodePlan, RowTarget, Sequence};
pub use pooling::{HiddenStates, RowAccumulator};
pub use tokenize::{SpecialIds, TokenizerBundle};
