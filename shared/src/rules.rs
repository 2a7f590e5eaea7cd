//! The drop rules of the history cleaning, in the order they apply.
//!
//! This list is the one source of the rules: the cleaner checks each row against it in order,
//! the manifest counts drops per rule with it, the API's metrics label drops with it, the
//! generator builds its defective rows from it, and a test checks that `docs/drop-rules.md`
//! describes every rule.

use std::fmt;
use std::ops::{Index, IndexMut};

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a history row was dropped. A row is dropped by the first rule it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropRule {
    CountryCode,
    VoucherAmount,
    TotalOrders,
    Timestamp,
    LastOrderTs,
    Recency,
    FirstAfterLast,
}

impl DropRule {
    /// Every rule, in the order the rules apply.
    pub const ALL: [DropRule; 7] = [
        DropRule::CountryCode,
        DropRule::VoucherAmount,
        DropRule::TotalOrders,
        DropRule::Timestamp,
        DropRule::LastOrderTs,
        DropRule::Recency,
        DropRule::FirstAfterLast,
    ];

    /// The names of [`DropRule::ALL`], in order.
    pub const NAMES: [&'static str; 7] = {
        let mut names = [""; 7];
        let mut i = 0;
        while i < names.len() {
            names[i] = DropRule::ALL[i].name();
            i += 1;
        }
        names
    };

    /// The rule's name: the key in `manifest.json` and in the run summary.
    pub const fn name(self) -> &'static str {
        match self {
            DropRule::CountryCode => "country_code",
            DropRule::VoucherAmount => "voucher_amount",
            DropRule::TotalOrders => "total_orders",
            DropRule::Timestamp => "timestamp",
            DropRule::LastOrderTs => "last_order_ts",
            DropRule::Recency => "recency",
            DropRule::FirstAfterLast => "first_after_last",
        }
    }

    /// When the rule drops a row, in words (also in `docs/drop-rules.md`).
    pub const fn description(self) -> &'static str {
        match self {
            DropRule::CountryCode => {
                "`country_code` is null or not a country code: 1 to 64 bytes, without leading or trailing whitespace or control characters (taken as written: ` Peru` is not `Peru`)"
            }
            DropRule::VoucherAmount => {
                "`voucher_amount` is null, NaN, infinite, zero or negative, or not a whole number"
            }
            DropRule::TotalOrders => {
                "`total_orders` is blank, unparseable, negative or not a whole number (surrounding spaces are ignored; `14` and `14.0` are whole)"
            }
            DropRule::Timestamp => "`timestamp` is null or does not parse as a time",
            DropRule::LastOrderTs => "`last_order_ts` is null or does not parse as a time",
            DropRule::Recency => {
                "the last order is after the voucher: date(`timestamp`) < date(`last_order_ts`)"
            }
            DropRule::FirstAfterLast => {
                "the first order is after the last one: date(`first_order_ts`) > date(`last_order_ts`); a null `first_order_ts` passes"
            }
        }
    }

    /// The value of the `rule` label of metrics about drops.
    pub const fn metric_label(self) -> &'static str {
        self.name()
    }

    /// The rule's position in [`DropRule::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn from_name(name: &str) -> Option<DropRule> {
        DropRule::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for DropRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many rows each drop rule removed.
///
/// Serialized as an object from rule name to count, in rule order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts([u64; DropRule::ALL.len()]);

impl DropCounts {
    /// The rules with their counts, in rule order.
    pub fn iter(&self) -> impl Iterator<Item = (DropRule, u64)> + '_ {
        DropRule::ALL.into_iter().map(|rule| (rule, self[rule]))
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// These counts plus `other`'s, rule by rule; `None` when a count would overflow.
    pub fn checked_add(&self, other: &DropCounts) -> Option<DropCounts> {
        let mut sum = *self;
        for rule in DropRule::ALL {
            sum[rule] = self[rule].checked_add(other[rule])?;
        }
        Some(sum)
    }
}

impl Index<DropRule> for DropCounts {
    type Output = u64;

    fn index(&self, rule: DropRule) -> &u64 {
        &self.0[rule.index()]
    }
}

impl IndexMut<DropRule> for DropCounts {
    fn index_mut(&mut self, rule: DropRule) -> &mut u64 {
        &mut self.0[rule.index()]
    }
}

impl std::ops::AddAssign for DropCounts {
    fn add_assign(&mut self, other: DropCounts) {
        for rule in DropRule::ALL {
            self[rule] += other[rule];
        }
    }
}

impl Serialize for DropCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_per_rule(self.iter(), serializer)
    }
}

impl<'de> Deserialize<'de> for DropCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_per_rule(deserializer, "row count").map(DropCounts)
    }
}

/// Serializes a value per rule as an object from rule name to value, in rule order (drop
/// counts, and the drop shares of a manifest's profile).
pub(crate) fn serialize_per_rule<S: Serializer, T: Serialize>(
    values: impl Iterator<Item = (DropRule, T)>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(DropRule::ALL.len()))?;
    for (rule, value) in values {
        map.serialize_entry(rule.name(), &value)?;
    }
    map.end()
}

/// Reads what [`serialize_per_rule`] writes; a rule left out is `T::default()`, an unknown
/// rule name is an error naming the known ones.
pub(crate) fn deserialize_per_rule<'de, D, T>(
    deserializer: D,
    what: &'static str,
) -> Result<[T; DropRule::ALL.len()], D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default + Copy,
{
    struct PerRuleVisitor<T> {
        what: &'static str,
        marker: std::marker::PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de> + Default + Copy> Visitor<'de> for PerRuleVisitor<T> {
        type Value = [T; DropRule::ALL.len()];
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an object from drop rule name to {}", self.what)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut values = [T::default(); DropRule::ALL.len()];
            while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                let rule = DropRule::from_name(&name)
                    .ok_or_else(|| de::Error::unknown_field(&name, &DropRule::NAMES))?;
                values[rule.index()] = map.next_value()?;
            }
            Ok(values)
        }
    }
    deserializer.deserialize_map(PerRuleVisitor {
        what,
        marker: std::marker::PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_describe_every_rule() {
        let docs = include_str!("../../docs/drop-rules.md");
        for rule in DropRule::ALL {
            assert!(
                docs.contains(&format!("`{}`", rule.name())),
                "docs/drop-rules.md does not name `{rule}`"
            );
            assert!(
                docs.contains(rule.description()),
                "docs/drop-rules.md lacks the description of `{rule}`: {}",
                rule.description()
            );
        }
    }

    #[test]
    fn the_country_rule_is_the_shared_one_and_comes_first() {
        // A row of no country is of no selected country: no other rule looks at it.
        assert_eq!(DropRule::ALL[0], DropRule::CountryCode);
        assert!(
            DropRule::CountryCode
                .description()
                .contains(crate::country::COUNTRY_CODE_RULE),
            "the description states the rule of `country`"
        );
    }

    #[test]
    fn counts_serialize_as_an_object_in_rule_order() {
        let mut counts = DropCounts::default();
        counts[DropRule::Recency] = 3;
        counts[DropRule::VoucherAmount] = 1;
        let json = serde_json::to_string(&counts).expect("json");
        assert_eq!(
            json,
            r#"{"country_code":0,"voucher_amount":1,"total_orders":0,"timestamp":0,"last_order_ts":0,"recency":3,"first_after_last":0}"#
        );
        let back: DropCounts = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, counts);
        assert_eq!(back.total(), 4);
    }

    #[test]
    fn checked_addition_refuses_an_overflow_instead_of_wrapping() {
        let mut near = DropCounts::default();
        near[DropRule::Recency] = u64::MAX - 1;
        let mut one = DropCounts::default();
        one[DropRule::Recency] = 1;
        one[DropRule::VoucherAmount] = 5;
        let sum = near.checked_add(&one).expect("fits");
        assert_eq!(
            (sum[DropRule::Recency], sum[DropRule::VoucherAmount]),
            (u64::MAX, 5)
        );
        assert_eq!(sum.checked_add(&one), None);
    }

    #[test]
    fn an_unknown_rule_in_a_manifest_is_named() {
        let err = serde_json::from_str::<DropCounts>(r#"{"colour": 1}"#).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("colour") && msg.contains("first_after_last"),
            "{msg}"
        );
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for (i, rule) in DropRule::ALL.into_iter().enumerate() {
            assert_eq!(rule.index(), i);
            assert_eq!(DropRule::from_name(rule.name()), Some(rule));
            assert_eq!(rule.metric_label(), rule.name());
        }
        assert_eq!(DropRule::from_name("nope"), None);
    }
}
