//! Loading plugin libraries and opening backends and selectors from them.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::RResult;
use sieve_core::{EncoderBox, PluginKind, SelectorBox, SievePluginRef};
use thiserror::Error;

use super::discovery::{library_files, DirSource};

/// A plugin library that loaded and passed every check.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub file: PathBuf,
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub interface_version: u32,
    pub description: String,
    module: SievePluginRef,
}

/// A library in the plugin folder that could not be used, and why.
#[derive(Debug, Clone)]
pub struct RejectedLibrary {
    pub file: PathBuf,
    /// The plugin's name, when it could be read (an interface-version
    /// mismatch still tells us who it is).
    pub name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Error)]
pub enum PluginError {
    #[error("plugin folder {dir} (from {source_desc}) cannot be read: {error}")]
    Folder {
        dir: PathBuf,
        source_desc: &'static str,
        error: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("plugin '{name}' ({file}) cannot be used: {reason}")]
    Rejected {
        name: String,
        file: PathBuf,
        reason: String,
    },
    #[error("plugin '{name}' ({file}) failed in {stage}: {message}")]
    Failed {
        name: String,
        file: PathBuf,
        stage: &'static str,
        message: String,
    },
}

/// Everything found in one plugin folder.
pub struct PluginRegistry {
    pub dir: PathBuf,
    pub source: DirSource,
    pub plugins: Vec<LoadedPlugin>,
    pub rejected: Vec<RejectedLibrary>,
}

impl PluginRegistry {
    /// Loads every dynamic library in `dir`. A library that is not a usable
    /// plugin is recorded in `rejected`, not fatal: it only matters if a
    /// spec asks for it.
    pub fn discover(dir: &Path, source: DirSource) -> Result<Self, PluginError> {
        let files = library_files(dir).map_err(|error| PluginError::Folder {
            dir: dir.to_path_buf(),
            source_desc: source.describe(),
            error,
        })?;
        let mut registry = PluginRegistry {
            dir: dir.to_path_buf(),
            source,
            plugins: Vec::new(),
            rejected: Vec::new(),
        };
        for file in files {
            match load_library(&file) {
                Ok(plugin) => registry.plugins.push(plugin),
                Err(rejected) => registry.rejected.push(rejected),
            }
        }
        registry.refuse_duplicates();
        Ok(registry)
    }

    /// The plugin of `kind` called `name`, or an error that lists what is
    /// available and explains a rejected library of that name.
    pub fn find(&self, name: &str, kind: PluginKind) -> Result<&LoadedPlugin, PluginError> {
        if let Some(plugin) = self
            .plugins
            .iter()
            .find(|p| p.name == name && p.kind == kind)
        {
            return Ok(plugin);
        }
        if let Some(rejected) = self
            .rejected
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
        {
            return Err(PluginError::Rejected {
                name: name.to_string(),
                file: rejected.file.clone(),
                reason: rejected.reason.clone(),
            });
        }
        Err(PluginError::NotFound(self.not_found_message(name, kind)))
    }

    fn not_found_message(&self, name: &str, kind: PluginKind) -> String {
        let available: Vec<&str> = self
            .plugins
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.name.as_str())
            .collect();
        let available = if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        };
        format!(
            "no {} plugin named '{name}' in {} (chosen by {}); available {} plugins: {available}. \
             Build the plugins with `cargo build --release`, or point the spec's `plugins` field \
             or SIEVE_PLUGIN_DIR at the folder that holds them",
            kind.as_str(),
            self.dir.display(),
            self.source.describe(),
            kind.as_str(),
        )
    }

    /// Opens the backend `name` with its parameters (a JSON object).
    pub fn open_backend(&self, name: &str, params_json: &str) -> Result<EncoderBox, PluginError> {
        let plugin = self.find(name, PluginKind::Backend)?;
        let open = plugin.module.open_backend();
        plugin.check_result("open", open(params_json.into()))
    }

    /// Opens the selector `name` with its parameters (a JSON object).
    pub fn open_selector(&self, name: &str, params_json: &str) -> Result<SelectorBox, PluginError> {
        let plugin = self.find(name, PluginKind::Selector)?;
        let open = plugin.module.open_selector();
        plugin.check_result("open", open(params_json.into()))
    }
}

impl LoadedPlugin {
    /// Runs the plugin's own check of its parameters (interface version 2):
    /// nothing is built, a backend only opens its model far enough to check
    /// it. `Err` carries the plugin's message as it is, for the caller to
    /// point at the spec's line.
    pub fn validate(&self, params_json: &str) -> Result<(), String> {
        let Some(validate) = self.module.validate() else {
            // Only a library whose version check was bypassed can lack it.
            return Err(format!(
                "{} has no `validate` entry (interface version {}); rebuild the plugin against \
                 this version of sieve-core",
                self.file.display(),
                self.interface_version
            ));
        };
        validate(params_json.into())
            .into_result()
            .map_err(String::from)
    }
}

impl LoadedPlugin {
    /// Turns a plugin call's result into ours, naming the plugin on error.
    pub fn check_result<T>(
        &self,
        stage: &'static str,
        result: RResult<T, abi_stable::std_types::RString>,
    ) -> Result<T, PluginError> {
        result
            .into_result()
            .map_err(|message| self.failure(stage, message.into()))
    }

    /// An error raised while running this plugin.
    pub fn failure(&self, stage: &'static str, message: String) -> PluginError {
        PluginError::Failed {
            name: self.name.clone(),
            file: self.file.clone(),
            stage,
            message,
        }
    }
}

/// Loads one library and checks its interface version.
fn load_library(file: &Path) -> Result<LoadedPlugin, RejectedLibrary> {
    let reject = |name: Option<String>, reason: String| RejectedLibrary {
        file: file.to_path_buf(),
        name,
        reason,
    };
    let module = lib_header_from_path(file)
        .and_then(|header| header.init_root_module::<SievePluginRef>())
        .map_err(|e| reject(None, describe_library_error(&e)))?;
    let info = (module.info())();
    let name = info.name.to_string();
    let host_version = info.kind.host_interface_version();
    if info.interface_version != host_version {
        return Err(reject(
            Some(name),
            format!(
                "it implements {} interface version {}, this sieve implements version {host_version}; \
                 rebuild the plugin against this version of sieve-core",
                info.kind.as_str(),
                info.interface_version,
            ),
        ));
    }
    Ok(LoadedPlugin {
        file: file.to_path_buf(),
        name,
        kind: info.kind,
        version: info.version.to_string(),
        interface_version: info.interface_version,
        description: info.description.to_string(),
        module,
    })
}

/// One line per failure kind, saying what to do about it.
fn describe_library_error(error: &LibraryError) -> String {
    match error {
        LibraryError::OpenError { err, .. } => {
            format!("not a loadable dynamic library ({err})")
        }
        LibraryError::GetSymbolError { .. } => {
            "not a Sieve plugin (it exports no Sieve root module); remove it from the plugin folder"
                .to_string()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built against sieve-core {actual_version}, this sieve uses {expected_version}; rebuild the plugin"
        ),
        LibraryError::AbiInstability(_) | LibraryError::InvalidAbiHeader(_) => {
            "its plugin interface layout differs from this sieve's (built against another sieve-core); rebuild the plugin"
                .to_string()
        }
        other => format!("cannot be loaded: {other}"),
    }
}
