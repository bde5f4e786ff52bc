//! The root module every plugin library exports, and how it says what it is.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RStr, RString},
    StableAbi,
};

use crate::{backend::EncoderBox, selector::SelectorBox};

/// Version of the backend calling convention ([`crate::Encoder`] and its
/// request/response types). Bumped on any change a backend must react to.
/// Version 2: the root module's `validate` entry.
pub const BACKEND_INTERFACE_VERSION: u32 = 2;

/// Version of the selector calling convention ([`crate::Selector`],
/// [`crate::SelectorInput`], [`crate::ProbeHost`]).
/// Version 2: the root module's `validate` entry.
pub const SELECTOR_INTERFACE_VERSION: u32 = 2;

/// What a plugin library provides.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    Backend,
    Selector,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Backend => "backend",
            PluginKind::Selector => "selector",
        }
    }

    /// The interface version the host expects of plugins of this kind.
    pub fn host_interface_version(self) -> u32 {
        match self {
            PluginKind::Backend => BACKEND_INTERFACE_VERSION,
            PluginKind::Selector => SELECTOR_INTERFACE_VERSION,
        }
    }
}

/// A plugin's self-description, shown by `sieve plugins`.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct PluginInfo {
    /// The name specs use to refer to the plugin (`candle`, `elastic-net`).
    pub name: RString,
    pub kind: PluginKind,
    /// The plugin's own version (its crate version).
    pub version: RString,
    /// The interface version the plugin was written for; the host refuses a
    /// plugin whose version differs from [`PluginKind::host_interface_version`].
    pub interface_version: u32,
    pub description: RString,
}

/// The root module of a plugin library.
///
/// `open_backend` / `open_selector` build a plugin instance from its
/// parameters, given as a JSON object (the spec's YAML mapping, converted by
/// the host). A library implements the constructor of its own kind; the
/// other returns an error.
///
/// `validate` (interface version 2) checks the same parameters without
/// doing the work: a selector parses them, a backend also opens its model
/// far enough to check it (config against weights, runtime library). The
/// host calls it before any extraction. Parameter errors start with
/// ``parameter `NAME`: `` (see [`crate::param_error`]) so the host can point
/// at the spec line of that key.
///
/// Layout: fields are only ever added after `open_selector`, the
/// `last_prefix_field` (moving that attribute would be an ABI break that
/// abi_stable reports as an unreadable layout, hiding the plugin's name).
/// A library built for version 1 therefore still loads far enough to say
/// which interface version it implements, and the host refuses it with
/// that message; `validate` reads as `None` on such a library.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = SievePluginRef)))]
#[sabi(missing_field(panic))]
pub struct SievePlugin {
    pub info: extern "C" fn() -> PluginInfo,
    pub open_backend: extern "C" fn(params_json: RStr<'_>) -> RResult<EncoderBox, RString>,
    #[sabi(last_prefix_field)]
    pub open_selector: extern "C" fn(params_json: RStr<'_>) -> RResult<SelectorBox, RString>,
    /// Since interface version 2.
    #[sabi(missing_field(option))]
    pub validate: extern "C" fn(params_json: RStr<'_>) -> RResult<(), RString>,
}

impl RootModule for SievePluginRef {
    declare_root_module_statics! {SievePluginRef}
    const BASE_NAME: &'static str = "sieve_plugin";
    const NAME: &'static str = "sieve_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Writes the root module of a backend plugin.
///
/// `$open` is a `fn(&str) -> Result<T, String>` taking the parameters as JSON,
/// where `T: EncoderPlugin`. `$validate`, a `fn(&str) -> Result<(), String>`,
/// checks the parameters and the model without loading it for work; when
/// left out, validation opens the backend and drops it. The plugin crate
/// must also depend on `abi_stable` (the attribute it expands to names that
/// crate directly).
#[macro_export]
macro_rules! export_backend_plugin {
    (name: $name:expr, description: $description:expr, open: $open:path
     $(, validate: $validate:path)? $(,)?) => {
        #[$crate::abi_stable::export_root_module]
        pub fn sieve_plugin_root() -> $crate::SievePluginRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn info() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    name: $name.into(),
                    kind: $crate::PluginKind::Backend,
                    version: env!("CARGO_PKG_VERSION").into(),
                    interface_version: $crate::BACKEND_INTERFACE_VERSION,
                    description: $description.into(),
                }
            }
            extern "C" fn open_backend(
                params: $crate::abi_stable::std_types::RStr<'_>,
            ) -> $crate::abi_stable::std_types::RResult<
                $crate::EncoderBox,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::catch_plugin_panic("open", || {
                    $open(params.as_str()).map($crate::EncoderBox::from_plugin)
                })
            }
            extern "C" fn open_selector(
                _params: $crate::abi_stable::std_types::RStr<'_>,
            ) -> $crate::abi_stable::std_types::RResult<
                $crate::SelectorBox,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::abi_stable::std_types::RResult::RErr(
                    concat!("plugin '", $name, "' is a backend, not a selector").into(),
                )
            }
            $crate::__sieve_validate_entry!($open $(, $validate)?);
            $crate::SievePlugin {
                info,
                open_backend,
                open_selector,
                validate: validate_entry,
            }
            .leak_into_prefix()
        }
    };
}

/// Writes the root module of a selector plugin.
///
/// `$open` is a `fn(&str) -> Result<T, String>` taking the parameters as JSON,
/// where `T: SelectorPlugin`; `$validate` (optional, default: open and
/// drop) a `fn(&str) -> Result<(), String>` checking them. See
/// `plugins/selector-template` for a complete example. `interface_version`
/// is only for tests that need a plugin of another version.
#[macro_export]
macro_rules! export_selector_plugin {
    (name: $name:expr, description: $description:expr, open: $open:path
     $(, validate: $validate:path)? $(, interface_version: $interface:expr)? $(,)?) => {
        #[$crate::abi_stable::export_root_module]
        pub fn sieve_plugin_root() -> $crate::SievePluginRef {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            extern "C" fn info() -> $crate::PluginInfo {
                $crate::PluginInfo {
                    name: $name.into(),
                    kind: $crate::PluginKind::Selector,
                    version: env!("CARGO_PKG_VERSION").into(),
                    interface_version: $crate::__sieve_or!(
                        $($interface)?; $crate::SELECTOR_INTERFACE_VERSION
                    ),
                    description: $description.into(),
                }
            }
            extern "C" fn open_backend(
                _params: $crate::abi_stable::std_types::RStr<'_>,
            ) -> $crate::abi_stable::std_types::RResult<
                $crate::EncoderBox,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::abi_stable::std_types::RResult::RErr(
                    concat!("plugin '", $name, "' is a selector, not a backend").into(),
                )
            }
            extern "C" fn open_selector(
                params: $crate::abi_stable::std_types::RStr<'_>,
            ) -> $crate::abi_stable::std_types::RResult<
                $crate::SelectorBox,
                $crate::abi_stable::std_types::RString,
            > {
                $crate::catch_plugin_panic("open", || {
                    $open(params.as_str()).map($crate::SelectorBox::from_plugin)
                })
            }
            $crate::__sieve_validate_entry!($open $(, $validate)?);
            $crate::SievePlugin {
                info,
                open_backend,
                open_selector,
                validate: validate_entry,
            }
            .leak_into_prefix()
        }
    };
}

/// The root module's `validate_entry`: the plugin's own `validate`, or
/// opening and dropping the plugin when it has none, with panics caught.
/// Not named `validate`: that name is the plugin's own function.
#[doc(hidden)]
#[macro_export]
macro_rules! __sieve_validate_entry {
    ($open:path $(, $validate:path)?) => {
        extern "C" fn validate_entry(
            params: $crate::abi_stable::std_types::RStr<'_>,
        ) -> $crate::abi_stable::std_types::RResult<(), $crate::abi_stable::std_types::RString> {
            $crate::catch_plugin_panic("validate", || {
                $crate::__sieve_validate!(params.as_str(), $open $(, $validate)?)
            })
        }
    };
}

/// The body of the export macros' `validate`: the plugin's own function,
/// else opening the plugin and dropping it.
#[doc(hidden)]
#[macro_export]
macro_rules! __sieve_validate {
    ($params:expr, $open:path) => {
        $open($params).map(drop)
    };
    ($params:expr, $open:path, $validate:path) => {
        $validate($params)
    };
}

/// The given expression, else the default.
#[doc(hidden)]
#[macro_export]
macro_rules! __sieve_or {
    (; $default:expr) => {
        $default
    };
    ($value:expr; $default:expr) => {
        $value
    };
}
