//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at
//! build time, the library is opened by path when the first model loads.
//! ort keeps ONE library and ONE environment per process (a second
//! `EnvironmentBuilder::build` fails even after the first was dropped), so
//! the environment lives here for the life of the process.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

const LIBRARY: &str = "libonnxruntime.so";
const FETCH: &str = "scripts/fetch-assets.sh onnxruntime";

/// The library this process loaded and its environment.
static RUNTIME: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// The library to load: `explicit` (the `runtime` parameter), else
/// `ORT_DYLIB_PATH`, else `SIEVE_ORT_LIB`, else
/// `assets/onnxruntime/libonnxruntime.so` under the current directory or
/// the executable's folder and up to 4 of its ancestors (a plugin runs
/// inside `target/release/sieve` or a test binary in `target/release/deps`).
pub fn locate(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    for var in ["ORT_DYLIB_PATH", "SIEVE_ORT_LIB"] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(value));
        }
    }
    let relative = Path::new("assets").join("onnxruntime").join(LIBRARY);
    let mut roots = Vec::new();
    if let Ok(dir) = std::env::current_dir() {
        roots.push(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).take(5).map(Path::to_path_buf));
    }
    roots
        .iter()
        .map(|root| root.join(&relative))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "ONNX Runtime library not found: set the backend parameter `runtime`, \
                 ORT_DYLIB_PATH or SIEVE_ORT_LIB, or run `{FETCH}` (it provides {}; searched \
                 the current directory and the executable's ancestors)",
                relative.display()
            )
        })
}

/// The process's ONNX Runtime environment, loading `library` the first time.
pub fn environment(library: &Path) -> Result<Environment, String> {
    // Checked here because ort would accept any path once a library is
    // loaded, and dlopen's own message can be vague.
    if !library.is_file() {
        return Err(format!(
            "ONNX Runtime library '{}' not found (run `{FETCH}`, or point `runtime` / \
             ORT_DYLIB_PATH at libonnxruntime.so 1.32)",
            library.display()
        ));
    }
    let absolute = std::fs::canonicalize(library)
        .map_err(|e| format!("ONNX Runtime library '{}': {e}", library.display()))?;
    let mut runtime = RUNTIME
        .lock()
        .map_err(|_| "the ONNX Runtime loader panicked earlier".to_string())?;
    if let Some((loaded, env)) = runtime.as_ref() {
        if *loaded != absolute {
            return Err(format!(
                "ONNX Runtime is already loaded from '{}' in this process; cannot also load '{}'",
                loaded.display(),
                absolute.display()
            ));
        }
        return Ok(env.clone());
    }
    let builder = ort::init_from(&absolute).map_err(|e| {
        format!(
            "cannot load ONNX Runtime from '{}': {e} (this backend needs ONNX Runtime >= 1.{}; \
             run `{FETCH}` for 1.32)",
            absolute.display(),
            ort::MINOR_VERSION
        )
    })?;
    let env = builder
        .with_name("sieve")
        .build()
        .map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
    *runtime = Some((absolute, env.clone()));
    Ok(env)
}
