//! Forward-pass throughput of the candle backend on the WSJ sample.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo run --release -p sieve-backend-candle --example throughput -- \
//!     [--model assets/all-MiniLM-L6-v2] [--data assets/wsj/all.txt] \
//!     [--last-layer 6] [--batch-size 32] [--batch-tokens 8192]
//! ```
//! Reads `word/TAG` lines (split at the LAST `/`), encodes the words at word
//! level and reports subword tokens per second, with and without specials.

use std::path::PathBuf;
use std::time::Instant;

use sieve_backend_candle::{CandleBackend, CandleParams};
use sieve_core::abi_stable::std_types::RVec;
use sieve_core::{
    EncodeRequest, EncoderPlugin, RowLevel, SentencePooling, SubwordPooling, TextUnit,
};
use sieve_encoder_common::{build_plan, plan_batches};

struct Args {
    model: PathBuf,
    data: PathBuf,
    last_layer: u32,
    batch_size: u32,
    batch_tokens: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        model: root.join("assets/all-MiniLM-L6-v2"),
        data: root.join("assets/wsj/all.txt"),
        last_layer: 6,
        batch_size: 32,
        batch_tokens: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--model" => args.model = value.clone().into(),
            "--data" => args.data = value.clone().into(),
            "--last-layer" => args.last_layer = number()? as u32,
            "--batch-size" => args.batch_size = number()? as u32,
            "--batch-tokens" => args.batch_tokens = Some(number()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

/// One unit per line: the words of its `word/TAG` tokens.
fn read_units(path: &PathBuf) -> Result<Vec<TextUnit>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run scripts/fetch-assets.sh)",
            path.display()
        )
    })?;
    let units = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let words: Vec<&str> = line
                .split_whitespace()
                .map(|token| token.rsplit_once('/').map_or(token, |(word, _)| word))
                .collect();
            TextUnit::words(&words)
        })
        .collect();
    Ok(units)
}

fn main() -> Result<(), String> {
    let args = parse_args()?;
    let params = CandleParams {
        model: args.model.clone(),
        max_length: None,
        batch_tokens: args.batch_tokens,
        threads: None,
        device: None,
    };
    let load = Instant::now();
    let backend = CandleBackend::open(&params)?;
    println!("loaded {} in {:.2?}", args.model.display(), load.elapsed());
    let request = EncodeRequest {
        units: RVec::from(read_units(&args.data)?),
        level: RowLevel::Word,
        subword_pooling: SubwordPooling::Last,
        sentence_pooling: SentencePooling::Cls,
        last_layer: args.last_layer,
        batch_size: args.batch_size,
    };
    let planning = Instant::now();
    let plan = build_plan(
        &request,
        backend.tokenizer(),
        backend.describe().max_positions as usize,
    )?;
    let planning = planning.elapsed();
    let lengths: Vec<usize> = plan.sequences.iter().map(|s| s.len()).collect();
    let with_specials: usize = lengths.iter().sum();
    let batch_tokens = Some(args.batch_tokens.unwrap_or(8192));
    let batches = plan_batches(&lengths, args.batch_size as usize, batch_tokens);
    let padded: usize = batches.iter().map(|b| b.len() * lengths[b[0]]).sum();
    println!(
        "tokenised in {planning:.2?}: {} sequences in {} batches, longest {}, padding {:.1}% of {} padded tokens",
        lengths.len(),
        batches.len(),
        lengths.iter().max().unwrap_or(&0),
        100.0 * (padded - with_specials) as f64 / padded.max(1) as f64,
        padded
    );
    let start = Instant::now();
    let rows = backend.encode(&request)?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{} units, {} rows, {} layers; {} subword tokens ({} with specials) in {:.2} s",
        request.units.len(),
        rows.rows,
        rows.layers,
        rows.subword_tokens,
        with_specials,
        seconds
    );
    println!(
        "throughput: {:.0} subword tokens/s ({:.0} with specials), last_layer {}, threads {}",
        rows.subword_tokens as f64 / seconds,
        with_specials as f64 / seconds,
        args.last_layer,
        rayon::current_num_threads()
    );
    Ok(())
}
