//! Slim models: `sieve export` writes the selected neurons, the trained
//! probe and the encoder truncated after the last layer that holds a
//! selected neuron into one checked folder, and `sieve predict` labels new
//! text with it. `sieve bench --slim` times it against the full model and
//! the run's oracle probe.

pub mod candle_encoder;
pub mod export;
pub mod manifest;
pub mod onnx_encoder;
mod output_folder;
pub mod predict;

pub use export::{export_run, ExportOptions};
pub use manifest::{
    SlimManifest, SlimSource, SlimTask, CLASSIFIER_FILE, ENCODER_DIR, MANIFEST_FILE, ORACLE_FILE,
};
pub use predict::{FullModel, OutputFormat, SlimModel};
