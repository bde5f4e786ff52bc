//! Row kernels written so that the compiler vectorises them: no calls to
//! libm in the loops (an inlined polynomial `exp`), reductions over eight
//! independent partial sums. Each kernel is compiled twice, for AVX2+FMA
//! (chosen at run time when the CPU has it; multiply-adds fused) and for
//! the baseline target (separate multiply and add: an unfused `mul_add`
//! would be a slow libm call there).

use crate::config::Activation;

/// Width of the partial sums: one AVX register of f32.
const LANES: usize = 8;

/// Runs `$body` in a function compiled with AVX2 and FMA when the CPU has
/// them, else in the same code compiled for the baseline target.
macro_rules! dispatch {
    ($name:ident ( $($arg:ident : $ty:ty),* ) $body:block) => {
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn portable<const FMA: bool>($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    portable::<true>($($arg),*)
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused where the CPU has FMA.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `exp(x)` for `x <= 0` (Cephes `expf`: range reduction to
/// `[-ln2/2, ln2/2]`, degree-5 polynomial; relative error about 1e-7).
/// Arguments below -87 return `exp(-87)`, which is below f32 resolution
/// wherever this is used (sums of 1s and erf's tail).
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The integer n sits in the low mantissa bits of `shifted`: integer
    // arithmetic on the bits (vectorisable, unlike a float-to-int cast).
    let k = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = madd::<FMA>(1.987_569_1e-4, r, 1.398_199_9e-3);
    let p = madd::<FMA>(p, r, 8.333_452e-3);
    let p = madd::<FMA>(p, r, 4.166_579_6e-2);
    let p = madd::<FMA>(p, r, 0.166_666_65);
    let p = madd::<FMA>(p, r, 0.5);
    let e = madd::<FMA>(p * r, r, r + 1.0);
    let scale = f32::from_bits(((k + 127) as u32) << 23);
    e * scale
}

/// The error function as a rational function `x P(x^2) / Q(x^2)` on
/// `[-4, 4]` (outside it erf is +-1 in f32); the approximation Eigen and
/// XLA use for f32, absolute error below 5e-7 (a few ulp of 1.0). No
/// `exp`, one division.
#[inline(always)]
pub fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = madd::<FMA>(-2.726_142_3e-10, x2, 2.770_681_4e-8);
    let p = madd::<FMA>(p, x2, -2.101_024e-6);
    let p = madd::<FMA>(p, x2, -5.692_506_4e-5);
    let p = madd::<FMA>(p, x2, -7.349_906_3e-4);
    let p = madd::<FMA>(p, x2, -2.954_6e-3);
    let p = madd::<FMA>(p, x2, -1.609_603_3e-2);
    let q = madd::<FMA>(-1.456_607_2e-5, x2, -2.133_740_6e-4);
    let q = madd::<FMA>(q, x2, -1.682_827e-3);
    let q = madd::<FMA>(q, x2, -7.373_329e-3);
    let q = madd::<FMA>(q, x2, -1.426_474e-2);
    x * p / q
}

/// Exact (erf) GELU, as Hugging Face's `"gelu"`.
#[inline(always)]
pub fn gelu<const FMA: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<FMA>(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh<const FMA: bool>(x: f32) -> f32 {
    // tanh(u) = 1 - 2 / (exp(2u) + 1), written with exp of a non-positive
    // argument to stay in the vectorised `exp`.
    let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    let e = exp_nonpositive::<FMA>(-2.0 * u.abs());
    let tanh = ((1.0 - e) / (1.0 + e)).copysign(u);
    0.5 * x * (1.0 + tanh)
}

dispatch!(bias_gelu(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu::<FMA>(*v + b);
        }
    }
});

dispatch!(bias_gelu_tanh(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu_tanh::<FMA>(*v + b);
        }
    }
});

dispatch!(bias_relu(values: &mut [f32], bias: &[f32]) {
    for row in values.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = (*v + b).max(0.0);
        }
    }
});

/// `act(v + bias)` over rows of `bias.len()` values.
pub fn bias_activation(values: &mut [f32], bias: &[f32], activation: Activation) {
    match activation {
        Activation::Gelu => bias_gelu(values, bias),
        Activation::GeluTanh => bias_gelu_tanh(values, bias),
        Activation::Relu => bias_relu(values, bias),
    }
}

/// Sum with eight partial sums (vectorisable, and more accurate than one
/// running sum).
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut partial = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p += v;
        }
    }
    partial.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let mut partial = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for chunk in chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p = p.max(*v);
        }
    }
    partial.iter().copied().fold(tail, f32::max)
}

dispatch!(add_norm(
    values: &mut [f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    weight: &[f32],
    shift: &[f32],
    eps: f32
) {
    if let Some(bias) = bias {
        values.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    if let Some(residual) = residual {
        values.iter_mut().zip(residual).for_each(|(v, r)| *v += r);
    }
    let n = values.len() as f32;
    let mean = sum(values) / n;
    values.iter_mut().for_each(|v| *v -= mean);
    let mut squares = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (s, v) in squares.iter_mut().zip(chunk) {
            *s += v * v;
        }
    }
    let variance = (squares.iter().sum::<f32>() + tail) / n;
    let inv_std = 1.0 / (variance + eps).sqrt();
    for ((v, w), b) in values.iter_mut().zip(weight).zip(shift) {
        *v = *v * inv_std * w + b;
    }
});

/// Queries computed together in an attention tile.
const QUERY_TILE: usize = 4;
/// Keys per score tile: one AVX register of f32.
pub const KEY_TILE: usize = 8;
/// Value columns per context tile: two AVX registers (with four queries,
/// eight accumulators, leaving registers for the loads).
pub const VALUE_TILE: usize = 16;

/// One attention head of one sequence of `len` tokens, heads of `d`, the
/// query already scaled:
/// - `q`: `[len, d]`;
/// - `kt`: the keys transposed, `[d, key_stride]`, columns from `len` on
///   zero (`key_stride` is `len` rounded up to [`KEY_TILE`]);
/// - `v`: `[len, value_stride]`, columns from `d` on zero (`value_stride`
///   is `d` rounded up to [`VALUE_TILE`]);
/// - `relative`: optionally, a bias by relative position, `[2 * len - 1]`:
///   score `(i, j)` gets `relative[len - 1 + j - i]` before the softmax.
pub struct HeadInputs<'a> {
    pub q: &'a [f32],
    pub kt: &'a [f32],
    pub v: &'a [f32],
    pub len: usize,
    pub d: usize,
    pub key_stride: usize,
    pub value_stride: usize,
    pub relative: Option<&'a [f32]>,
}

dispatch!(head_attention(inputs: &HeadInputs, out: &mut [f32]) {
    // Tiles of four queries: every key and value loaded serves four
    // queries, and the accumulators stay in registers.
    let HeadInputs { q, len, d, key_stride, value_stride, .. } = *inputs;
    let mut block = vec![0f32; QUERY_TILE * d];
    let mut scores = vec![0f32; QUERY_TILE * key_stride];
    let mut start = 0;
    while start < len {
        let rows = (len - start).min(QUERY_TILE);
        block[..rows * d].copy_from_slice(&q[start * d..(start + rows) * d]);
        block[rows * d..].fill(0.0);
        score_tiles::<FMA>(&block, inputs, &mut scores);
        for (i, row) in (start..).zip(scores.chunks_exact_mut(key_stride).take(rows)) {
            let row = &mut row[..len];
            if let Some(relative) = inputs.relative {
                // Keys j = 0..len of query i: relative[len - 1 - i + j].
                let bias = &relative[len - 1 - i..2 * len - 1 - i];
                row.iter_mut().zip(bias).for_each(|(s, b)| *s += b);
            }
            softmax_in_place::<FMA>(row);
        }
        let out_rows = &mut out[start * value_stride..(start + rows) * value_stride];
        context_tiles::<FMA>(&scores, inputs, rows, out_rows);
        start += rows;
    }
});

/// Scores of a block of queries (`[QUERY_TILE, d]`) against all keys,
/// `[QUERY_TILE, key_stride]`.
#[inline(always)]
fn score_tiles<const FMA: bool>(block: &[f32], inputs: &HeadInputs, scores: &mut [f32]) {
    let HeadInputs {
        kt, d, key_stride, ..
    } = *inputs;
    for j0 in (0..key_stride).step_by(KEY_TILE) {
        let mut acc = [[0f32; KEY_TILE]; QUERY_TILE];
        for (c, keys) in kt.chunks_exact(key_stride).take(d).enumerate() {
            let keys = &keys[j0..j0 + KEY_TILE];
            for (qi, acc_row) in acc.iter_mut().enumerate() {
                let query = block[qi * d + c];
                for (a, k) in acc_row.iter_mut().zip(keys) {
                    *a = madd::<FMA>(query, *k, *a);
                }
            }
        }
        for (qi, acc_row) in acc.iter().enumerate() {
            let at = qi * key_stride + j0;
            scores[at..at + KEY_TILE].copy_from_slice(acc_row);
        }
    }
}

/// Probability-weighted sums of the values for the first `rows` queries of
/// the block (`probs` is `[QUERY_TILE, key_stride]`).
#[inline(always)]
fn context_tiles<const FMA: bool>(
    probs: &[f32],
    inputs: &HeadInputs,
    rows: usize,
    out: &mut [f32],
) {
    let HeadInputs {
        v,
        len,
        key_stride,
        value_stride,
        ..
    } = *inputs;
    for c0 in (0..value_stride).step_by(VALUE_TILE) {
        let mut acc = [[0f32; VALUE_TILE]; QUERY_TILE];
        for (j, values) in v.chunks_exact(value_stride).take(len).enumerate() {
            let values = &values[c0..c0 + VALUE_TILE];
            for (qi, acc_row) in acc.iter_mut().enumerate() {
                let p = probs[qi * key_stride + j];
                for (a, x) in acc_row.iter_mut().zip(values) {
                    *a = madd::<FMA>(p, *x, *a);
                }
            }
        }
        for (qi, acc_row) in acc.iter().enumerate().take(rows) {
            let at = qi * value_stride + c0;
            out[at..at + VALUE_TILE].copy_from_slice(acc_row);
        }
    }
}

#[inline(always)]
fn softmax_in_place<const FMA: bool>(values: &mut [f32]) {
    let top = max(values);
    for v in values.iter_mut() {
        *v = exp_nonpositive::<FMA>(*v - top);
    }
    let inv = 1.0 / sum(values);
    for v in values.iter_mut() {
        *v *= inv;
    }
}

/// `n` rounded up to a multiple of `tile`.
pub fn round_up(n: usize, tile: usize) -> usize {
    n.div_ceil(tile) * tile
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_on_the_non_positive_axis() {
        for i in 0..=2000 {
            let x = -(i as f32) / 20.0;
            let exact = x.exp();
            let ours = exp_nonpositive::<false>(x);
            assert!(
                (ours - exact).abs() <= 2e-7 * exact.max(1e-30),
                "exp({x}) = {ours} vs {exact}"
            );
        }
    }

    #[test]
    fn erf_matches_libm_closely() {
        for i in -8000..=8000 {
            let x = i as f32 / 1000.0;
            let exact = candle_core::cpu::erf::erf_f32(x);
            let (plain, fused) = (erf::<false>(x), erf::<true>(x));
            assert!(
                (plain - exact).abs() < 5e-7,
                "erf({x}) = {plain} vs {exact}"
            );
            assert!(
                (fused - exact).abs() < 5e-7,
                "erf({x}) = {fused} (fma) vs {exact}"
            );
        }
    }

    #[test]
    fn gelu_variants_match_their_definitions() {
        let mut values: Vec<f32> = (-60..=60).map(|i| i as f32 / 10.0).collect();
        let inputs = values.clone();
        let mut tanh_values = values.clone();
        bias_activation(&mut values, &[0.0], Activation::Gelu);
        bias_activation(&mut tanh_values, &[0.0], Activation::GeluTanh);
        for ((x, g), t) in inputs.iter().zip(&values).zip(&tanh_values) {
            let exact = 0.5 * x * (1.0 + candle_core::cpu::erf::erf_f32(x / 2f32.sqrt()));
            assert!((g - exact).abs() < 1e-6, "gelu({x}) = {g} vs {exact}");
            let approx = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            assert!(
                (t - approx).abs() < 1e-6,
                "gelu_tanh({x}) = {t} vs {approx}"
            );
        }
    }

    #[test]
    fn head_attention_matches_the_definition() {
        for (len, d) in [(5, 3), (9, 16), (1, 8)] {
            check_head_attention(len, d, false);
            check_head_attention(len, d, true);
        }
    }

    fn check_head_attention(len: usize, d: usize, with_relative: bool) {
        let value = |i: usize| ((i * 7919) % 13) as f32 / 6.0 - 1.0;
        let q: Vec<f32> = (0..len * d).map(value).collect();
        let k: Vec<f32> = (0..len * d).map(|i| value(i + 100)).collect();
        let v: Vec<f32> = (0..len * d).map(|i| value(i + 200)).collect();
        let (key_stride, value_stride) = (round_up(len, KEY_TILE), round_up(d, VALUE_TILE));
        let mut kt = vec![0.0; d * key_stride];
        let mut v_padded = vec![0.0; len * value_stride];
        for j in 0..len {
            for c in 0..d {
                kt[c * key_stride + j] = k[j * d + c];
                v_padded[j * value_stride + c] = v[j * d + c];
            }
        }
        let relative: Vec<f32> = (0..2 * len - 1).map(|i| value(i + 300)).collect();
        let mut out = vec![0.0; len * value_stride];
        let inputs = HeadInputs {
            q: &q,
            kt: &kt,
            v: &v_padded,
            len,
            d,
            key_stride,
            value_stride,
            relative: with_relative.then_some(relative.as_slice()),
        };
        head_attention(&inputs, &mut out);
        for i in 0..len {
            let bias = |j: usize| {
                if with_relative {
                    relative[len - 1 + j - i]
                } else {
                    0.0
                }
            };
            let scores: Vec<f32> = (0..len)
                .map(|j| (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f32>() + bias(j))
                .collect();
            let total: f32 = scores.iter().map(|s| s.exp()).sum();
            for c in 0..d {
                let expected: f32 = (0..len)
                    .map(|j| scores[j].exp() / total * v[j * d + c])
                    .sum();
                let got = out[i * value_stride + c];
                assert!(
                    (got - expected).abs() < 1e-5,
                    "len {len}, d {d}: ({i}, {c})"
                );
            }
        }
    }
}
