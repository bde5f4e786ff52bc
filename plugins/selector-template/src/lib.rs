//! Sieve selector plugin `template`: a complete, minimal selector to copy.
//!
//! It ranks neurons by their **variance over the training rows**, highest
//! first: a neuron that never moves cannot tell tokens apart, so it goes
//! last. That is a weak criterion (it ignores the labels), chosen because it
//! fits in a few lines; replace [`variance_scores`] with your own method.
//!
//! Use it from a spec (see README.md for building and installing):
//!
//! ```yaml
//! selection:
//!   ranking: {selector: template, params: {}}
//! ```
//!
//! Parameters (a JSON object; `{}` gives the defaults):
//! - `ascending` (bool, default false): lowest variance first instead.
//!
//! # How a selector plugin works
//!
//! 1. The runner finds `libsieve_selector_template.so` in its plugin folder,
//!    loads it, checks the interface version and the layout of every type
//!    crossing the boundary (`abi_stable` does this), and reads the plugin's
//!    name (`template`) from [`sieve_core::PluginInfo`].
//! 2. When a spec names the plugin, the runner calls [`open`] with the
//!    spec's `params` as a JSON string. Reject what you do not understand
//!    here, with a message naming the plugin: it reaches the user as is.
//! 3. The runner then calls [`SelectorPlugin::select`] once with the
//!    activations (rows are tokens or sentences, columns are neurons), the
//!    labels and the run's seed, and a `host` that can train the spec's
//!    probe for you (see `plugins/selector-lasso` for a selector that uses
//!    it). The answer is a [`Selection`]:
//!    - `kind: Ranking`: `order` lists EVERY column index once, most useful
//!      first (the runner then keeps the top N, see `selection.top_n`);
//!    - `kind: Filter`: `order` lists the columns to keep (as the
//!      `correlation` clustering does);
//!    - `scores` (optional): one number per entry of `order`;
//!    - `cutoffs` (optional): positions in `order` where a step ends;
//!    - `notes`: one line the runner writes to the log.
//!
//!    The runner checks the answer (indices in range, none repeated, a
//!    ranking complete) and reports a bad one as this plugin's fault.
//! 4. A panic inside `open`, `validate` or `select` is caught at the
//!    boundary and reported as an error; still, prefer returning
//!    `Err(String)`.
//! 5. Before any extraction (in `sieve validate` and at the start of
//!    `sieve run`) the runner calls [`validate`] with the same parameters.
//!    Check them there without doing the work. Parse them with
//!    [`sieve_core::parse_params`] and write your own errors with
//!    [`sieve_core::param_error`]: a message that starts with
//!    ``parameter `NAME`: `` is shown at the spec line of that parameter.

use serde::Deserialize;
use sieve_core::{
    MatrixView, ProbeHostRef, Selection, SelectionKind, SelectorInput, SelectorPlugin,
};

/// The plugin's name: what specs write after `selector:`. It must be unique
/// among the plugins in the folder (`sieve plugins` lists them).
pub const PLUGIN_NAME: &str = "template";

/// The validated parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params {
    /// Lowest variance first.
    pub ascending: bool,
}

/// The parameters as the spec writes them. `deny_unknown_fields` turns a
/// typo (`ascnding: true`) into an error instead of a silently ignored
/// setting; `Option` fields make every parameter optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    ascending: Option<bool>,
}

impl Params {
    /// Parses the JSON object the runner passes (`{}` when the spec gives no
    /// `params`). Errors name the plugin, so the user knows where to look.
    pub fn from_json(json: &str) -> Result<Params, String> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        // `parse_params` names the parameter at fault (`parameter
        // `ascnding`: unknown; expected `ascending``), which the runner
        // shows at that line of the spec.
        let raw: RawParams =
            sieve_core::parse_params(json).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;
        Ok(Params {
            ascending: raw.ascending.unwrap_or(false),
        })
    }
}

/// The selector: whatever `open` built from the parameters. It must be
/// `Send + Sync + 'static` (the runner may hold it across threads).
#[derive(Debug)]
pub struct TemplateSelector {
    pub params: Params,
}

/// The constructor the runner calls with the spec's parameters as JSON.
pub fn open(params_json: &str) -> Result<TemplateSelector, String> {
    Params::from_json(params_json).map(|params| TemplateSelector { params })
}

/// The check the runner calls before any work: the same parsing as
/// [`open`], without building anything.
pub fn validate(params_json: &str) -> Result<(), String> {
    Params::from_json(params_json).map(drop)
}

/// The method itself: the (population) variance of every column of `x`,
/// computed in f64. Non-finite activations are an error, not a silent NaN
/// in the ranking.
pub fn variance_scores(x: &MatrixView<'_>) -> Result<Vec<f64>, String> {
    let (rows, cols) = (x.rows(), x.cols());
    if rows == 0 {
        return Err("the training matrix has no rows".into());
    }
    let mut sum = vec![0.0f64; cols];
    let mut sum_sq = vec![0.0f64; cols];
    for i in 0..rows {
        for (j, &v) in x.row(i).iter().enumerate() {
            if !v.is_finite() {
                return Err(format!("training activation [{i}, {j}] is {v}"));
            }
            let v = f64::from(v);
            sum[j] += v;
            sum_sq[j] += v * v;
        }
    }
    let n = rows as f64;
    Ok(sum
        .iter()
        .zip(&sum_sq)
        // max(0): rounding can make a constant column's variance -1e-17.
        .map(|(s, sq)| (sq / n - (s / n) * (s / n)).max(0.0))
        .collect())
}

impl SelectorPlugin for TemplateSelector {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        // The host trains probes on request (`host.train_probe(...)`);
        // this selector does not need one.
        _host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String> {
        // `input.task` says whether `train_labels` (classification) or
        // `train_targets` (regression) holds the answers; variance uses
        // neither, so this selector works for both.
        let cols = input.train.cols();
        if cols == 0 {
            return Err(format!(
                "selector '{PLUGIN_NAME}': the training matrix has no columns"
            ));
        }
        let scores =
            variance_scores(&input.train).map_err(|e| format!("selector '{PLUGIN_NAME}': {e}"))?;

        // Column indices sorted by score; ties go to the lower index so the
        // answer depends on the data alone (a selector that draws random
        // numbers must derive them from `input.seed`, so runs repeat).
        let mut order: Vec<u32> = (0..cols as u32).collect();
        order.sort_by(|&a, &b| {
            let (sa, sb) = (scores[a as usize], scores[b as usize]);
            let by_score = if self.params.ascending {
                sa.total_cmp(&sb)
            } else {
                sb.total_cmp(&sa)
            };
            by_score.then(a.cmp(&b))
        });

        let ranked_scores = order.iter().map(|&j| scores[j as usize] as f32).collect();
        let direction = if self.params.ascending {
            "lowest"
        } else {
            "highest"
        };
        // Everything in a Selection is an `abi_stable` type (RVec, RString);
        // `.into()` converts from the std types.
        Ok(Selection {
            kind: SelectionKind::Ranking,
            order: order.into(),
            cutoffs: Vec::new().into(),
            scores: ranked_scores,
            notes: format!("{cols} neurons ranked by variance, {direction} first").into(),
        })
    }
}

// Writes the library's root module: the plugin's name, kind, version and
// interface version, and the `open` and `validate` entry points, each call
// wrapped so that a panic becomes an error instead of unwinding into the
// runner.
sieve_core::export_selector_plugin!(
    name: "template",
    description: "Template selector: neurons ranked by variance over the training rows",
    open: open,
    validate: validate,
);

#[cfg(test)]
mod tests {
    //! Test the method on a matrix whose answer is known by construction,
    //! calling `select` as the runner does (with a host that refuses to
    //! train, since this selector must not need one).

    use super::*;
    // sieve_core::testing has what a selector's tests need: a host that
    // refuses to train, an input built from plain slices.
    use sieve_core::testing::{NoProbeHost, TestProblem};

    /// Four rows, three columns: column 0 constant (variance 0), column 1
    /// varies a lot (values -2, 2: variance 4), column 2 a little (0, 1:
    /// variance 0.25).
    const X: [f32; 12] = [
        7.0, -2.0, 0.0, //
        7.0, 2.0, 1.0, //
        7.0, -2.0, 0.0, //
        7.0, 2.0, 1.0,
    ];

    fn select(params: &str, x: &[f32]) -> Result<Selection, String> {
        let labels = [0u32, 1, 0, 1];
        let problem = TestProblem::classification(x, 3, &labels, 2).with_seed(42);
        problem.select(&open(params)?, &NoProbeHost)
    }

    #[test]
    fn most_variable_first_constant_last() {
        let s = select("{}", &X).unwrap();
        assert_eq!(s.kind, SelectionKind::Ranking);
        assert_eq!(s.order.to_vec(), vec![1, 2, 0]);
        assert_eq!(s.scores.to_vec(), vec![4.0, 0.25, 0.0]);
    }

    #[test]
    fn ascending_reverses_the_order() {
        let s = select(r#"{"ascending": true}"#, &X).unwrap();
        assert_eq!(s.order.to_vec(), vec![0, 2, 1]);
    }

    #[test]
    fn bad_parameters_and_values_are_errors_naming_the_plugin() {
        let err = open(r#"{"ascnding": true}"#).unwrap_err();
        assert!(
            err.contains("template") && err.contains("ascnding"),
            "{err}"
        );
        let mut nan = X;
        nan[4] = f32::NAN;
        let err = select("{}", &nan).unwrap_err();
        assert!(err.contains("[1, 1]"), "{err}");
    }
}
