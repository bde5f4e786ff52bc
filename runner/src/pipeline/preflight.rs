//! The checks `sieve validate` and the start of `sieve run` share, so that
//! a spec that cannot run fails in seconds, before any extraction.
//!
//! Each plugin checks its own parameters through its `validate` entry
//! (plugin interface version 2): a selector parses them, a backend also
//! opens its model far enough to check it (config.json against the weights,
//! the ONNX graph and runtime library). A plugin names the parameter at
//! fault (``parameter `strid`: ...``); here that name becomes the line and
//! column of the key in the spec, never a position in the JSON the host
//! generated for the plugin.

mod spans;

use anyhow::{bail, Result};
use serde_saphyr::Spanned;
use sieve_core::{parameter_named_in, PluginKind};

use super::backend_params;
use super::corpora::{encode_targets, read_splits, EncodedTargets, Splits};
use crate::plugins::PluginRegistry;
use crate::spec::LoadedSpec;

pub use spans::{KeyTree, Position};

/// One plugin the spec uses, with the parameters it will be opened with.
struct PluginCall<'a> {
    /// Where its section sits in the spec: `model`, `selection.ranking`,
    /// `selection.compare.2`.
    section: Vec<String>,
    /// The spec's field naming the plugin (`backend` or `selector`).
    name: &'a Spanned<String>,
    kind: PluginKind,
    params_json: String,
}

/// Runs every plugin's `validate` on its parameters; the first refusal is
/// an error at the spec's line of the parameter (or of the plugin's name
/// when the plugin names no parameter). Plugin names and kinds must have
/// been checked (`check_plugins`).
pub fn check_plugin_params(loaded: &LoadedSpec, registry: &PluginRegistry) -> Result<()> {
    let tree = KeyTree::parse(&loaded.text);
    for call in plugin_calls(loaded)? {
        let plugin = registry.find(&call.name.value, call.kind)?;
        if let Err(message) = plugin.validate(&call.params_json) {
            let (position, field) = locate(loaded, tree.as_ref(), &call, &message);
            bail!(
                "{}: line {}, column {}: field `{field}`: {message} (checked by the {} plugin \
                 '{}', {})",
                loaded.path.display(),
                position.line,
                position.column,
                call.kind.as_str(),
                plugin.name,
                plugin.file.display()
            );
        }
    }
    Ok(())
}

/// Reads every data file in full and encodes its targets: every data error
/// (a malformed line, a regression target that is not a finite number)
/// comes with its file and 1-based line.
pub fn check_data(loaded: &LoadedSpec) -> Result<(Splits, EncodedTargets)> {
    let splits = read_splits(loaded)?;
    let targets = encode_targets(loaded.spec.data.task, &splits)?;
    Ok((splits, targets))
}

fn plugin_calls(loaded: &LoadedSpec) -> Result<Vec<PluginCall<'_>>> {
    let spec = &loaded.spec;
    let mut calls = vec![PluginCall {
        section: vec!["model".into()],
        name: &spec.model.backend,
        kind: PluginKind::Backend,
        params_json: backend_params(loaded)?,
    }];
    let selection = &spec.selection;
    let named = [
        ("clustering", &selection.clustering),
        ("ranking", &selection.ranking),
    ];
    let stages = named
        .into_iter()
        .filter_map(|(name, stage)| Some((vec![name.to_string()], stage.as_ref()?)))
        .chain(
            selection
                .compare
                .iter()
                .enumerate()
                .map(|(i, stage)| (vec!["compare".to_string(), i.to_string()], stage)),
        );
    for (path, stage) in stages {
        let params = serde_json::Value::Object(stage.params.clone().unwrap_or_default());
        let mut section = vec!["selection".to_string()];
        section.extend(path);
        calls.push(PluginCall {
            section,
            name: &stage.selector,
            kind: PluginKind::Selector,
            params_json: params.to_string(),
        });
    }
    Ok(calls)
}

/// The spec position and field a plugin's refusal is about.
fn locate(
    loaded: &LoadedSpec,
    tree: Option<&KeyTree>,
    call: &PluginCall<'_>,
    message: &str,
) -> (Position, String) {
    let name_field = match call.kind {
        PluginKind::Backend => "backend",
        PluginKind::Selector => "selector",
    };
    let at_name = || {
        let mut path = call.section.clone();
        path.push(name_field.into());
        (position_of(call.name), field_name(&path))
    };
    let Some(parameter) = parameter_named_in(message) else {
        return at_name();
    };
    // The backend's `model` parameter is the spec's `model.path`.
    if call.kind == PluginKind::Backend && parameter == "model" {
        return (position_of(&loaded.spec.model.path), "model.path".into());
    }
    let mut path = call.section.clone();
    path.push("params".into());
    path.extend(parameter.split('.').map(String::from));
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    // Only a key written in the params counts: a required parameter left
    // out is the plugin name's line, not the `params` key's.
    let params_depth = call.section.len() + 1;
    match tree.and_then(|t| t.locate_nearest(&segments)) {
        Some((position, found)) if found > params_depth => (position, field_name(&path[..found])),
        _ => at_name(),
    }
}

fn position_of<T>(spanned: &Spanned<T>) -> Position {
    Position {
        line: spanned.referenced.line(),
        column: spanned.referenced.column(),
    }
}

/// `selection.compare[2].params.l1` from its segments.
fn field_name(path: &[String]) -> String {
    let mut field = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            field.push_str(&format!("[{segment}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(segment);
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "output: run\nmodel:\n  backend: candle\n  path: m\n\
        data:\n  task: tagging\n  reader: {format: word-tag}\n  train: t\n  dev: t\n  test: t\n\
        selection:\n  compare:\n    - selector: lasso\n      params: {l1: x}\n";

    /// Where `message`, refused by the plugin of `calls[index]`, points.
    fn located(index: usize, message: &str) -> (Position, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("spec.yaml");
        std::fs::write(&path, SPEC).expect("write spec");
        let loaded = crate::spec::load_spec(&path).expect("spec");
        let tree = KeyTree::parse(&loaded.text);
        let calls = plugin_calls(&loaded).expect("calls");
        locate(&loaded, tree.as_ref(), &calls[index], message)
    }

    #[test]
    fn a_refusal_points_at_the_parameter_or_the_plugin_name() {
        let (at, field) = located(1, "selector 'lasso': parameter `l1`: expected a number");
        assert_eq!(
            (at.line, field.as_str()),
            (14, "selection.compare[0].params.l1")
        );
        let (at, field) = located(1, "selector 'lasso': parameter `l2`: missing");
        assert_eq!(
            (at.line, field.as_str()),
            (13, "selection.compare[0].selector")
        );
        let (at, field) = located(0, "candle backend: parameter `model`: no config.json");
        assert_eq!((at.line, field.as_str()), (4, "model.path"));
        let (at, field) = located(0, "the runtime cannot be loaded");
        assert_eq!((at.line, field.as_str()), (3, "model.backend"));
    }

    #[test]
    fn field_names_read_like_the_spec() {
        let path: Vec<String> = ["selection", "compare", "2", "params", "l1"]
            .map(String::from)
            .to_vec();
        assert_eq!(field_name(&path), "selection.compare[2].params.l1");
    }
}
