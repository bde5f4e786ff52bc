//! Slim models: `sieve export` writes the selected neurons, the trained
//! probe and the encoder files a run needs into one checked folder, and
//! `sieve predict` labels new text with it, running the encoder only up to
//! the last layer that holds a selected neuron.

pub mod export;
pub mod manifest;
pub mod predict;

pub use export::{export_run, ExportOptions};
pub use manifest::{SlimManifest, SlimTask, CLASSIFIER_FILE, ENCODER_DIR, MANIFEST_FILE};
pub use predict::{OutputFormat, SlimModel};
