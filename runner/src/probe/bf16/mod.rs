//! The probe's products in bf16 (`probe: {precision: bf16}`): on CPUs with
//! Intel AMX the tile units multiply bf16 matrices several times faster
//! than AVX-512 multiplies f32 ones, and the paper's probes are nearly all
//! products. Inputs are rounded to bf16 (8 significant bits), sums stay
//! f32, and the weights and Adam state stay f32. Without AMX (or with
//! `SIEVE_NO_AMX=1`) the same bf16 values are multiplied in f32: slower
//! than `precision: f32`, and the run warns.
//!
//! - `amx`: detection, the OS grant and the tile kernel (inline assembly);
//! - `kernel`: the product API, with an f32 fallback for other CPUs;
//! - `layout`: rounding and the padded batch layouts the tiles read;
//! - `loss`: the softmax and its gradient on the class-major scores;
//! - `problem`: the training matrix checked, standardised and rounded;
//! - `transpose`: the 16 x 16 register transpose the layout and the loss
//!   share;
//! - `solver`: the Adam bank on top of them;
//! - `free_running`: the bank's probes stepping on their own, on every
//!   thread.

#[cfg(target_arch = "x86_64")]
mod amx;
/// No tiles off x86-64: the portable product always runs.
#[cfg(not(target_arch = "x86_64"))]
mod amx {
    pub(crate) fn available() -> bool {
        false
    }

    pub(crate) unsafe fn matmul(
        _: super::kernel::Operand<'_>,
        _: super::kernel::PairOperand<'_>,
        _: &mut [f32],
        _: usize,
    ) {
        unreachable!("AMX is never available off x86-64")
    }
}
mod free_running;
mod kernel;
mod layout;
mod loss;
mod problem;
mod solver;
#[cfg(target_arch = "x86_64")]
mod transpose;

pub(crate) use kernel::TILE_DEPTH;
pub(crate) use problem::RoundedProblem;
pub(crate) use solver::train_adam_bank_bf16;
