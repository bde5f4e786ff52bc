//! A small seeded fuzzer for the property tests of the readers and the spec
//! parser: hostile inputs (random bytes, and real lines mutated a few
//! bytes or tokens at a time) must give an error, never a panic.
//!
//! Hand-written rather than a fuzzing crate: it needs no dependency, runs
//! in an ordinary `cargo test` in well under a second with the default
//! case count, and every failure names the one seed that reproduces it.
//! `SIEVE_FUZZ_CASES` raises the case count for a longer campaign and
//! `SIEVE_FUZZ_SEED` changes (or, with one case, replays) the inputs; see
//! docs/TESTING.md.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Cases per property when `SIEVE_FUZZ_CASES` is not set: a few thousand
/// small inputs take well under a second per property in a release build.
const DEFAULT_CASES: usize = 3000;

/// The base seed when `SIEVE_FUZZ_SEED` is not set, so `make test` is
/// reproducible.
const DEFAULT_SEED: u64 = 0x5EED_F022;

/// The generator of the cases: core's SplitMix64 with the picks the
/// generator needs.
pub struct Rng(sieve_core::SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(sieve_core::SplitMix64::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes that are special to at least one reader or to YAML.
const BYTES: &[u8] =
    b"\t\n\r /_#-.:0129{}[],&*!|>'\"%@`~?\\\x00\x7f\xc3\xa9\xef\xbb\xbf\xff\xfe\x80";

/// Tokens that are special to at least one reader or to YAML, and values
/// at the edges of what numbers can hold.
const TOKENS: &[&str] = &[
    "-DOCSTART-",
    "1-2",
    "1.1",
    "_",
    "\t\t",
    "\r\n",
    "\u{feff}",
    "\u{2028}",
    "\u{85}",
    "é",
    "😀",
    "0",
    "-1",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e309",
    "-0.0",
    ".nan",
    ".inf",
    "NaN",
    "null",
    "~",
    "true",
    "&a ",
    "*a",
    "!!binary ",
    "!!str ",
    "<<: *a\n",
    "? ",
    ": ",
    "- ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "|\n",
    ">-\n",
    "# comment",
    "/",
    "//",
    "word/TAG",
    "\ttext\tlabel",
];

/// The case count: `SIEVE_FUZZ_CASES`, or [`DEFAULT_CASES`].
pub fn cases() -> usize {
    std::env::var("SIEVE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The base seed: `SIEVE_FUZZ_SEED`, or [`DEFAULT_SEED`].
pub fn base_seed() -> u64 {
    std::env::var("SIEVE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// Case `i`'s seed; case 0 uses the base seed itself, so a failing case
/// replays with `SIEVE_FUZZ_SEED=<its seed> SIEVE_FUZZ_CASES=1`.
fn case_seed(base: u64, i: usize) -> u64 {
    if i == 0 {
        base
    } else {
        Rng::new(base ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
    }
}

/// Runs `property` on [`cases`] generated cases; a panic inside it fails
/// the test with the property's name, the case's seed and the command that
/// replays it. `property` builds its own input from the `Rng` (so it can
/// pick options as well as bytes) and returns a description of it.
pub fn check(name: &str, property: impl Fn(&mut Rng, &mut String)) {
    check_cases(name, cases(), base_seed(), property);
}

fn check_cases(name: &str, cases: usize, base: u64, property: impl Fn(&mut Rng, &mut String)) {
    for i in 0..cases {
        let seed = case_seed(base, i);
        let mut described = String::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            property(&mut Rng::new(seed), &mut described)
        }));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "{name}: case {i} panicked: {message}\ninput: {}\nreplay: SIEVE_FUZZ_SEED={seed} \
                 SIEVE_FUZZ_CASES=1 cargo test --release -p sieve-runner {name}",
                truncated(&described)
            );
        }
    }
}

fn truncated(text: &str) -> String {
    const MAX: usize = 4000;
    let mut end = text.len().min(MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// One hostile input: random bytes (1 in 8), or one of `seeds` (spliced
/// with lines of another 1 in 4) with a few mutations.
pub fn input(rng: &mut Rng, seeds: &[&str]) -> Vec<u8> {
    if seeds.is_empty() || rng.chance(8) {
        return random_bytes(rng);
    }
    let mut bytes = rng.pick(seeds).as_bytes().to_vec();
    if rng.chance(4) {
        let other = rng.pick(seeds).as_bytes();
        bytes = splice_lines(rng, &bytes, other);
    }
    for _ in 0..=rng.below(6) {
        mutate(rng, &mut bytes);
    }
    bytes
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(200);
    (0..len)
        .map(|_| {
            if rng.chance(2) {
                *rng.pick(BYTES)
            } else {
                rng.next_u64() as u8
            }
        })
        .collect()
}

/// The lines of `a` and `b` interleaved at random.
fn splice_lines(rng: &mut Rng, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = a.split_inclusive(|&c| c == b'\n').collect();
    for line in b.split_inclusive(|&c| c == b'\n') {
        let at = rng.below(lines.len() + 1);
        lines.insert(at, line);
    }
    lines.concat()
}

/// One small change: a byte or token inserted, a byte flipped, a range
/// removed, a line repeated or the tail cut off.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(7) {
        0 => bytes.insert(at, *rng.pick(BYTES)),
        1 => {
            let token = rng.pick(TOKENS).as_bytes();
            bytes.splice(at..at, token.iter().copied());
        }
        2 if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
        3 if at < bytes.len() => {
            let end = (at + 1 + rng.below(16)).min(bytes.len());
            bytes.drain(at..end);
        }
        4 => {
            let start = bytes[..at]
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |i| i + 1);
            let end = bytes[at..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(bytes.len(), |i| at + i + 1);
            let line = bytes[start..end].to_vec();
            bytes.splice(start..start, line);
        }
        5 => bytes.truncate(at),
        _ => {
            // A run of one byte: long lines and deep nesting.
            let byte = *rng.pick(b"[{- \t/_#");
            let count = 1 + rng.below(300);
            bytes.splice(at..at, std::iter::repeat_n(byte, count));
        }
    }
}

/// `bytes` as a readable, escaped string for failure messages.
pub fn describe(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded_and_varied() {
        let seeds = ["a/B c/D\n", "1\tx\tx\tX\t_\t_\t0\troot\t_\t_\n"];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..50).map(|_| input(&mut rng, &seeds)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7), "the same seed gives the same inputs");
        assert_ne!(run(7), run(8));
        let distinct: std::collections::BTreeSet<_> = run(7).into_iter().collect();
        assert!(distinct.len() > 40, "{} distinct inputs", distinct.len());
    }

    #[test]
    fn a_panicking_property_names_its_replay_seed() {
        let caught = catch_unwind(|| {
            check_cases("demo", 100, 1, |rng, described| {
                *described = "x".into();
                assert!(rng.below(3) != 0, "boom");
            })
        });
        let message = caught
            .expect_err("some case draws 0")
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("demo: case"), "{message}");
        assert!(message.contains("SIEVE_FUZZ_SEED="), "{message}");
        assert!(message.contains("boom"), "{message}");
    }
}
