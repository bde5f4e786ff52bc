//! Fused CPU kernels for everything in a BERT layer but its GEMMs.
//!
//! With candle's own ops, bias add, residual add, LayerNorm and GELU are a
//! full pass over memory each, large ones run on candle's separate spinning
//! thread pool (which competes with rayon's GEMM threads on a small
//! machine), and batched attention is a sequential loop of tiny GEMMs over
//! padded sequences. These custom ops do each group in one pass on rayon's
//! threads, and attention as one task per (sequence, head) at the
//! sequence's own length, so the forward pass is dominated by the GEMMs as
//! it should be.

use candle_core::{
    bail, CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor,
};
use rayon::prelude::*;

use crate::config::Activation;
use crate::kernels;

/// Rows handed to one rayon task at least: a row is only a few hundred
/// floats, too little work to schedule alone.
const MIN_ROWS_PER_TASK: usize = 16;

/// LayerNorm parameters as plain vectors (read inside the kernels).
pub struct NormParams {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{what}: expected an f32 tensor")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

fn f32_slice_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{what}: expected an f32 tensor")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{what}: expected a contiguous tensor"),
    }
}

/// `x = LayerNorm(x + bias + residual)` over the last dimension, or plain
/// `x = LayerNorm(x)`, in place: `x` must be a fresh tensor nobody else
/// holds (a GEMM's output). Mean and variance are computed in two passes
/// (no `E[x^2] - E[x]^2` cancellation on BERT's large-valued dimensions).
pub fn add_norm(x: &Tensor, residual: Option<(&[f32], &Tensor)>, norm: &NormParams) -> Result<()> {
    match residual {
        None => x.inplace_op1(&AddNorm { bias: None, norm }),
        Some((bias, residual)) => x.inplace_op2(
            residual,
            &AddNorm {
                bias: Some(bias),
                norm,
            },
        ),
    }
}

struct AddNorm<'a> {
    bias: Option<&'a [f32]>,
    norm: &'a NormParams,
}

impl AddNorm<'_> {
    fn run(&self, x: &mut [f32], residual: Option<&[f32]>) -> Result<()> {
        let width = self.norm.weight.len();
        if !x.len().is_multiple_of(width) || residual.is_some_and(|r| r.len() != x.len()) {
            bail!(
                "layer norm: {} values do not match width {width} or the residual",
                x.len()
            );
        }
        let norm = self.norm;
        x.par_chunks_mut(width)
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each(|(row, values)| {
                let residual = residual.map(|r| &r[row * width..(row + 1) * width]);
                kernels::add_norm(
                    values,
                    self.bias,
                    residual,
                    &norm.weight,
                    &norm.bias,
                    norm.eps,
                );
            });
        Ok(())
    }
}

impl InplaceOp1 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "sieve-layer-norm"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        self.run(f32_slice_mut(storage, layout, "layer norm")?, None)
    }
}

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "sieve-add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let residual = f32_slice(s2, l2, "layer norm residual")?;
        self.run(f32_slice_mut(s1, l1, "layer norm input")?, Some(residual))
    }
}

/// The embedding tables, row-major `[rows, hidden]`, and their LayerNorm.
pub struct Embeddings {
    pub word: Vec<f32>,
    pub position: Vec<f32>,
    /// `None` for a model without token types (MPNet): types are ignored.
    pub token_type: Option<Vec<f32>>,
    pub norm: NormParams,
}

/// `LayerNorm(word[id] + position[pos] + token_type[type])` for packed
/// tokens, `[tokens, hidden]`: gather, sum and normalise in one parallel
/// pass. Ids outside a table are an error (a tokenizer that does not
/// belong to the model), not a panic.
pub fn embed(tables: &Embeddings, ids: &[u32], types: &[u32], positions: &[u32]) -> Result<Tensor> {
    let hidden = tables.norm.weight.len();
    let check = |what: &str, values: &[u32], table: &[f32]| -> Result<()> {
        let rows = table.len() / hidden;
        match values.iter().find(|&&v| v as usize >= rows) {
            Some(v) => bail!("{what} {v} is outside the model's table of {rows} (tokenizer and model do not match)"),
            None => Ok(()),
        }
    };
    check("token id", ids, &tables.word)?;
    if let Some(table) = &tables.token_type {
        check("token type", types, table)?;
    }
    check("position", positions, &tables.position)?;
    let mut out = vec![0f32; ids.len() * hidden];
    out.par_chunks_mut(hidden)
        .with_min_len(MIN_ROWS_PER_TASK)
        .enumerate()
        .for_each(|(i, values)| {
            let word = table_row(&tables.word, ids[i], hidden);
            let position = table_row(&tables.position, positions[i], hidden);
            for ((v, w), p) in values.iter_mut().zip(word).zip(position) {
                *v = w + p;
            }
            if let Some(table) = &tables.token_type {
                let kind = table_row(table, types[i], hidden);
                values.iter_mut().zip(kind).for_each(|(v, t)| *v += t);
            }
            let norm = &tables.norm;
            kernels::add_norm(values, None, None, &norm.weight, &norm.bias, norm.eps);
        });
    Tensor::from_vec(out, (ids.len(), hidden), &candle_core::Device::Cpu)
}

fn table_row(table: &[f32], index: u32, hidden: usize) -> &[f32] {
    let start = index as usize * hidden;
    &table[start..start + hidden]
}

/// `act(x + bias)` in place over the last dimension; `x` must be a fresh
/// tensor nobody else holds (a GEMM's output).
pub fn bias_activation(x: &Tensor, bias: &[f32], activation: Activation) -> Result<()> {
    x.inplace_op1(&BiasActivation { bias, activation })
}

struct BiasActivation<'a> {
    bias: &'a [f32],
    activation: Activation,
}

impl InplaceOp1 for BiasActivation<'_> {
    fn name(&self) -> &'static str {
        "sieve-bias-activation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let width = self.bias.len();
        if layout.dims().last() != Some(&width) {
            bail!(
                "bias activation: shape {:?} does not end in {width}",
                layout.dims()
            );
        }
        let values = f32_slice_mut(storage, layout, "bias activation")?;
        values
            .par_chunks_mut(width * MIN_ROWS_PER_TASK)
            .for_each(|rows| kernels::bias_activation(rows, self.bias, self.activation));
        Ok(())
    }
}

/// The layout of a packed batch: the dense layers see only real tokens,
/// back to back (sequence `i` at rows `starts[i]..starts[i] + lengths[i]`);
/// attention runs per sequence at its own length.
#[derive(Clone, Debug)]
pub struct HeadLayout {
    pub heads: usize,
    pub head_size: usize,
    pub lengths: Vec<usize>,
    pub starts: Vec<usize>,
}

impl HeadLayout {
    pub fn new(lengths: &[usize], heads: usize, head_size: usize) -> Self {
        let starts = lengths
            .iter()
            .scan(0, |next, &len| {
                let start = *next;
                *next += len;
                Some(start)
            })
            .collect();
        HeadLayout {
            heads,
            head_size,
            lengths: lengths.to_vec(),
            starts,
        }
    }

    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// Real tokens: the rows of the packed dense layers.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }

    fn hidden(&self) -> usize {
        self.heads * self.head_size
    }
}

/// A bias on the attention scores that depends only on the heads and the
/// relative position `j - i` of key `j` to query `i` (MPNet's), for
/// sequences up to `max_len`: `values[head * (2 * max_len - 1) + max_len - 1
/// + j - i]`.
#[derive(Clone, Debug)]
pub struct RelativeBias {
    pub values: Vec<f32>,
    pub max_len: usize,
}

impl RelativeBias {
    /// The bias of one head for a sequence of `len <= max_len` tokens,
    /// `2 * len - 1` values: score `(i, j)` gets `[len - 1 + j - i]`.
    fn head(&self, head: usize, len: usize) -> &[f32] {
        let width = 2 * self.max_len - 1;
        let start = head * width + self.max_len - len;
        &self.values[start..start + 2 * len - 1]
    }
}

/// Multi-head self-attention of packed `[tokens, 3*hidden]` (Q|K|V, bias
/// not yet added) -> packed context `[tokens, hidden]`, with `relative`
/// added to the scores where given.
///
/// Every (sequence, head) pair is one task on rayon's threads, computed at
/// the sequence's own length: no padding, no mask, and no sequential loop of
/// tiny GEMMs (candle's batched matmul runs its batch one GEMM at a time).
pub fn attention(
    qkv: &Tensor,
    bias: &[f32],
    layout: &HeadLayout,
    relative: Option<&RelativeBias>,
) -> Result<Tensor> {
    qkv.apply_op1_no_bwd(&Attention {
        bias,
        layout,
        relative,
    })
}

struct Attention<'a> {
    bias: &'a [f32],
    layout: &'a HeadLayout,
    relative: Option<&'a RelativeBias>,
}

impl Attention<'_> {
    /// One head of one sequence: its `[len, d]` context.
    fn head(&self, qkv: &[f32], sequence: usize, head: usize) -> Vec<f32> {
        let shape = self.layout;
        let (d, hidden) = (shape.head_size, shape.hidden());
        let (start, len) = (shape.starts[sequence], shape.lengths[sequence]);
        let key_stride = kernels::round_up(len, kernels::KEY_TILE);
        let value_stride = kernels::round_up(d, kernels::VALUE_TILE);
        let mut q = Vec::with_capacity(len * d);
        let mut kt = vec![0f32; d * key_stride];
        let mut v = vec![0f32; len * value_stride];
        let column = |part: usize| part * hidden + head * d;
        for t in 0..len {
            let row = &qkv[(start + t) * 3 * hidden..(start + t + 1) * 3 * hidden];
            let part = |p: usize| {
                let bias = &self.bias[column(p)..column(p) + d];
                row[column(p)..column(p) + d]
                    .iter()
                    .zip(bias)
                    .map(|(x, b)| x + b)
            };
            q.extend(part(0));
            for (c, key) in part(1).enumerate() {
                kt[c * key_stride + t] = key;
            }
            for (slot, value) in v[t * value_stride..].iter_mut().zip(part(2)) {
                *slot = value;
            }
        }
        let mut out = vec![0f32; len * value_stride];
        let inputs = kernels::HeadInputs {
            q: &q,
            kt: &kt,
            v: &v,
            len,
            d,
            key_stride,
            value_stride,
            relative: self.relative.map(|r| r.head(head, len)),
        };
        kernels::head_attention(&inputs, &mut out);
        if value_stride != d {
            out = out
                .chunks_exact(value_stride)
                .flat_map(|row| &row[..d])
                .copied()
                .collect();
        }
        out
    }
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "sieve-attention"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let shape = self.layout;
        let (heads, d, hidden) = (shape.heads, shape.head_size, shape.hidden());
        let qkv = f32_slice(storage, layout, "attention")?;
        if qkv.len() != shape.tokens() * 3 * hidden || self.bias.len() != 3 * hidden {
            bail!(
                "attention: input {:?} does not match {shape:?}",
                layout.dims()
            );
        }
        if let Some(relative) = self.relative {
            let longest = shape.lengths.iter().copied().max().unwrap_or(0);
            if relative.max_len == 0
                || longest > relative.max_len
                || relative.values.len() != heads * (2 * relative.max_len - 1)
            {
                bail!("attention: the relative bias does not cover {shape:?}");
            }
        }
        let contexts: Vec<Vec<f32>> = (0..shape.batch() * heads)
            .into_par_iter()
            .map(|task| self.head(qkv, task / heads, task % heads))
            .collect();
        let mut out = vec![0f32; shape.tokens() * hidden];
        let mut per_sequence = Vec::with_capacity(shape.batch());
        let mut rest = out.as_mut_slice();
        for &length in &shape.lengths {
            let (sequence, tail) = rest.split_at_mut(length * hidden);
            per_sequence.push(sequence);
            rest = tail;
        }
        per_sequence
            .into_par_iter()
            .enumerate()
            .for_each(|(b, dst)| {
                for (t, dst_row) in dst.chunks_exact_mut(hidden).enumerate() {
                    for (head, dst_head) in dst_row.chunks_exact_mut(d).enumerate() {
                        dst_head.copy_from_slice(&contexts[b * heads + head][t * d..(t + 1) * d]);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((shape.tokens(), hidden))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_layer_norm_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 3.0, (5, 8), &dev)?;
        let residual = Tensor::randn(0f32, 1.0, (5, 8), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 8, &dev)?;
        let norm = NormParams {
            weight: Tensor::randn(1f32, 0.1, 8, &dev)?.to_vec1()?,
            bias: Tensor::randn(0f32, 0.1, 8, &dev)?.to_vec1()?,
            eps: 1e-12,
        };
        let summed = x.broadcast_add(&bias)?.add(&residual)?;
        let ours = x.copy()?;
        add_norm(&ours, Some((&bias.to_vec1::<f32>()?, &residual)), &norm)?;
        let w = Tensor::new(norm.weight.as_slice(), &dev)?;
        let b = Tensor::new(norm.bias.as_slice(), &dev)?;
        let theirs = candle_nn::ops::layer_norm_slow(&summed, &w, &b, 1e-12)?;
        let diff = (ours - theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "max difference {diff}");
        Ok(())
    }

    /// The fused kernel against candle's own ops on a packed layout, with
    /// and without a relative-position bias.
    #[test]
    fn fused_attention_matches_candle_ops() -> Result<()> {
        check_attention(false)?;
        check_attention(true)
    }

    fn check_attention(with_relative: bool) -> Result<()> {
        let dev = Device::Cpu;
        let (heads, d, lengths) = (2, 4, [3usize, 1, 2]);
        let layout = HeadLayout::new(&lengths, heads, d);
        let qkv = Tensor::randn(0f32, 1.0, (6, 3 * heads * d), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, 3 * heads * d, &dev)?;
        // Longer than every sequence: each head uses the middle of its row.
        let max_len = 4;
        let relative = RelativeBias {
            values: Tensor::randn(0f32, 1.0, heads * (2 * max_len - 1), &dev)?.to_vec1()?,
            max_len,
        };
        let ours = attention(
            &qkv,
            &bias.to_vec1()?,
            &layout,
            with_relative.then_some(&relative),
        )?;
        let biased = qkv.broadcast_add(&bias)?;
        let mut start = 0;
        for &len in &lengths {
            let rows = biased.narrow(0, start, len)?.reshape((len, 3, heads, d))?;
            let part = |p: usize| {
                rows.narrow(1, p, 1)?
                    .squeeze(1)?
                    .transpose(0, 1)?
                    .contiguous()
            };
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let mut scores = q.matmul(&k.t()?)?;
            if with_relative {
                // [heads, len, len]: bias[h][(j - i) + max_len - 1].
                let mut values = Vec::with_capacity(heads * len * len);
                for h in 0..heads {
                    for i in 0..len {
                        for j in 0..len {
                            let at = h * (2 * max_len - 1) + max_len - 1 + j - i;
                            values.push(relative.values[at]);
                        }
                    }
                }
                scores = (scores + Tensor::from_vec(values, (heads, len, len), &dev)?)?;
            }
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let context = probs
                .matmul(&v)?
                .transpose(0, 1)?
                .reshape((len, heads * d))?;
            let diff = (ours.narrow(0, start, len)? - context)?.abs()?.max_all()?;
            assert!(diff.to_scalar::<f32>()? < 1e-5);
            start += len;
        }
        Ok(())
    }
}
