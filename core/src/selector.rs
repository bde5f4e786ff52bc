//! Selector plugins: filter or rank features, with the host's probe on call.

use abi_stable::{
    sabi_trait,
    sabi_trait::TD_Opaque,
    std_types::{RBox, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

use crate::{guard::catch_plugin_panic, matrix::MatrixView};

/// Where a feature column comes from: hidden state `layer`, unit `neuron`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureId {
    pub layer: u32,
    pub neuron: u32,
}

/// The kind of target the probe predicts.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// One class per row (`labels`).
    Classification,
    /// One real value per row (`targets`).
    Regression,
}

/// The data a selector works on. Columns of `train` and `dev` correspond to
/// `features` one to one.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct SelectorInput<'a> {
    pub task: TaskKind,
    pub train: MatrixView<'a>,
    pub dev: MatrixView<'a>,
    /// Class indices (classification); empty for regression.
    pub train_labels: RSlice<'a, u32>,
    pub dev_labels: RSlice<'a, u32>,
    /// Real targets (regression); empty for classification.
    pub train_targets: RSlice<'a, f32>,
    pub dev_targets: RSlice<'a, f32>,
    pub num_classes: u32,
    pub features: RSlice<'a, FeatureId>,
    /// Every random choice a selector makes derives from this seed.
    pub seed: u64,
}

/// Whether a selection is a subset or an ordering.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectionKind {
    /// `order` lists the columns to keep (e.g. cluster representatives).
    Filter,
    /// `order` lists every column, most useful first.
    Ranking,
}

/// A selector's answer. Indices are column indices of the input matrices.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct Selection {
    pub kind: SelectionKind,
    pub order: RVec<u32>,
    /// Optional: positions in `order` where a ranking step ends (the
    /// NeuroX sweep's cutoffs); empty when the ranking has no steps.
    pub cutoffs: RVec<u32>,
    /// Optional: one score per entry of `order`; empty when not meaningful.
    pub scores: RVec<f32>,
    /// Free text the host shows in the log (e.g. "3,112 clusters").
    pub notes: RString,
}

/// Weights of a trained linear probe: `weights` is row-major
/// `[outputs, features]`, `bias` has `outputs` entries.
#[repr(C)]
#[derive(StableAbi, Clone, Debug)]
pub struct ProbeWeights {
    pub weights: RVec<f32>,
    pub bias: RVec<f32>,
    pub outputs: u32,
    pub features: u32,
    /// Which solver ran and its settings, for the report.
    pub solver: RString,
}

/// Services the host offers a selector while it runs.
#[sabi_trait]
pub trait ProbeHost: Send + Sync {
    /// Trains the host's probe on `x` against the input's labels or targets
    /// restricted to the given rows. `settings_json` overrides the spec's
    /// probe settings (for example `{"l1": 1e-3, "l2": 0}`); `{}` keeps them.
    #[sabi(last_prefix_field)]
    fn train_probe(
        &self,
        x: MatrixView<'_>,
        labels: RSlice<'_, u32>,
        targets: RSlice<'_, f32>,
        num_classes: u32,
        settings_json: RStr<'_>,
    ) -> RResult<ProbeWeights, RString>;
}

/// A borrowed host service handed to [`Selector::select`].
pub type ProbeHostRef<'a> = ProbeHost_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;

/// The Rust-side contract a selector implements.
pub trait SelectorPlugin: Send + Sync + 'static {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        host: &ProbeHostRef<'_>,
    ) -> Result<Selection, String>;
}

/// The boundary-safe selector trait (generated into `Selector_TO`).
#[sabi_trait]
pub trait Selector: Send + Sync {
    #[sabi(last_prefix_field)]
    fn select(
        &self,
        input: &SelectorInput<'_>,
        host: ProbeHostRef<'_>,
    ) -> RResult<Selection, RString>;
}

/// An owned selector from a plugin.
pub type SelectorBox = Selector_TO<'static, RBox<()>>;

struct GuardedSelector<T>(T);

impl<T: SelectorPlugin> Selector for GuardedSelector<T> {
    fn select(
        &self,
        input: &SelectorInput<'_>,
        host: ProbeHostRef<'_>,
    ) -> RResult<Selection, RString> {
        catch_plugin_panic("select", || self.0.select(input, &host))
    }
}

impl SelectorBox {
    pub fn from_plugin<T: SelectorPlugin>(plugin: T) -> Self {
        Selector_TO::from_value(GuardedSelector(plugin), TD_Opaque)
    }
}

/// Wraps a host-side service so it can be lent to a selector.
pub fn lend_probe_host<T: ProbeHost>(host: &T) -> ProbeHostRef<'_> {
    ProbeHost_TO::from_ptr(abi_stable::sabi_types::RRef::new(host), TD_Opaque)
}
