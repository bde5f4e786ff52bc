//! Test-only linker setting.
//!
//! The integration tests link this crate and the candle backend's rlib into
//! one binary to compare their hidden states in process. Both crates export
//! abi_stable's root-module header under the same fixed symbol name, so the
//! link fails with a duplicate symbol that the tests never use (they call the
//! Rust APIs directly, nothing loads the test binary as a plugin). Allowing
//! the duplicate for test targets only keeps the plugins themselves strict.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-tests=-Wl,--allow-multiple-definition");
    }
}
