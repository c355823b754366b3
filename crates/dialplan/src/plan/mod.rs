//! The configured dial plan: partitions, calling search spaces, trunks, route patterns and
//! local directory URIs, checked as they are added and compiled into [`DialPlan`] for lookup.

mod trunk;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use foldhash::fast::RandomState;

pub use trunk::{
    Destination, DialStringInterpretation, OptionsPing, Transport, TrunkSpec, ValueError,
};

use crate::ids::{DirectoryNumber, DirectoryUri, Name, UriLookupPolicy};
use crate::pattern::{IpPattern, NumericPattern, SipPattern, Specificity};

/// What a route pattern does with the calls it wins.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PatternAction {
    /// Send the call over the named trunk.
    Route {
        /// The trunk's name.
        trunk: Name,
    },
    /// Refuse the call with this SIP status (CUCM's "block this pattern").
    Block {
        /// A final error status, 400 to 699.
        status: u16,
    },
}

/// A directory URI of this cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocalUri {
    /// The URI.
    pub uri: DirectoryUri,
    /// The partition it belongs to.
    pub partition: Name,
    /// The directory number (primary extension) calls to it go to.
    pub directory_number: DirectoryNumber,
    /// Whether ILS advertises it.
    pub advertise: bool,
}

/// Why a dial plan element was refused. Each message names the missing or duplicate thing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A partition name used twice.
    #[error("duplicate partition \"{name}\"")]
    DuplicatePartition {
        /// The name.
        name: Name,
    },
    /// A reference to a partition that was not defined.
    #[error("unknown partition \"{name}\"")]
    UnknownPartition {
        /// The name referred to.
        name: Name,
    },
    /// A calling search space name used twice.
    #[error("duplicate calling search space \"{name}\"")]
    DuplicateCss {
        /// The name.
        name: Name,
    },
    /// A calling search space that lists a partition twice.
    #[error("calling search space \"{css}\" lists partition \"{partition}\" twice")]
    RepeatedPartition {
        /// The calling search space.
        css: Name,
        /// The partition listed twice.
        partition: Name,
    },
    /// A reference to a calling search space that was not defined.
    #[error("unknown calling search space \"{name}\"")]
    UnknownCss {
        /// The name referred to.
        name: Name,
    },
    /// A trunk name used twice.
    #[error("duplicate trunk \"{name}\"")]
    DuplicateTrunk {
        /// The name.
        name: Name,
    },
    /// A reference to a trunk that was not defined.
    #[error("unknown trunk \"{name}\"")]
    UnknownTrunk {
        /// The name referred to.
        name: Name,
    },
    /// A trunk with no destination.
    #[error("trunk \"{trunk}\" has no destination")]
    NoDestinations {
        /// The trunk.
        trunk: Name,
    },
    /// A trunk with more destinations than CUCM allows.
    #[error("trunk \"{trunk}\" has {count} destinations, at most {max}")]
    TooManyDestinations {
        /// The trunk.
        trunk: Name,
        /// How many it has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same pattern twice in one partition.
    #[error("route pattern {pattern:?} appears twice in partition \"{partition}\"")]
    DuplicatePattern {
        /// The pattern.
        pattern: String,
        /// The partition.
        partition: Name,
    },
    /// A blocking pattern whose status is not a final error status.
    #[error("block status {status} is not a SIP error status (400 to 699)")]
    BadBlockStatus {
        /// The status given.
        status: u16,
    },
    /// The same directory URI twice in one partition.
    #[error("directory URI {uri} appears twice in partition \"{partition}\"")]
    DuplicateUri {
        /// The URI.
        uri: DirectoryUri,
        /// The partition.
        partition: Name,
    },
}

// === DialPlanBuilder ===

/// Builds a [`DialPlan`], checking each element against those added before it.
///
/// Add partitions first, then calling search spaces, trunks, route patterns and directory URIs.
#[derive(Debug)]
pub struct DialPlanBuilder {
    plan: DialPlan,
    pattern_keys: HashSet<(u32, bool, Box<str>)>,
}

impl DialPlanBuilder {
    /// Starts an empty plan whose URIs follow `policy`.
    pub fn new(policy: UriLookupPolicy) -> Self {
        Self {
            plan: DialPlan {
                policy,
                partitions: Vec::new(),
                partition_ids: HashMap::default(),
                css: Vec::new(),
                css_ids: HashMap::default(),
                trunks: Vec::new(),
                trunk_css: Vec::new(),
                trunk_ids: HashMap::default(),
                sources: Vec::new(),
                sip: Vec::new(),
                numeric: Vec::new(),
                index: Vec::new(),
                locals: Vec::new(),
                local_index: HashMap::default(),
                default_css: None,
            },
            pattern_keys: HashSet::new(),
        }
    }

    /// Adds a partition.
    pub fn partition(&mut self, name: Name) -> Result<(), PlanError> {
        let plan = &mut self.plan;
        if plan.partition_ids.contains_key(name.as_str()) {
            return Err(PlanError::DuplicatePartition { name });
        }
        let id = to_u32(plan.partitions.len());
        plan.partition_ids.insert(name.as_str().into(), id);
        plan.partitions.push(name);
        plan.index.push(PartitionIndex::default());
        Ok(())
    }

    /// Adds a calling search space: partitions searched in this order.
    pub fn css(&mut self, name: Name, partitions: Vec<Name>) -> Result<(), PlanError> {
        let plan = &mut self.plan;
        if plan.css_ids.contains_key(name.as_str()) {
            return Err(PlanError::DuplicateCss { name });
        }
        let mut ids = Vec::with_capacity(partitions.len());
        for p in &partitions {
            let id = plan.partition_id(p)?;
            if ids.contains(&id) {
                return Err(PlanError::RepeatedPartition {
                    css: name,
                    partition: p.clone(),
                });
            }
            ids.push(id);
        }
        plan.css_ids
            .insert(name.as_str().into(), to_u32(plan.css.len()));
        plan.css.push(Css {
            name,
            partitions,
            ids,
        });
        Ok(())
    }

    /// Adds a trunk.
    pub fn trunk(&mut self, spec: TrunkSpec) -> Result<(), PlanError> {
        let plan = &mut self.plan;
        if plan.trunk_ids.contains_key(spec.name.as_str()) {
            return Err(PlanError::DuplicateTrunk { name: spec.name });
        }
        let css = plan.css_id(&spec.inbound_css)?;
        if spec.destinations.is_empty() {
            return Err(PlanError::NoDestinations { trunk: spec.name });
        }
        if spec.destinations.len() > TrunkSpec::MAX_DESTINATIONS {
            return Err(PlanError::TooManyDestinations {
                count: spec.destinations.len(),
                trunk: spec.name,
                max: TrunkSpec::MAX_DESTINATIONS,
            });
        }
        let id = to_u32(plan.trunks.len());
        plan.trunk_ids.insert(spec.name.as_str().into(), id);
        plan.sources.extend(spec.accepts.iter().map(|a| (*a, id)));
        plan.trunk_css.push(css);
        plan.trunks.push(Arc::new(spec));
        Ok(())
    }

    /// Adds a SIP route pattern (domain or IP) to a partition.
    pub fn sip_route_pattern(
        &mut self,
        pattern: SipPattern,
        partition: Name,
        action: PatternAction,
    ) -> Result<(), PlanError> {
        let (partition, action) =
            self.check_pattern(&pattern.to_string(), false, &partition, action)?;
        let id = to_u32(self.plan.sip.len());
        let index = &mut self.plan.index[partition as usize];
        match &pattern {
            SipPattern::Domain(d) if d.is_exact() => {
                index.domain_exact.insert(d.as_str().into(), id);
            }
            SipPattern::Domain(d) => match d.literal_suffix() {
                Some(label) => index
                    .domain_suffix
                    .entry(label.into())
                    .or_default()
                    .push(id),
                None => index.domain_wild.push(id),
            },
            SipPattern::Ip(_) => index.ip.push(id),
        }
        self.plan
            .sip
            .push(Compiled::<SipPattern>::new(pattern, partition, action));
        Ok(())
    }

    /// Adds a numeric route pattern to a partition.
    pub fn numeric_route_pattern(
        &mut self,
        pattern: NumericPattern,
        partition: Name,
        action: PatternAction,
    ) -> Result<(), PlanError> {
        let (partition, action) = self.check_pattern(pattern.as_str(), true, &partition, action)?;
        let id = to_u32(self.plan.numeric.len());
        let index = &mut self.plan.index[partition as usize];
        match pattern.literal() {
            Some(literal) => {
                index.numeric_exact.insert(literal.into(), id);
            }
            None => index.numeric_wild.push(id),
        }
        self.plan
            .numeric
            .push(Compiled::<NumericPattern>::new(pattern, partition, action));
        Ok(())
    }

    /// Adds a local directory URI. Under the case-insensitive lookup policy its user part is
    /// folded to lower case here.
    pub fn directory_uri(&mut self, mut entry: LocalUri) -> Result<(), PlanError> {
        let plan = &mut self.plan;
        let partition = plan.partition_id(&entry.partition)?;
        if plan.policy == UriLookupPolicy::CaseInsensitive {
            // A URI that parsed once re-parses; keep it as given if that ever failed.
            if let Ok(folded) = DirectoryUri::parse(entry.uri.as_str(), plan.policy) {
                entry.uri = folded;
            }
        }
        let holders = plan
            .local_index
            .entry(entry.uri.as_str().into())
            .or_default();
        if holders
            .iter()
            .any(|&i| plan.locals[i as usize].1 == partition)
        {
            return Err(PlanError::DuplicateUri {
                uri: entry.uri,
                partition: entry.partition,
            });
        }
        holders.push(to_u32(plan.locals.len()));
        plan.locals.push((entry, partition));
        Ok(())
    }

    /// Sets the calling search space of calls from sources that match no trunk. `None` (the
    /// default) refuses such calls with 403.
    pub fn default_inbound_css(&mut self, css: Option<Name>) -> Result<(), PlanError> {
        self.plan.default_css = css.map(|c| self.plan.css_id(&c)).transpose()?;
        Ok(())
    }

    /// Compiles the plan: orders each partition's wildcard patterns most specific first and
    /// the trunks' source patterns longest prefix first (configuration order breaks ties).
    pub fn build(self) -> DialPlan {
        let mut plan = self.plan;
        let (sip, numeric) = (&plan.sip, &plan.numeric);
        for index in &mut plan.index {
            index.domain_wild.sort_by(|a, b| {
                sip[*b as usize]
                    .specificity
                    .cmp(&sip[*a as usize].specificity)
            });
            index.ip.sort_by(|a, b| {
                sip[*b as usize]
                    .specificity
                    .cmp(&sip[*a as usize].specificity)
            });
            index.numeric_wild.sort_by(|a, b| {
                numeric[*b as usize]
                    .specificity
                    .cmp(&numeric[*a as usize].specificity)
            });
        }
        plan.sources
            .sort_by_key(|s| std::cmp::Reverse(s.0.prefix_len()));
        plan
    }

    fn check_pattern(
        &mut self,
        text: &str,
        numeric: bool,
        partition: &Name,
        action: PatternAction,
    ) -> Result<(u32, Action), PlanError> {
        let plan = &self.plan;
        let id = plan.partition_id(partition)?;
        let action = match action {
            PatternAction::Route { trunk } => match plan.trunk_ids.get(trunk.as_str()) {
                Some(&t) => Action::Route(t),
                None => return Err(PlanError::UnknownTrunk { name: trunk }),
            },
            PatternAction::Block { status } if (400..=699).contains(&status) => {
                Action::Block(status)
            }
            PatternAction::Block { status } => return Err(PlanError::BadBlockStatus { status }),
        };
        if !self.pattern_keys.insert((id, numeric, text.into())) {
            return Err(PlanError::DuplicatePattern {
                pattern: text.to_owned(),
                partition: partition.clone(),
            });
        }
        Ok((id, action))
    }
}

// === DialPlan ===

/// An immutable, compiled dial plan. The router holds the current one and replaces it whole on
/// reload.
///
/// Each partition indexes its exact domain and all-literal numeric patterns in hash maps and
/// keeps its wildcard patterns in lists ordered most specific first (wildcard domains grouped
/// by their plain-text label suffix), so a partition's best match is a map probe or the first hit of a
/// short scan.
#[derive(Debug)]
pub struct DialPlan {
    pub(crate) policy: UriLookupPolicy,
    pub(crate) partitions: Vec<Name>,
    partition_ids: HashMap<Box<str>, u32>,
    pub(crate) css: Vec<Css>,
    css_ids: HashMap<Box<str>, u32>,
    pub(crate) trunks: Vec<Arc<TrunkSpec>>,
    /// The inbound calling search space of each trunk.
    pub(crate) trunk_css: Vec<u32>,
    trunk_ids: HashMap<Box<str>, u32>,
    /// Every trunk's accepted sources, longest prefix first.
    sources: Vec<(IpPattern, u32)>,
    pub(crate) sip: Vec<Compiled<SipPattern>>,
    pub(crate) numeric: Vec<Compiled<NumericPattern>>,
    pub(crate) index: Vec<PartitionIndex>,
    /// Local URIs with their partition's id.
    pub(crate) locals: Vec<(LocalUri, u32)>,
    /// Canonical URI text to the local entries that hold it.
    pub(crate) local_index: HashMap<Box<str>, Vec<u32>, RandomState>,
    pub(crate) default_css: Option<u32>,
}

impl DialPlan {
    /// The URI lookup policy the plan's URIs follow.
    pub fn policy(&self) -> UriLookupPolicy {
        self.policy
    }

    /// All trunks, in configuration order.
    pub fn trunks(&self) -> &[Arc<TrunkSpec>] {
        &self.trunks
    }

    /// The trunk of this name.
    pub fn trunk(&self, name: &str) -> Option<&Arc<TrunkSpec>> {
        self.trunk_id(name).map(|id| &self.trunks[id as usize])
    }

    /// The trunk whose `accepts` holds `source` most specifically (longest prefix; the trunk
    /// configured first breaks ties).
    pub fn trunk_for_source(&self, source: IpAddr) -> Option<&Arc<TrunkSpec>> {
        self.source_match(source)
            .map(|(_, id)| &self.trunks[id as usize])
    }

    /// All local directory URIs, in configuration order.
    pub fn local_uris(&self) -> impl Iterator<Item = &LocalUri> {
        self.locals.iter().map(|(uri, _)| uri)
    }

    /// The local directory URIs that ILS advertises.
    pub fn advertised_uris(&self) -> impl Iterator<Item = &LocalUri> {
        self.local_uris().filter(|u| u.advertise)
    }

    /// All partitions, in configuration order.
    pub fn partitions(&self) -> &[Name] {
        &self.partitions
    }

    /// The partitions of a calling search space, in search order.
    pub fn calling_search_space(&self, name: &str) -> Option<&[Name]> {
        let id = self.css_ids.get(name)?;
        Some(&self.css[*id as usize].partitions)
    }

    /// The calling search space used for calls from no configured trunk, if any.
    pub fn default_inbound_css(&self) -> Option<&Name> {
        self.default_css.map(|id| &self.css[id as usize].name)
    }

    /// The number of SIP and numeric route patterns.
    pub fn pattern_count(&self) -> usize {
        self.sip.len() + self.numeric.len()
    }

    pub(crate) fn trunk_id(&self, name: &str) -> Option<u32> {
        self.trunk_ids.get(name).copied()
    }

    /// The most specific accepted-source match: the pattern and the trunk's id.
    pub(crate) fn source_match(&self, source: IpAddr) -> Option<(&IpPattern, u32)> {
        self.sources
            .iter()
            .find(|(p, _)| p.contains(source))
            .map(|(p, id)| (p, *id))
    }

    fn partition_id(&self, name: &Name) -> Result<u32, PlanError> {
        self.partition_ids
            .get(name.as_str())
            .copied()
            .ok_or_else(|| PlanError::UnknownPartition { name: name.clone() })
    }

    fn css_id(&self, name: &Name) -> Result<u32, PlanError> {
        self.css_ids
            .get(name.as_str())
            .copied()
            .ok_or_else(|| PlanError::UnknownCss { name: name.clone() })
    }
}

/// A calling search space, compiled.
#[derive(Debug)]
pub(crate) struct Css {
    pub(crate) name: Name,
    pub(crate) partitions: Vec<Name>,
    pub(crate) ids: Vec<u32>,
}

/// A route pattern with its partition, compiled action and precomputed specificity.
#[derive(Debug)]
pub(crate) struct Compiled<P> {
    pub(crate) pattern: P,
    pub(crate) text: Box<str>,
    pub(crate) partition: u32,
    pub(crate) action: Action,
    pub(crate) specificity: Specificity,
}

impl Compiled<SipPattern> {
    fn new(pattern: SipPattern, partition: u32, action: Action) -> Self {
        Self {
            text: pattern.to_string().into(),
            specificity: pattern.specificity(),
            pattern,
            partition,
            action,
        }
    }
}

impl Compiled<NumericPattern> {
    fn new(pattern: NumericPattern, partition: u32, action: Action) -> Self {
        Self {
            text: pattern.as_str().into(),
            specificity: pattern.specificity(),
            pattern,
            partition,
            action,
        }
    }
}

/// A pattern's action with the trunk resolved to its id.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Route(u32),
    Block(u16),
}

/// One partition's route patterns, indexed. Lists hold ids into `DialPlan::{sip, numeric}`.
#[derive(Debug, Default)]
pub(crate) struct PartitionIndex {
    pub(crate) domain_exact: HashMap<Box<str>, u32, RandomState>,
    /// Wildcard domain patterns by their plain-text label suffix (`*.zone1.net` under
    /// `zone1.net`); a lookup probes each suffix of the host.
    pub(crate) domain_suffix: HashMap<Box<str>, Vec<u32>, RandomState>,
    /// The other wildcard domain patterns (`*`, or a class in the rightmost label).
    pub(crate) domain_wild: Vec<u32>,
    pub(crate) ip: Vec<u32>,
    pub(crate) numeric_exact: HashMap<Box<str>, u32, RandomState>,
    pub(crate) numeric_wild: Vec<u32>,
}

/// Ids are `u32`; a plan with four billion elements is not a plan we can load anyway.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
