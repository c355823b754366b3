//! RFC 2782 ordering of SRV records: ascending priority, and within one priority a weighted
//! random order.

/// One SRV record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The target host name.
    pub target: String,
}

/// Orders records for trying: by priority, then weighted random within each priority.
/// `random(n)` must return a value in `0..=n`; pass a real random source in production and a
/// fixed one in tests.
pub fn order_srv(
    mut records: Vec<SrvTarget>,
    mut random: impl FnMut(u32) -> u32,
) -> Vec<SrvTarget> {
    // Zero-weight records go first within their priority so they keep a small chance
    // (RFC 2782 "Usage rules").
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let end = records
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(records.len());
        let mut group: Vec<SrvTarget> = records.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = random(total).min(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(index));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn targets(v: &[SrvTarget]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn priority_first_then_weight() {
        let records = vec![rec(20, 0, "backup"), rec(10, 10, "a"), rec(10, 90, "b")];
        // A draw at the top of the range picks the heavier record first.
        assert_eq!(
            targets(&order_srv(records.clone(), |n| n)),
            ["b", "a", "backup"]
        );
        // A draw of 1 lands in the first record's share.
        assert_eq!(
            targets(&order_srv(records, |n| n.min(1))),
            ["a", "b", "backup"]
        );
    }

    #[test]
    fn weights_split_draws_in_proportion() {
        let records = vec![rec(10, 25, "a"), rec(10, 75, "b")];
        let mut first_a = 0;
        for draw in 0..=100 {
            let mut once = Some(draw);
            let ordered = order_srv(records.clone(), |n| once.take().unwrap_or(n).min(n));
            first_a += usize::from(ordered[0].target == "a");
        }
        assert!((24..=27).contains(&first_a), "{first_a}");
    }
}
