//! The 16 x 16 transpose of 32-bit elements in AVX-512 registers, shared by
//! the batch layout (pairs of bf16 values) and the loss's per-class sums
//! (f32 values).

use std::arch::x86_64::*;

/// Elements per register, and registers per transpose.
pub(crate) const LANES: usize = 16;

/// Lane `j` of `r[i]` becomes lane `i` of `r[j]`: 32- and 64-bit elements
/// unpacked inside 128-bit lanes, then two rounds of lane shuffles.
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose_16x16(r: &mut [__m512i; LANES]) {
    let mut t = [_mm512_setzero_si512(); LANES];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for g in 0..4 {
        let (t0, t1, t2, t3) = (t[4 * g], t[4 * g + 1], t[4 * g + 2], t[4 * g + 3]);
        r[4 * g] = _mm512_unpacklo_epi64(t0, t2);
        r[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        r[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
        r[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    // r[4g + c] now holds elements c, c + 4, c + 8, c + 12 of rows
    // 4g..4g + 4, one 128-bit lane per row.
    for half in 0..2 {
        for c in 0..4 {
            let (a, b) = (r[8 * half + c], r[8 * half + c + 4]);
            t[8 * half + c] = _mm512_shuffle_i32x4::<0x88>(a, b);
            t[8 * half + c + 4] = _mm512_shuffle_i32x4::<0xDD>(a, b);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[j + 8]);
        r[j + 8] = _mm512_shuffle_i32x4::<0xDD>(t[j], t[j + 8]);
    }
}
