//! Keeps panics inside the plugin.
//!
//! Unwinding across an `extern "C"` boundary aborts the whole process, so
//! every entry point of a plugin runs its body through [`catch_plugin_panic`]
//! and reports a panic as an ordinary error.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{RResult, RString};

/// Runs `body`, turning both its `Err` and a panic into `RErr(message)`.
pub fn catch_plugin_panic<T>(
    what: &str,
    body: impl FnOnce() -> Result<T, String>,
) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(message)) => RResult::RErr(message.into()),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            RResult::RErr(format!("plugin panicked in {what}: {reason}").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_becomes_error_with_its_message() {
        let result: RResult<u32, RString> =
            catch_plugin_panic("encode", || panic!("index out of range"));
        let message = result.into_result().unwrap_err();
        assert!(message.contains("panicked in encode"), "{message}");
        assert!(message.contains("index out of range"), "{message}");
    }

    #[test]
    fn errors_and_values_pass_through() {
        assert_eq!(catch_plugin_panic("x", || Ok(3)).into_result(), Ok(3));
        let err = catch_plugin_panic::<u32>("x", || Err("bad".into())).into_result();
        assert_eq!(err.unwrap_err().as_str(), "bad");
    }
}
