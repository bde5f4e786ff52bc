//! Reading encoder weights from `model.safetensors`.
//!
//! Hugging Face checkpoints name the encoder's tensors with a `bert.` (or
//! `mpnet.`) prefix when saved from a task model (`BertForMaskedLM`,
//! `MPNetForMaskedLM`, ...) and without one when saved from the bare model
//! (the sentence-transformers MiniLM and MPNet); both are accepted. Tensors
//! the encoder does not use (the pooler, `embeddings.position_ids`, task
//! heads) are never read.

use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

/// A memory-mapped safetensors file and the name prefix its tensors use.
pub struct WeightFile {
    tensors: MmapedSafetensors,
    prefix: &'static str,
    path: PathBuf,
}

impl WeightFile {
    pub fn open(path: &Path) -> Result<Self, String> {
        if !path.is_file() {
            return Err(format!(
                "'{}' not found: the model folder needs the weights as model.safetensors \
                 (convert a pytorch_model.bin with `transformers` first)",
                path.display()
            ));
        }
        // SAFETY: the file is only read; the map lives as long as this struct
        // and every tensor is copied out of it before use.
        let tensors = unsafe { MmapedSafetensors::new(path) }
            .map_err(|e| format!("cannot read safetensors file '{}': {e}", path.display()))?;
        let prefix = ["bert.", "mpnet."]
            .into_iter()
            .find(|p| {
                let name = format!("{p}embeddings.word_embeddings.weight");
                tensors.get(&name).is_ok()
            })
            .unwrap_or("");
        Ok(WeightFile {
            tensors,
            prefix,
            path: path.to_path_buf(),
        })
    }

    /// Loads tensor `name` (without prefix) as f32 and checks its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.tensors.load(&full, &Device::Cpu).map_err(|e| {
            format!(
                "'{}': cannot load tensor '{full}': {e}",
                self.path.display()
            )
        })?;
        if tensor.dims() != shape {
            return Err(format!(
                "'{}': tensor '{full}' has shape {:?}, config.json implies {shape:?}",
                self.path.display(),
                tensor.dims()
            ));
        }
        tensor
            .to_dtype(DType::F32)
            .map_err(|e| format!("'{}': tensor '{full}': {e}", self.path.display()))
    }

    /// Checks that tensor `name` (without prefix) exists with `shape`, from
    /// the file's header alone: nothing is read or converted.
    pub fn check_shape(&self, name: &str, shape: &[usize]) -> Result<(), String> {
        let full = format!("{}{name}", self.prefix);
        let view = self.tensors.get(&full).map_err(|_| {
            format!(
                "'{}' has no tensor '{full}', which config.json implies (shape {shape:?}): \
                 the weights and config.json are of different models",
                self.path.display()
            )
        })?;
        if view.shape() != shape {
            return Err(format!(
                "'{}': tensor '{full}' has shape {:?}, config.json implies {shape:?}: \
                 the weights and config.json are of different models",
                self.path.display(),
                view.shape()
            ));
        }
        Ok(())
    }

    /// Whether tensor `name` (without prefix) exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.get(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// A LayerNorm's (weight, bias), under either the current names or the
    /// original TensorFlow-converted ones (`gamma`, `beta`).
    pub fn layer_norm(&self, name: &str, size: usize) -> Result<(Tensor, Tensor), String> {
        let weight = self.get_either(&format!("{name}.weight"), &format!("{name}.gamma"), size)?;
        let bias = self.get_either(&format!("{name}.bias"), &format!("{name}.beta"), size)?;
        Ok((weight, bias))
    }

    /// Tensor `name`, else `alias`; the error names the first.
    fn get_either(&self, name: &str, alias: &str, size: usize) -> Result<Tensor, String> {
        self.get(name, &[size])
            .or_else(|e| self.get(alias, &[size]).map_err(|_| e))
    }
}
