//! A vectorisable `e^x` for the softmax of the probes' scores.
//!
//! libm's `expf` is a call per value, which the compiler cannot vectorise:
//! it took 7% of a whole WSJ selection, and most of the time of the small
//! top-N probes, whose products are tiny next to their 128 x 45 scores
//! per step. This is the classic range reduction `e^x = 2^n e^r` with
//! `|r| <= ln 2 / 2` and Cephes' degree-6 polynomial for `e^r` (within 2
//! ulp of the true value), written branch-free on plain `f32` so that the
//! loop vectorises; with AVX2 available it runs 8 lanes at a time.
//!
//! No multiply-add is fused (Rust never contracts a multiply and an add,
//! even where the build enables FMA), so the result is the same bits on every x86-64 machine,
//! whichever path ran.

/// Below this `e^x` would leave f32's normal range; inputs are clamped
/// here (e^-87.3 = 1.2e-38, nothing next to the row maximum's e^0 = 1).
const MIN_INPUT: f32 = -87.3;
/// Above this `e^x` overflows f32.
const MAX_INPUT: f32 = 88.7;
/// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer,
/// which then sits in the low mantissa bits.
const ROUNDING_MAGIC: f32 = 12_582_912.0;
/// ln 2 split in a high part with few mantissa bits (exact `n * LN2_HI`)
/// and the remainder (Cody-Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// `e^x` (clamped to f32's normal range).
#[inline(always)]
fn exp_one(x: f32) -> f32 {
    let x = x.clamp(MIN_INPUT, MAX_INPUT);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDING_MAGIC;
    let n = shifted - ROUNDING_MAGIC;
    let n_int = shifted.to_bits() as i32 - ROUNDING_MAGIC.to_bits() as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = POLY[0];
    for c in &POLY[1..] {
        p = p * r + c;
    }
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((n_int + 127) as u32) << 23);
    e_r * two_n
}

#[inline(always)]
fn exp_loop(values: &mut [f32]) {
    for v in values {
        *v = exp_one(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_loop_avx2(values: &mut [f32]) {
    exp_loop(values)
}

/// `v = e^(v - shift)` for every lane of a class line, and `sum += v` (the
/// softmax's shifted exponentials and their running row sums in one pass;
/// the same operations, in the same order, as a subtraction, `exp_in_place`
/// and the additions one after the other).
pub(crate) fn exp_shifted_summed(line: &mut [f32], shift: &[f32], sum: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been checked to support AVX2.
        unsafe { exp_shifted_summed_avx2(line, shift, sum) };
        return;
    }
    exp_shifted_summed_loop(line, shift, sum)
}

#[inline(always)]
fn exp_shifted_summed_loop(line: &mut [f32], shift: &[f32], sum: &mut [f32]) {
    for ((v, &m), s) in line.iter_mut().zip(shift).zip(sum) {
        *v = exp_one(*v - m);
        *s += *v;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_shifted_summed_avx2(line: &mut [f32], shift: &[f32], sum: &mut [f32]) {
    exp_shifted_summed_loop(line, shift, sum)
}

/// Replaces every value by its exponential.
pub(crate) fn exp_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has just been checked to support AVX2.
        unsafe { exp_loop_avx2(values) };
        return;
    }
    exp_loop(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_true_exponential_within_a_few_ulp() {
        let inputs: Vec<f32> = (0..=200_000)
            .map(|i| -87.0 + i as f32 * 0.000_875)
            .collect();
        let mut got = inputs.clone();
        exp_in_place(&mut got);
        for (&x, &e) in inputs.iter().zip(&got) {
            let want = (x as f64).exp();
            let error = ((e as f64 - want) / want).abs();
            assert!(
                error < 3.0e-7,
                "exp({x}) = {e}, want {want} (relative {error:e})"
            );
        }
    }

    #[test]
    fn zero_gives_one_and_extremes_stay_finite() {
        let mut v = vec![0.0, -1.0e30, f32::NEG_INFINITY, -87.3, 88.0];
        exp_in_place(&mut v);
        assert_eq!(v[0], 1.0, "the row maximum must weigh exactly 1");
        assert!(v[1] > 0.0 && v[1] < 1.3e-38 && v[2] == v[1], "{v:?}");
        assert!(v[4].is_finite() && (v[4] as f64 / 88f64.exp() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn shifted_and_summed_is_subtract_exp_add_bit_for_bit() {
        let line: Vec<f32> = (0..301)
            .map(|i| (i * 37 % 101) as f32 * 0.13 - 6.0)
            .collect();
        let shift: Vec<f32> = (0..301).map(|i| (i % 7) as f32 * 0.9 - 1.0).collect();
        let start: Vec<f32> = (0..301).map(|i| i as f32 * 0.01).collect();
        let mut want = line.clone();
        want.iter_mut().zip(&shift).for_each(|(v, &m)| *v -= m);
        exp_in_place(&mut want);
        let want_sum: Vec<f32> = start.iter().zip(&want).map(|(s, v)| s + v).collect();
        let (mut got, mut sum) = (line, start);
        exp_shifted_summed(&mut got, &shift, &mut sum);
        assert_eq!(got, want);
        assert_eq!(sum, want_sum);
    }

    #[test]
    fn the_generic_and_the_avx2_paths_agree_bit_for_bit() {
        let inputs: Vec<f32> = (0..10_007).map(|i| -60.0 + i as f32 * 0.0071).collect();
        let mut plain = inputs.clone();
        exp_loop(&mut plain);
        let mut dispatched = inputs;
        exp_in_place(&mut dispatched);
        assert_eq!(plain, dispatched);
    }
}
