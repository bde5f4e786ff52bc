//! The paper's selection: LayerSelector, then correlation clustering, then
//! a ranking and the smallest top-N within the threshold (CCFS).
//!
//! Columns are tracked as global indices (`layer * hidden + neuron`) so the
//! result maps straight back to the model, whichever stages ran.

use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sieve_core::{
    lend_probe_host, FeatureId, MatrixView, PluginKind, Selection, SelectionKind, SelectorInput,
    TaskKind,
};
use tracing::info;

use crate::plugins::PluginRegistry;
use crate::probe::{probe_cost, Task, TrainedProbe};
use crate::spec::{SelectionSpec, SelectorStageSpec, TopNSpec};
use crate::store::StoredSplit;
use crate::util::progress::Step;

use super::host::{HostProbe, SharedInput};
use super::layers::{cumulative_dev, oracle_score, LayerScores};
use super::probing::{Columns, ProbeBench, Score};
use super::shared_probes::SharedProbes;

/// LayerSelector's choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerChoice {
    /// The last hidden state kept: the forward pass can stop after it.
    pub k: u32,
    pub features: usize,
    pub dev: f64,
    pub test: f64,
    pub delta: f64,
}

/// A filtering stage's result (clustering).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilterResult {
    pub selector: String,
    pub params: serde_json::Value,
    pub notes: String,
    pub features: usize,
    pub dev: f64,
    pub test: f64,
    /// Size of the cluster behind each kept feature, when the filter says
    /// (the correlation selector does).
    #[serde(default)]
    pub cluster_sizes: Vec<u32>,
}

/// One candidate of the top-N search.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Candidate {
    pub n: usize,
    pub dev: f64,
    pub test: f64,
}

/// The final selection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalSelection {
    pub selector: String,
    pub features: usize,
    pub dev: f64,
    pub test: f64,
    /// Share of the model's features removed, in percent.
    pub reduction: f64,
    /// The dev score the search had to stay within delta of.
    pub reference_dev: f64,
    pub delta: f64,
    /// The fixed budget `top_n.target` asked for instead of the delta rule.
    #[serde(default)]
    pub target: Option<usize>,
    pub candidates: Vec<Candidate>,
    /// [layer, neuron] of every kept feature, most important first.
    pub neurons: Vec<[u32; 2]>,
}

/// One ranker's scores at every candidate size (`compare` in a spec).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RankerCurve {
    pub selector: String,
    pub params: serde_json::Value,
    /// Time the ranker took to rank (its probes included, the top-N
    /// probes not).
    pub seconds: f64,
    pub points: Vec<Candidate>,
}

impl RankerCurve {
    /// The selector's name, with its parameters when it has any, so two
    /// settings of one plugin stay apart in tables and legends.
    pub fn label(&self) -> String {
        match self.params.as_object() {
            Some(map) if !map.is_empty() => {
                let params: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} ({})", self.selector, params.join(", "))
            }
            _ => self.selector.clone(),
        }
    }
}

/// Everything the selection stages produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SelectionOutcome {
    pub layer_selector: Option<LayerChoice>,
    pub clustering: Option<FilterResult>,
    pub selection: Option<FinalSelection>,
    pub timings: SelectionTimings,
    /// Ranker comparison curves, when the spec lists rankers to compare.
    #[serde(default)]
    pub comparison: Vec<RankerCurve>,
    /// The probe on the final selection's neurons (columns in the order of
    /// `selection.neurons`): what a slim model predicts with.
    pub probe: Option<TrainedProbe>,
    /// Departures the report must show (selectors on a row sample).
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SelectionTimings {
    pub layer_selector: f64,
    pub clustering: f64,
    pub ranking: f64,
    pub top_n: f64,
    #[serde(default)]
    pub compare: f64,
    pub total: f64,
}

/// The lowest k whose cumulative dev score is strictly above
/// `oracle_dev * (1 - delta / 100)`; the last k if none is. A probe that
/// was not trained (`None`) is never chosen.
pub fn select_layer(cumulative_dev: &[Option<f64>], delta: f64) -> usize {
    let oracle = cumulative_dev.last().copied().flatten().unwrap_or(0.0);
    let target = oracle * (1.0 - delta / 100.0);
    cumulative_dev
        .iter()
        .position(|dev| dev.is_some_and(|dev| dev > target))
        .unwrap_or(cumulative_dev.len().saturating_sub(1))
}

/// The paper's grid of fractions of all features.
pub fn paper_fractions() -> Vec<f64> {
    let mut f: Vec<f64> = (1..=5).map(|i| i as f64 * 0.001).collect();
    f.extend((1..=10).map(|i| i as f64 * 0.01));
    f.extend((3..=10).map(|i| i as f64 * 0.05));
    f.extend([0.6, 0.7, 0.8, 0.9]);
    f
}

/// Candidate sizes: `int(f * total)` for each fraction (or the explicit
/// sizes), ascending, without zeros, repeats or sizes above `available`.
pub fn candidate_sizes(spec: &TopNSpec, total_features: usize, available: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = if let Some(target) = spec.target {
        vec![target.min(available)]
    } else if let Some(sizes) = &spec.sizes {
        sizes.clone()
    } else {
        let fractions = spec.fractions.clone().unwrap_or_else(paper_fractions);
        // The small epsilon keeps 0.3 * 1000 at 300 despite binary rounding.
        fractions
            .iter()
            .map(|f| (f * total_features as f64 + 1e-9) as usize)
            .collect()
    };
    sizes.retain(|&n| n > 0 && n <= available);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// Runs the selection stages the spec asks for.
pub struct SelectionRun<'a> {
    pub registry: &'a PluginRegistry,
    pub bench: &'a ProbeBench<'a>,
    pub spec: &'a SelectionSpec,
    pub hidden: usize,
    /// Hidden states of the model (K + 1).
    pub states: usize,
    /// What the run should tell the reader (e.g. that a selector saw a
    /// row sample), collected while it runs.
    pub notes: std::sync::Mutex<Vec<String>>,
    /// Probes two stages ask for (the clustering's score and the
    /// elastic-net ranker's probe of the kept neurons), trained once.
    pub shared_probes: SharedProbes,
}

impl SelectionRun<'_> {
    pub fn run(&self, layer_scores: &[LayerScores]) -> Result<SelectionOutcome> {
        let started = Instant::now();
        let mut outcome = SelectionOutcome::default();
        let cumulative = cumulative_dev(layer_scores);
        let oracle = oracle_score(layer_scores)?;

        // LayerSelector reuses the cumulative probes already trained.
        let k = match &self.spec.layer_selector {
            Some(ls) => {
                let k = select_layer(&cumulative, ls.delta);
                let score = layer_scores[k]
                    .cumulative
                    .context("LayerSelector chose a layer whose probe was not trained")?;
                info!(
                    "LayerSelector: layers 0..={k} (dev {:.4}, oracle {:.4})",
                    score.dev, oracle.dev
                );
                outcome.layer_selector = Some(LayerChoice {
                    k: k as u32,
                    features: (k + 1) * self.hidden,
                    dev: score.dev,
                    test: score.test,
                    delta: ls.delta,
                });
                k
            }
            None => self.states - 1,
        };
        outcome.timings.layer_selector = started.elapsed().as_secs_f64();
        let mut columns: Vec<usize> = (0..(k + 1) * self.hidden).collect();
        if self.spec.clustering.is_some() || self.spec.ranking.is_some() {
            // Every later stage reads some of these columns.
            self.bench.hold(&Columns::Range(0..columns.len()))?;
        }
        let mut reference = layer_scores[k]
            .cumulative
            .context("the chosen layers' probe was not trained")?;

        let mut ranked = None;
        if let Some(stage) = &self.spec.clustering {
            let t = Instant::now();
            let (kept, selection) = self.filter_columns(stage, &columns)?;
            // The kept neurons' probe scores the clustering, and the
            // elastic-net ranker asks for the same probe (see
            // `SharedProbes`): it is trained first, on every thread (an
            // asker waiting for it would hold a thread the probe's batch
            // layouts could use).
            let probe = self.kept_probe(&kept)?;
            // Its scores and the ranking then run side by side. The
            // ranking's time is its own; the clustering's includes the
            // probe, however long the two overlapped.
            let (scored, ranking) = rayon::join(
                || {
                    let scored = self.score_filter(stage, &columns, &kept, selection, probe);
                    (scored, t.elapsed().as_secs_f64())
                },
                || {
                    self.spec.ranking.as_ref().map(|rank_stage| {
                        let t = Instant::now();
                        let order = self.rank(rank_stage, &kept);
                        (order, t.elapsed().as_secs_f64())
                    })
                },
            );
            let (result, seconds) = scored;
            let result = result?;
            if let Some((order, seconds)) = ranking {
                ranked = Some(order?);
                outcome.timings.ranking = seconds;
            }
            columns = kept;
            reference = Score {
                dev: result.dev,
                test: result.test,
            };
            outcome.clustering = Some(result);
            outcome.timings.clustering = seconds;
        }

        if let Some(stage) = &self.spec.ranking {
            let ranked = match ranked {
                Some(ranked) => ranked,
                None => {
                    let t = Instant::now();
                    let ranked = self.rank(stage, &columns)?;
                    outcome.timings.ranking = t.elapsed().as_secs_f64();
                    ranked
                }
            };
            let t = Instant::now();
            let top_n = self.top_n_spec();
            let name = stage.selector.value.clone();
            let (selection, probe) = self.search(&name, &top_n, &ranked, reference)?;
            outcome.selection = Some(selection);
            outcome.probe = Some(probe);
            outcome.timings.top_n = t.elapsed().as_secs_f64();
        }
        if !self.spec.compare.is_empty() {
            let t = Instant::now();
            outcome.comparison = self.compare(&columns)?;
            outcome.timings.compare = t.elapsed().as_secs_f64();
        }
        outcome.timings.total = started.elapsed().as_secs_f64();
        outcome.notes = std::mem::take(&mut *self.notes.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(outcome)
    }

    /// The spec's top-N settings, or the paper's (its grid, delta 1%).
    fn top_n_spec(&self) -> TopNSpec {
        self.spec.top_n.clone().unwrap_or(TopNSpec {
            delta: None,
            fractions: None,
            sizes: None,
            target: None,
        })
    }

    /// Every ranker of `compare` (and the main ranking) on the same
    /// columns, each scored at every candidate size of the grid (no early
    /// stop), so their curves can be drawn on one chart.
    fn compare(&self, columns: &[usize]) -> Result<Vec<RankerCurve>> {
        let mut stages: Vec<&SelectorStageSpec> = self.spec.ranking.iter().collect();
        stages.extend(self.spec.compare.iter());
        let mut grid = self.top_n_spec();
        grid.target = None;
        let sizes = candidate_sizes(&grid, self.states * self.hidden, columns.len());
        let mut curves = Vec::with_capacity(stages.len());
        let probes = (stages.len() * sizes.len()) as u64;
        let progress = Step::counted("ranker comparison", probes, "probes");
        for stage in stages {
            progress.set_message(stage.selector.value.as_str());
            let t = Instant::now();
            let ranked = self.rank(stage, columns)?;
            let seconds = t.elapsed().as_secs_f64();
            let mut points = Vec::with_capacity(sizes.len());
            for &n in &sizes {
                let (score, _) = self.bench.score(&Columns::List(ranked[..n].to_vec()))?;
                progress.inc(1);
                points.push(Candidate {
                    n,
                    dev: score.dev,
                    test: score.test,
                });
            }
            info!(
                "compare {}: ranked in {seconds:.2} s; {}",
                stage.selector.value,
                points
                    .iter()
                    .map(|p| format!("N={} test {:.4}", p.n, p.test))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            curves.push(RankerCurve {
                selector: stage.selector.value.clone(),
                params: serde_json::Value::Object(stage.params.clone().unwrap_or_default()),
                seconds,
                points,
            });
        }
        progress.finish();
        Ok(curves)
    }

    /// Calls a selector plugin on `columns` of the activations.
    fn call_selector(&self, stage: &SelectorStageSpec, columns: &[usize]) -> Result<Selection> {
        let name = &stage.selector.value;
        let params = serde_json::Value::Object(stage.params.clone().unwrap_or_default());
        let plugin = self.registry.find(name, PluginKind::Selector)?;
        let selector = self.registry.open_selector(name, &params.to_string())?;
        let b = self.bench;
        let started = Instant::now();
        let subset = Columns::List(columns.to_vec());
        let (train, train_rows) = RowSample::of(b, b.train, &subset)?;
        let (dev, dev_rows) = RowSample::of(b, b.dev, &subset)?;
        for (split, sample, rows) in [
            ("train", &train_rows, b.train.rows),
            ("dev", &dev_rows, b.dev.rows),
        ] {
            if let RowSample::Rows(kept) = sample {
                self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                    "selector '{name}' saw {} of {rows} {split} rows ({} columns exceed store.in_memory_mb; rows spread evenly over the split)",
                    kept.len(),
                    columns.len()
                ));
            }
        }
        let features: Vec<FeatureId> = columns
            .iter()
            .map(|&c| FeatureId {
                layer: (c / self.hidden) as u32,
                neuron: (c % self.hidden) as u32,
            })
            .collect();
        let (task, num_classes) = match b.task {
            Task::Classification { num_classes } => (TaskKind::Classification, num_classes as u32),
            Task::Regression => (TaskKind::Regression, 0),
        };
        let train_labels = train_rows.pick(b.labels[0]);
        let dev_labels = dev_rows.pick(b.labels[1]);
        let train_targets = train_rows.pick(b.train.targets.values());
        let dev_targets = dev_rows.pick(b.dev.targets.values());
        let input = SelectorInput {
            task,
            train: matrix(&train, train_rows.len(b.train), columns.len())?,
            dev: matrix(&dev, dev_rows.len(b.dev), columns.len())?,
            train_labels: train_labels.as_slice().into(),
            dev_labels: dev_labels.as_slice().into(),
            train_targets: train_targets.as_slice().into(),
            dev_targets: dev_targets.as_slice().into(),
            num_classes,
            features: features.as_slice().into(),
            seed: b.seed,
        };
        // A ranker's probe on every train row of these columns with the
        // spec's settings is the one the clustering's score trains.
        let shared = matches!(train_rows, RowSample::All).then(|| SharedInput {
            probes: &self.shared_probes,
            columns,
            x: &train,
            labels: &train_labels,
            targets: &train_targets,
            task: b.task,
        });
        let host = HostProbe {
            settings: b.settings.clone(),
            seed: b.seed,
            regression: matches!(b.task, Task::Regression),
            shared,
        };
        let gathered = started.elapsed().as_secs_f64();
        // The plugin's work cannot be counted from here: its elapsed time
        // (and the batches of the probes it asks the host for) show it runs.
        let heartbeat = Step::heartbeat(format!("selector {name}"));
        let selection =
            plugin.check_result("select", selector.select(&input, lend_probe_host(&host)))?;
        heartbeat.finish();
        tracing::debug!(
            "selector '{name}': {:.3} s, of which {gathered:.3} s gathering its input",
            started.elapsed().as_secs_f64()
        );
        check_selection(&plugin.name, &selection, columns.len())
            .map_err(|reason| plugin.failure("select", reason))?;
        if !selection.notes.is_empty() {
            info!("{name}: {}", selection.notes);
        }
        Ok(selection)
    }

    /// A filtering selector (clustering): the kept columns, sorted, and
    /// the selector's answer.
    fn filter_columns(
        &self,
        stage: &SelectorStageSpec,
        columns: &[usize],
    ) -> Result<(Vec<usize>, Selection)> {
        let selection = self.call_selector(stage, columns)?;
        let mut kept: Vec<usize> = selection
            .order
            .iter()
            .map(|&i| columns[i as usize])
            .collect();
        kept.sort_unstable();
        Ok((kept, selection))
    }

    /// The probe on a filter's kept columns (trained once, see
    /// [`SharedProbes`]).
    fn kept_probe(&self, kept: &[usize]) -> Result<TrainedProbe> {
        let columns = Columns::List(kept.to_vec());
        let progress = Step::probe_work(format!("probe of the {} kept neurons", kept.len()));
        let probe = self
            .shared_probes
            .get_or_train(kept, || self.bench.train(&columns))?;
        progress.finish();
        Ok(probe)
    }

    /// A filter's result, scored by the probe on its kept columns.
    fn score_filter(
        &self,
        stage: &SelectorStageSpec,
        columns: &[usize],
        kept: &[usize],
        selection: Selection,
        probe: TrainedProbe,
    ) -> Result<FilterResult> {
        let (score, _) = self.bench.scored(probe, &Columns::List(kept.to_vec()))?;
        info!(
            "{}: {} of {} features kept, dev {:.4} test {:.4}",
            stage.selector.value,
            kept.len(),
            columns.len(),
            score.dev,
            score.test
        );
        Ok(FilterResult {
            selector: stage.selector.value.clone(),
            params: serde_json::Value::Object(stage.params.clone().unwrap_or_default()),
            notes: selection.notes.to_string(),
            features: kept.len(),
            dev: score.dev,
            test: score.test,
            cluster_sizes: selection
                .scores
                .iter()
                .map(|&s| s.max(0.0) as u32)
                .collect(),
        })
    }

    /// A ranking selector: `columns` reordered, most useful first. A filter
    /// used as a ranker keeps its order and drops the rest.
    fn rank(&self, stage: &SelectorStageSpec, columns: &[usize]) -> Result<Vec<usize>> {
        let selection = self.call_selector(stage, columns)?;
        Ok(selection
            .order
            .iter()
            .map(|&i| columns[i as usize])
            .collect())
    }

    /// The first candidate N whose probe stays within delta of `reference`.
    fn search(
        &self,
        selector: &str,
        spec: &TopNSpec,
        ranked: &[usize],
        reference: Score,
    ) -> Result<(FinalSelection, TrainedProbe)> {
        let total = self.states * self.hidden;
        let spec = &self.clamp_target(spec, ranked.len());
        let target = reference.dev * (1.0 - spec.delta() / 100.0);
        let mut candidates = Vec::new();
        let sizes = candidate_sizes(spec, total, ranked.len());
        let threads = rayon::current_num_threads().max(1);
        let widest = sizes.last().copied().unwrap_or(0);
        // Candidates count when their wave is scored; the message gives the
        // wave and its probes' batches.
        let progress = Step::counted("top-N search", sizes.len() as u64, "candidates");
        // Every candidate is a prefix of the ranking: the columns are
        // gathered and prepared once for the whole search.
        let chosen = match widest {
            0 => None,
            _ => self.bench.with_bank(
                &Columns::List(ranked[..widest].to_vec()),
                |bank| -> Result<Option<(Candidate, TrainedProbe)>> {
                    let waves = search_groups(&sizes, threads);
                    for (wave, sizes) in waves.iter().enumerate() {
                        progress.set_message(format!("wave {} of {}", wave + 1, waves.len()));
                        let ranges: Vec<_> = sizes.iter().map(|&n| 0..n).collect();
                        let scored = bank.score(&ranges)?;
                        progress.inc(sizes.len() as u64);
                        for (&n, (score, probe)) in sizes.iter().zip(scored) {
                            let candidate = Candidate {
                                n,
                                dev: score.dev,
                                test: score.test,
                            };
                            info!(
                                "top-{n}: dev {:.4} test {:.4} (target > {target:.4})",
                                score.dev, score.test
                            );
                            candidates.push(candidate);
                            if score.dev > target || spec.target.is_some() {
                                return Ok(Some((candidate, probe)));
                            }
                        }
                    }
                    Ok(None)
                },
            )?,
        };
        // No candidate within the threshold: keep every ranked neuron.
        let (chosen, probe) = match chosen {
            Some(found) => found,
            None => {
                progress.set_message(format!("all {} ranked neurons", ranked.len()));
                let (score, probe) = self.bench.score(&Columns::List(ranked.to_vec()))?;
                let all = Candidate {
                    n: ranked.len(),
                    dev: score.dev,
                    test: score.test,
                };
                (all, probe)
            }
        };
        progress.finish();
        let selection = FinalSelection {
            selector: selector.to_string(),
            features: chosen.n,
            dev: chosen.dev,
            test: chosen.test,
            reduction: 100.0 * (1.0 - chosen.n as f64 / total as f64),
            reference_dev: reference.dev,
            delta: spec.delta(),
            target: spec.target,
            candidates,
            neurons: ranked[..chosen.n]
                .iter()
                .map(|&c| [(c / self.hidden) as u32, (c % self.hidden) as u32])
                .collect(),
        };
        Ok((selection, probe))
    }
}

impl SelectionRun<'_> {
    /// The top-N settings with `target` cut to the `available` ranked
    /// neurons, so that the result (and the report) show the budget
    /// actually used; a cut is noted for the log and the report.
    fn clamp_target(&self, spec: &TopNSpec, available: usize) -> TopNSpec {
        let (used, note) = clamp_target(spec, available);
        if let Some(note) = note {
            // The note itself reaches the log as a warning with the report.
            info!(
                "top-N: budget cut from {} to {available} neurons",
                spec.target.unwrap_or_default()
            );
            self.notes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(note);
        }
        used
    }
}

/// `spec` with its `target` no larger than `available`, and the note to
/// give when it had to be cut.
fn clamp_target(spec: &TopNSpec, available: usize) -> (TopNSpec, Option<String>) {
    let mut used = spec.clone();
    let Some(asked) = spec.target.filter(|&target| target > available) else {
        return (used, None);
    };
    used.target = Some(available);
    let note = format!(
        "`selection.top_n.target: {asked}` asks for more neurons than the {available} left to rank \
         after the earlier stages; the selection keeps all {available} (budget {available}, not {asked}). \
         Lower `target` to at most {available} to choose the budget yourself"
    );
    (used, Some(note))
}

/// The candidates in waves, each wave one probe bank (its probes share
/// every batch layout and run side by side, one thread each). The first
/// wave bundles the narrow candidates: a probe of a few dozen neurons costs
/// about its fixed per-step work (the softmax over every class, the
/// update), so several cost little more than one. Every later wave costs
/// at least as much as all the waves before it together (doubling, with
/// [`probe_cost`] counting each probe's fixed cost), so there are few
/// waves and little time goes to waves' ends and their own batch layouts;
/// but no more than needed to reach half of what remains, so that the
/// widest candidates, which cost the most and are the least likely to be
/// needed (the paper's choices keep 1-10% of the features), are not all
/// trained on speculation. What is trained past the chosen N thus stays
/// below both what was needed to reach it and what it saved. Every wave
/// holds at least one candidate per thread (or what is left). What is
/// trained past the chosen N is thrown away: the result is the same as one
/// by one.
fn search_groups(sizes: &[usize], threads: usize) -> Vec<&[usize]> {
    let mut groups = Vec::new();
    let (mut start, mut spent) = (0, 0);
    while start < sizes.len() {
        let narrow = groups.is_empty();
        let remaining: usize = sizes[start..].iter().map(|&n| probe_cost(n)).sum();
        let goal = spent.min(remaining / 2);
        let (mut end, mut columns, mut wave_cost) = (start, 0, 0);
        while end < sizes.len()
            && (end - start < threads
                || (narrow && columns < NARROW_GROUP_COLUMNS * threads)
                || (!narrow && wave_cost < goal))
        {
            columns += sizes[end];
            wave_cost += probe_cost(sizes[end]);
            end += 1;
        }
        groups.push(&sizes[start..end]);
        spent += wave_cost;
        start = end;
    }
    groups
}

/// Columns per thread under which the first wave takes one more candidate.
const NARROW_GROUP_COLUMNS: usize = 64;

fn matrix(data: &[f32], rows: usize, cols: usize) -> Result<MatrixView<'_>> {
    MatrixView::new(data, rows, cols).context("internal error: matrix shape")
}

/// A selector's answer must index the input's columns, each at most once;
/// a ranking must list every column.
pub fn check_selection(
    plugin: &str,
    selection: &Selection,
    columns: usize,
) -> std::result::Result<(), String> {
    let mut seen = vec![false; columns];
    for &index in selection.order.iter() {
        let Some(slot) = seen.get_mut(index as usize) else {
            return Err(format!(
                "selector '{plugin}' returned an invalid selection: index {index} is out of range ({columns} columns)"
            ));
        };
        if *slot {
            return Err(format!(
                "selector '{plugin}' returned an invalid selection: index {index} is repeated"
            ));
        }
        *slot = true;
    }
    if selection.kind == SelectionKind::Ranking && selection.order.len() != columns {
        return Err(format!(
            "selector '{plugin}' returned an invalid ranking: {} of {columns} columns ranked",
            selection.order.len()
        ));
    }
    if selection.order.is_empty() {
        return Err(format!("selector '{plugin}' returned an empty selection"));
    }
    Ok(())
}

/// The rows a selector plugin sees: all of a split, or, when its columns
/// would exceed the in-memory limit, rows spread evenly over the split
/// (every k-th row, deterministic) up to that limit. Correlations and
/// rankings estimated from hundreds of thousands of rows do not change in
/// any digit that matters; the probes that score a selection always see
/// every row.
enum RowSample {
    All,
    Rows(Vec<usize>),
}

impl RowSample {
    fn of<'a>(
        bench: &ProbeBench<'a>,
        split: &StoredSplit,
        columns: &Columns,
    ) -> Result<(std::borrow::Cow<'a, [f32]>, RowSample)> {
        if bench.fits_in_memory(split, columns) {
            return Ok((bench.gather(split, columns)?, RowSample::All));
        }
        let keep = (bench.in_memory_bytes / (4 * columns.len().max(1))).max(1);
        let rows: Vec<usize> = (0..keep).map(|i| i * split.rows / keep).collect();
        Ok((
            split.gather_row_list(columns, &rows)?.into(),
            RowSample::Rows(rows),
        ))
    }

    fn len(&self, split: &StoredSplit) -> usize {
        match self {
            RowSample::All => split.rows,
            RowSample::Rows(rows) => rows.len(),
        }
    }

    /// The per-row values (labels, targets) of the sampled rows.
    fn pick<T: Copy>(&self, values: &[T]) -> Vec<T> {
        match self {
            RowSample::All => values.to_vec(),
            // Classification has no real targets (and regression no labels).
            RowSample::Rows(_) if values.is_empty() => Vec::new(),
            RowSample::Rows(rows) => rows.iter().map(|&r| values[r]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_selector_picks_the_lowest_layer_strictly_above_target() {
        let dev = [0.80, 0.91, 0.925, 0.93, 0.935].map(Some);
        // target = 0.935 * 0.99 = 0.92565
        assert_eq!(select_layer(&dev, 1.0), 3);
        assert_eq!(select_layer(&dev, 2.0), 2);
        assert_eq!(select_layer(&dev, 0.0), 4);
        assert_eq!(select_layer(&[Some(0.5)], 1.0), 0);
        // Probes that were not trained are skipped, never chosen.
        let partial = [Some(0.80), None, Some(0.925), None, Some(0.935)];
        assert_eq!(select_layer(&partial, 2.0), 2);
        assert_eq!(select_layer(&partial, 1.0), 4);
    }

    #[test]
    fn search_groups_bundle_narrow_candidates_then_double_up_to_half_the_rest() {
        let wsj = [
            2, 5, 8, 10, 13, 26, 53, 80, 107, 134, 161, 188, 215, 241, 268, 403, 537,
        ];
        let groups = search_groups(&wsj, 2);
        assert_eq!(groups[0], &[2, 5, 8, 10, 13, 26, 53, 80]);
        // 197 columns + 8 x 128 = 1,221 before; 107..215 cost 1,445.
        assert_eq!(groups[1], &[107, 134, 161, 188, 215]);
        // 2,666 before, but 241..537 cost 1,961: half of it is reached at
        // 403, and 537 waits for its own wave.
        assert_eq!(groups[2], &[241, 268, 403]);
        assert_eq!(groups[3], &[537]);
        assert_eq!(groups.concat(), wsj, "every candidate once, in order");
        // One thread: narrow ones still bundled, then doubling.
        let single = search_groups(&wsj, 1);
        assert_eq!(single[0], &[2, 5, 8, 10, 13, 26]);
        assert_eq!(single[1], &[53, 80, 107, 134]);
        // Each later wave costs at least all the earlier ones or half of
        // what remains, whichever is less (or is the rest), and the first
        // candidate past that goal is not in it.
        let cost = |g: &[usize]| g.iter().map(|&n| probe_cost(n)).sum::<usize>();
        for threads in [1, 2, 3] {
            let groups = search_groups(&wsj, threads);
            for (i, wave) in groups.iter().enumerate().skip(1) {
                let before: usize = groups[..i].iter().map(|g| cost(g)).sum();
                let rest: usize = groups[i..].iter().map(|g| cost(g)).sum();
                let goal = before.min(rest / 2);
                let last = i + 1 == groups.len();
                assert!(
                    last || cost(wave) >= goal,
                    "{threads} threads, wave {i}: {wave:?}"
                );
                let short = cost(&wave[..wave.len() - 1]);
                assert!(
                    wave.len() <= threads || short < goal,
                    "wave {i} too long: {wave:?}"
                );
                assert!(
                    last || wave.len() >= threads,
                    "one candidate per thread at least"
                );
            }
        }
        // Few candidates: one wave per thread's worth.
        assert_eq!(
            search_groups(&[300, 400, 500], 2),
            vec![&[300, 400][..], &[500]]
        );
        assert!(search_groups(&[], 2).is_empty());
    }

    #[test]
    fn paper_grid_gives_the_papers_sizes() {
        let spec = TopNSpec {
            delta: None,
            fractions: None,
            sizes: None,
            target: None,
        };
        let sizes = candidate_sizes(&spec, 9984, 600);
        assert_eq!(&sizes[..6], &[9, 19, 29, 39, 49, 99]);
        assert!(sizes.iter().all(|&n| n <= 600));
        assert_eq!(*sizes.last().unwrap(), 599);
        let sizes = candidate_sizes(&spec, 2688, 539);
        assert!(sizes.contains(&403) && sizes.contains(&537) && !sizes.contains(&672));
    }

    #[test]
    fn a_target_above_the_ranked_neurons_is_cut_and_noted() {
        let spec = TopNSpec {
            delta: None,
            fractions: None,
            sizes: None,
            target: Some(999_999),
        };
        let (used, note) = clamp_target(&spec, 711);
        assert_eq!(used.target, Some(711), "the budget actually used");
        let note = note.expect("the cut is reported");
        assert!(note.contains("999999") && note.contains("711"), "{note}");
        let within = TopNSpec {
            target: Some(700),
            ..spec
        };
        let (used, note) = clamp_target(&within, 711);
        assert_eq!((used.target, note), (Some(700), None));
    }

    #[test]
    fn invalid_selections_are_named() {
        let make = |order: Vec<u32>, kind| Selection {
            kind,
            order: order.into(),
            cutoffs: Default::default(),
            scores: Default::default(),
            notes: Default::default(),
        };
        let out_of_range =
            check_selection("x", &make(vec![0, 5], SelectionKind::Filter), 3).unwrap_err();
        assert!(out_of_range.contains("'x'") && out_of_range.contains("index 5 is out of range"));
        let repeated =
            check_selection("x", &make(vec![1, 1], SelectionKind::Filter), 3).unwrap_err();
        assert!(repeated.contains("index 1 is repeated"));
        let partial =
            check_selection("x", &make(vec![0, 1], SelectionKind::Ranking), 3).unwrap_err();
        assert!(partial.contains("2 of 3"));
        check_selection("x", &make(vec![2, 0, 1], SelectionKind::Ranking), 3).unwrap();
    }
}
