//! Reading a plugin's parameters, with errors that name the parameter.
//!
//! The host turns the spec's YAML mapping into JSON before handing it to a
//! plugin, so serde_json's own messages ("... at line 1 column 8") point
//! into text the user never wrote. Every parameter error a plugin returns
//! instead starts with ``parameter `NAME`: ``, a convention the host reads
//! back ([`parameter_named_in`]) to point at the spec line of that key.

use serde::de::DeserializeOwned;

/// Parses a plugin's parameters (a JSON object; empty text means `{}`)
/// into `T`, normally a struct with `#[serde(deny_unknown_fields)]`.
///
/// Errors read ``parameter `strid`: unknown; expected one of `stride`, ...``
/// or ``parameter `threshold`: expected a number, got the string "0.3"``.
pub fn parse_params<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("the parameters are not a JSON object: {e}"))?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        describe(&path, &message)
    })
}

/// An error about one parameter, in the form the host maps to a spec line.
pub fn param_error(name: &str, message: impl std::fmt::Display) -> String {
    format!("parameter `{name}`: {message}")
}

/// The parameter an error message is about (the first
/// ``parameter `NAME` `` in it), with nested names as `outer.inner`.
pub fn parameter_named_in(message: &str) -> Option<&str> {
    const MARK: &str = "parameter `";
    let start = message.find(MARK)? + MARK.len();
    let length = message[start..].find('`')?;
    let name = &message[start..start + length];
    (!name.is_empty()).then_some(name)
}

/// One message for a serde error at `path` ("." for the object itself).
fn describe(path: &str, message: &str) -> String {
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let name = if path == "." {
            missing.to_string()
        } else {
            format!("{path}.{missing}")
        };
        return param_error(&name, "missing; this parameter is required");
    }
    if path == "." || path.is_empty() {
        return format!("the parameters: {}", plain(message));
    }
    param_error(path, plain(message))
}

/// serde's wording, in the spec writer's terms.
fn plain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return unknown_field(rest);
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return format!(
                "expected {}, got {}",
                expected_kind(expected),
                got_kind(got)
            );
        }
    }
    message.to_string()
}

/// `strid`, expected one of `a`, `b` -> "unknown; expected one of `a`, `b`".
fn unknown_field(rest: &str) -> String {
    match rest.split_once("`, ") {
        Some((_, "there are no fields")) => "unknown; this plugin takes no parameters".to_string(),
        Some((_, expected)) => format!("unknown; {expected}"),
        None => "unknown".to_string(),
    }
}

fn expected_kind(expected: &str) -> String {
    match expected {
        "f64" | "f32" => "a number".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number >= 0".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        other if other.starts_with("struct ") || other == "a map" => "a mapping".into(),
        other => other.into(),
    }
}

fn got_kind(got: &str) -> String {
    let value = |prefix: &str| {
        got.strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_string())
    };
    if let Some(text) = got.strip_prefix("string ") {
        format!("the string {text}")
    } else if let Some(number) = value("integer ").or_else(|| value("floating point ")) {
        number
    } else if let Some(boolean) = value("boolean ") {
        boolean
    } else {
        match got {
            "map" => "a mapping".into(),
            "sequence" => "a list".into(),
            "unit value" | "null" => "nothing (null)".into(),
            other => other.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        threshold: Option<f64>,
        stride: Option<usize>,
        name: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Required {
        model: String,
    }

    fn error(json: &str) -> String {
        parse_params::<Params>(json).expect_err("an error")
    }

    #[test]
    fn a_typo_names_the_parameter_and_the_known_ones() {
        let message = error(r#"{"strid": 2}"#);
        assert_eq!(
            message,
            "parameter `strid`: unknown; expected one of `threshold`, `stride`, `name`"
        );
        assert_eq!(parameter_named_in(&message), Some("strid"));
    }

    #[test]
    fn a_number_given_as_a_string_is_named() {
        assert_eq!(
            error(r#"{"threshold": "0.3"}"#),
            "parameter `threshold`: expected a number, got the string \"0.3\""
        );
        assert_eq!(
            error(r#"{"stride": -1}"#),
            "parameter `stride`: expected a whole number >= 0, got -1"
        );
        assert_eq!(
            error(r#"{"name": 3}"#),
            "parameter `name`: expected a string, got 3"
        );
    }

    #[test]
    fn no_message_points_into_the_generated_json() {
        for json in [r#"{"strid": 2}"#, r#"{"threshold": "x"}"#, "[1]"] {
            let message = error(json);
            assert!(!message.contains("line 1"), "{message}");
        }
    }

    #[test]
    fn a_missing_required_parameter_is_named() {
        let message = parse_params::<Required>("{}").expect_err("error");
        assert_eq!(
            message,
            "parameter `model`: missing; this parameter is required"
        );
    }

    #[test]
    fn empty_text_means_the_defaults() {
        let params: Params = parse_params("  ").expect("defaults");
        assert!(params.threshold.is_none());
    }

    #[test]
    fn parameter_named_in_finds_the_name_inside_a_longer_message() {
        let message = "selector 'lasso': parameter `l1`: must be >= 0";
        assert_eq!(parameter_named_in(message), Some("l1"));
        assert_eq!(parameter_named_in("no name here"), None);
    }
}
