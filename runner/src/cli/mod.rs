//! The `sieve` command line.

mod bench;
mod bench_slim;
mod export;
mod extract;
pub mod heap;
mod logging;
mod pipe;
mod plugins;
mod predict;
mod run;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sieve: which layers and neurons of a pretrained encoder a task needs.
///
/// A YAML spec names the model (a backend plugin and its model folder), the
/// labelled data and the probe settings; `sieve run` extracts every layer's
/// activations, trains probes and writes a report to the spec's output
/// folder.
#[derive(Debug, Parser)]
#[command(name = "sieve", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the experiment a spec describes and write its report.
    Run {
        /// The experiment spec (YAML), e.g. configs/quickstart.yaml.
        spec: PathBuf,
        /// Train every probe again even when the output folder holds
        /// results for the same activations and settings.
        #[arg(long)]
        recompute: bool,
    },
    /// Extract a spec's activations into its store without running the
    /// experiment: all of them, or one shard of a cluster job.
    ///
    /// Interrupted extractions resume at the first missing chunk. With
    /// `--shard i/n` only every n-th chunk (from i) is extracted; run the n
    /// shards anywhere (a Slurm array, a Kubernetes indexed job), then
    /// `sieve merge` joins them.
    Extract {
        /// The experiment spec (YAML).
        spec: PathBuf,
        /// INDEX/COUNT, 0-based: e.g. `--shard $SLURM_ARRAY_TASK_ID/8`.
        #[arg(long)]
        shard: Option<String>,
    },
    /// Join the chunks extracted by `sieve extract --shard` into one
    /// complete store entry for the spec.
    Merge {
        /// The experiment spec the shards ran with.
        spec: PathBuf,
        /// Store folders the shards wrote to, when not the spec's own store
        /// (their chunks are copied into it).
        sources: Vec<PathBuf>,
    },
    /// Check a spec (fields, types, files, plugins, data) without running it.
    Validate {
        /// The experiment spec (YAML).
        spec: PathBuf,
    },
    /// List the plugins found in the plugin folder.
    Plugins {
        /// Plugin folder (default: SIEVE_PLUGIN_DIR, else the binary's folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure extraction throughput, full and truncated, on a spec's data;
    /// or, with --slim, an exported slim model against the full model and
    /// the oracle probe.
    Bench {
        /// The experiment spec whose model and data are used (not with
        /// --slim).
        #[arg(required_unless_present = "slim", conflicts_with = "slim")]
        spec: Option<PathBuf>,
        /// Last hidden states to time (comma-separated); default: every one.
        #[arg(long, value_delimiter = ',', conflicts_with = "slim")]
        layers: Vec<u32>,
        /// Timed passes per setting (the fastest is reported).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Also write the measurements as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Time this slim model (a folder written by `sieve export`) and the
        /// full model it was cut from with the run's oracle probe, labelling
        /// the same sentences.
        #[arg(long, value_name = "MODEL_DIR")]
        slim: Option<PathBuf>,
        /// With --slim: sentences to label, one per line (default: the
        /// run's test split, which also gives both models' accuracy).
        #[arg(long, requires = "slim")]
        input: Option<PathBuf>,
        /// With --slim: copies of the input labelled per timed pass
        /// (default: enough for 10,000 words).
        #[arg(long, requires = "slim")]
        copies: Option<usize>,
        /// With --slim: the full model (folder or .onnx file) in place of
        /// the one recorded at export.
        #[arg(long, requires = "slim")]
        full_model: Option<PathBuf>,
        /// With --slim: plugin folder (default: SIEVE_PLUGIN_DIR, else the
        /// binary's folder).
        #[arg(long, requires = "slim")]
        plugins: Option<PathBuf>,
    },
    /// Write a run's slim model: the encoder cut after the last selected
    /// layer, the selected neurons, their classifier and the tokenizer.
    Export {
        /// The output folder of `sieve run` (holds results.json, spec.yaml).
        run_dir: PathBuf,
        /// Folder to create for the slim model.
        out_dir: PathBuf,
        /// Replace OUT_DIR when it exists and is not empty.
        #[arg(long)]
        force: bool,
        /// The spec the run was made from, if the run folder's spec.yaml
        /// has relative paths that cannot be resolved otherwise.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Label sentences (one per line) with an exported slim model.
    Predict {
        /// A folder written by `sieve export`.
        model_dir: PathBuf,
        /// Input text, one sentence per line (words separated by spaces for
        /// tagging); standard input when absent or `-`.
        file: Option<PathBuf>,
        /// Output: `text` (word/TAG tokens or one label per line) or
        /// `json` (one object per line).
        #[arg(long, value_enum, default_value_t = crate::slim::OutputFormat::Text)]
        format: crate::slim::OutputFormat,
        /// Plugin folder (default: SIEVE_PLUGIN_DIR, else the binary's folder).
        #[arg(long)]
        plugins: Option<PathBuf>,
    },
}

/// Runs the command line; errors are printed as one readable message.
pub fn main() -> ExitCode {
    heap::keep_freed_memory();
    pipe::exit_quietly_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { spec, recompute } => {
            run::run(&spec, crate::pipeline::RunOptions { recompute })
        }
        Command::Extract { spec, shard } => extract::extract(&spec, shard.as_deref()),
        Command::Merge { spec, sources } => extract::merge(&spec, &sources),
        Command::Validate { spec } => validate::validate(&spec),
        Command::Plugins { dir } => plugins::list(dir.as_deref()),
        Command::Bench {
            spec,
            layers,
            repeat,
            json,
            slim,
            input,
            copies,
            full_model,
            plugins,
        } => match (slim, spec) {
            (Some(model_dir), _) => bench_slim::bench_slim(&bench_slim::SlimBenchOptions {
                model_dir,
                input,
                copies,
                repeat: repeat.max(1),
                full_model,
                plugins,
                json,
            }),
            (None, Some(spec)) => bench::bench(&spec, &layers, repeat.max(1), json.as_deref()),
            // clap requires one of the two.
            (None, None) => Err(anyhow::anyhow!(
                "sieve bench needs a SPEC or --slim MODEL_DIR"
            )),
        },
        Command::Export {
            run_dir,
            out_dir,
            force,
            spec,
        } => export::export(
            &run_dir,
            &out_dir,
            &crate::slim::ExportOptions { force, spec },
        ),
        Command::Predict {
            model_dir,
            file,
            format,
            plugins,
        } => predict::predict(&model_dir, file.as_deref(), format, plugins.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Once on stderr; the run's log file gets its copy.
            logging::log_failure(&error);
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Applies the spec's thread count to every thread pool in the process
/// (plugins included: candle and rayon read RAYON_NUM_THREADS).
fn set_threads(threads: Option<usize>) {
    if let Some(threads) = threads {
        // Set before any pool exists; plugins are loaded after this.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}
