//! The tile kernel on Intel AMX (Sapphire Rapids and later): `TDPBF16PS`
//! multiplies a 16 x 32 bf16 tile by a 32 x 16 one (stored as 16 rows of
//! bf16 pairs) into a 16 x 16 f32 tile, 16 x 16 x 32 multiply-adds per
//! instruction, about eight times what AVX-512 FMAs do per cycle.
//!
//! Rust has no stable AMX intrinsics, so the instructions are written as
//! inline assembly; no compiled code touches the tile registers, so each
//! product configures them, uses them and releases them itself.

use std::arch::asm;
use std::sync::OnceLock;

use super::kernel::{Operand, PairOperand, TILE, TILE_DEPTH, TILE_ROWS};

/// Linux `arch_prctl` request that lets a process use a dynamically
/// enabled state component, and AMX's tile data component number.
const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
const XFEATURE_XTILEDATA: i64 = 18;
const SYS_ARCH_PRCTL: i64 = 158;

/// Whether this process may run AMX bf16 instructions: the CPU has them
/// (CPUID leaf 7: AMX-TILE and AMX-BF16) and Linux granted the tile state
/// (without the grant the first tile instruction raises SIGILL). Asked once.
///
/// `SIEVE_NO_AMX=1` in the environment turns the tiles off, to run the
/// portable product on an AMX machine (what a CPU without AMX computes).
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let turned_off = std::env::var_os("SIEVE_NO_AMX").is_some_and(|v| v == "1");
        !turned_off && cpu_has_amx_bf16() && linux_grants_tile_data()
    })
}

fn cpu_has_amx_bf16() -> bool {
    // CPUID leaf 7 is valid when the highest basic leaf (leaf 0's EAX)
    // reaches it.
    if std::arch::x86_64::__cpuid(0).eax < 7 {
        return false;
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    let (amx_bf16, amx_tile) = (edx >> 22 & 1 == 1, edx >> 24 & 1 == 1);
    amx_bf16 && amx_tile
}

#[cfg(target_os = "linux")]
fn linux_grants_tile_data() -> bool {
    let ret: i64;
    // SAFETY: the arch_prctl system call reads its two integer arguments
    // and changes only this process's permission to use the AMX state; the
    // syscall instruction clobbers rcx and r11, declared here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn linux_grants_tile_data() -> bool {
    false
}

/// Palette 1 with all eight tiles at their largest: 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn full_tiles() -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        for tile in 0..8 {
            bytes[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&64u16.to_le_bytes());
            bytes[48 + tile] = 16;
        }
        Self(bytes)
    }
}

macro_rules! tile_zero {
    ($t:literal) => {
        asm!(
            concat!("tilezero tmm", $t),
            options(nostack, nomem, preserves_flags)
        )
    };
}

macro_rules! tile_load {
    ($t:literal, $ptr:expr, $stride_bytes:expr) => {
        asm!(
            concat!("tileloadd tmm", $t, ", [{p} + {s} * 1]"),
            p = in(reg) $ptr,
            s = in(reg) $stride_bytes,
            options(nostack, readonly, preserves_flags),
        )
    };
}

macro_rules! tile_dot {
    ($c:literal, $a:literal, $b:literal) => {
        asm!(
            concat!("tdpbf16ps tmm", $c, ", tmm", $a, ", tmm", $b),
            options(nostack, nomem, preserves_flags),
        )
    };
}

macro_rules! tile_store {
    ($t:literal, $ptr:expr, $stride_bytes:expr) => {
        asm!(
            concat!("tilestored [{p} + {s} * 1], tmm", $t),
            p = in(reg) $ptr,
            s = in(reg) $stride_bytes,
            options(nostack, preserves_flags),
        )
    };
}

/// `c = a b` on the tile units. The caller (`kernel::matmul_bf16`) has
/// checked that `available()` is true, that m and n are multiples of 16 and
/// k of 32, and that every tile read or written lies inside its slice.
///
/// C is computed in blocks of up to 2 x 2 tiles (32 x 32 values) held in
/// tmm0-3 across the whole inner dimension; each step of 32 loads two A
/// tiles (tmm4-5) and two B tiles (tmm6-7) for four products.
pub(crate) unsafe fn matmul(a: Operand<'_>, b: PairOperand<'_>, c: &mut [f32], ldc: usize) {
    let config = TileConfig::full_tiles();
    asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly));
    let (m, n, k) = (a.rows, b.cols, a.cols);
    for i in (0..m).step_by(32) {
        let two_rows = i + 16 < m;
        for j in (0..n).step_by(32) {
            let two_cols = j + 16 < n;
            block(a, b, (i, j, k), (two_rows, two_cols), c, ldc);
        }
    }
    asm!("tilerelease", options(nostack, nomem, preserves_flags));
}

/// Asks for a tile's kilobyte in L1 ahead of its load.
#[inline(always)]
unsafe fn prefetch_tile(tile: *const u16) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for line in 0..16 {
        _mm_prefetch::<_MM_HINT_T0>(tile.add(line * 32).cast());
    }
}

/// One block of C: rows i..i+16 (or +32), columns j..j+16 (or +32).
#[inline(always)]
unsafe fn block(
    a: Operand<'_>,
    b: PairOperand<'_>,
    (i, j, k): (usize, usize, usize),
    (two_rows, two_cols): (bool, bool),
    c: &mut [f32],
    ldc: usize,
) {
    // Every tile is a contiguous kilobyte: rows of 64 bytes, one after the other.
    let tile_stride = 64usize;
    let a_tiles_per_row_block = k / TILE_DEPTH;
    tile_zero!(0);
    tile_zero!(1);
    tile_zero!(2);
    tile_zero!(3);
    for step in 0..k / TILE_DEPTH {
        let a0 = a
            .data
            .as_ptr()
            .add(((i / TILE_ROWS) * a_tiles_per_row_block + step) * TILE);
        let b0 = b
            .data
            .as_ptr()
            .add((b.first_tile + step * b.tiles_per_step + j / TILE_ROWS) * TILE);
        if step + 1 < k / TILE_DEPTH {
            let a_next = a0.add(TILE);
            let b_next = b0.add(b.tiles_per_step * TILE);
            prefetch_tile(a_next);
            prefetch_tile(b_next);
            if two_cols {
                prefetch_tile(b_next.add(TILE));
            }
            if two_rows {
                prefetch_tile(a_next.add(a_tiles_per_row_block * TILE));
            }
        }
        tile_load!(4, a0, tile_stride);
        tile_load!(6, b0, tile_stride);
        tile_dot!(0, 4, 6);
        if two_cols {
            tile_load!(7, b0.add(TILE), tile_stride);
            tile_dot!(1, 4, 7);
        }
        if two_rows {
            tile_load!(5, a0.add(a_tiles_per_row_block * TILE), tile_stride);
            tile_dot!(2, 5, 6);
            if two_cols {
                tile_dot!(3, 5, 7);
            }
        }
    }
    let c_stride = ldc * 4;
    let c0 = c.as_mut_ptr().add(i * ldc + j);
    tile_store!(0, c0, c_stride);
    if two_cols {
        tile_store!(1, c0.add(16), c_stride);
    }
    if two_rows {
        tile_store!(2, c0.add(16 * ldc), c_stride);
        if two_cols {
            tile_store!(3, c0.add(16 * ldc + 16), c_stride);
        }
    }
}
