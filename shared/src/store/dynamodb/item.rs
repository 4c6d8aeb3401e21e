//! Item mapping, once for every DynamoDB store (this adapter and the API keys table): items
//! are plain structs mapped by `serde_dynamo`; a malformed item is [`StoreError::Corrupt`].

use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::SdkError,
    operation::{
        put_item::PutItemError,
        transact_write_items::{
            builders::TransactWriteItemsFluentBuilder, TransactWriteItemsError,
        },
        update_item::UpdateItemError,
    },
    types::{AttributeValue, ReturnValue},
    Client,
};
use serde::{de::DeserializeOwned, Serialize};

use crate::store::{StoreError, StoreResult};

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The item `value` is stored as.
pub(crate) fn to_item<T: Serialize>(value: &T) -> StoreResult<Item> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(format!("cannot map item: {e}")))
}

/// Reads an item back; `what` names it in the error.
pub(crate) fn from_item<T: DeserializeOwned>(item: Item, what: &str) -> StoreResult<T> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A string value (keys and expression values).
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number value (keys and expression values).
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// How [`get_item`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Read {
    /// Eventually consistent (half the read capacity), whole item.
    Eventual,
    /// Strongly consistent: sees every write acknowledged before it, whole item.
    Consistent,
    /// Strongly consistent, only the attributes of this projection expression.
    ConsistentOnly(&'static str),
}

/// The item of `table` whose key attribute `key.0` is `key.1` (`GetItem`), or `None`.
pub(crate) async fn get_item(
    client: &Client,
    table: &str,
    key: (&str, AttributeValue),
    read: Read,
) -> StoreResult<Option<Item>> {
    let (consistent, projection) = match read {
        Read::Eventual => (false, None),
        Read::Consistent => (true, None),
        Read::ConsistentOnly(projection) => (true, Some(projection.to_owned())),
    };
    let out = client
        .get_item()
        .table_name(table)
        .key(key.0, key.1)
        .consistent_read(consistent)
        .set_projection_expression(projection)
        .send()
        .await
        .map_err(|e| StoreError::aws("GetItem", e))?;
    Ok(out.item)
}

/// A conditional `UpdateItem` of one item: `update` applies only where `condition` holds.
#[derive(Debug)]
pub(crate) struct UpdateIf<'a> {
    /// The table.
    pub table: &'a str,
    /// The item's key attribute and value.
    pub key: (&'a str, AttributeValue),
    /// The update expression.
    pub update: &'a str,
    /// The condition expression.
    pub condition: &'a str,
    /// Placeholders for attribute names that are reserved words (`#state`).
    pub names: &'a [(&'a str, &'a str)],
    /// The expression values.
    pub values: Vec<(&'a str, AttributeValue)>,
}

impl UpdateIf<'_> {
    /// Runs the update: the item as it is afterwards when the condition held, `None` when
    /// it did not (a lost lease, a newer position: the caller says what that means).
    pub(crate) async fn run(self, client: &Client) -> StoreResult<Option<Item>> {
        self.send(client, ReturnValue::AllNew).await
    }

    /// Runs the update: the item's updated attributes as they were before when the
    /// condition held, `None` when it did not.
    pub(crate) async fn run_for_old(self, client: &Client) -> StoreResult<Option<Item>> {
        self.send(client, ReturnValue::UpdatedOld).await
    }

    async fn send(self, client: &Client, returns: ReturnValue) -> StoreResult<Option<Item>> {
        let mut req = client
            .update_item()
            .table_name(self.table)
            .key(self.key.0, self.key.1)
            .update_expression(self.update)
            .condition_expression(self.condition)
            .return_values(returns);
        for (placeholder, name) in self.names {
            req = req.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in self.values {
            req = req.expression_attribute_values(placeholder, value);
        }
        match req.send().await {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e)
                if condition_failed(&e, UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(None)
            }
            Err(e) => Err(StoreError::aws("UpdateItem", e)),
        }
    }
}

/// A conditional `PutItem`: `item` is written only where `condition` holds.
#[derive(Debug)]
pub(crate) struct PutIf<'a> {
    /// The table.
    pub table: &'a str,
    /// The whole item.
    pub item: Item,
    /// The condition expression.
    pub condition: &'a str,
    /// Placeholders for attribute names that are reserved words (`#k`).
    pub names: &'a [(&'a str, &'a str)],
    /// The expression values.
    pub values: Vec<(&'a str, AttributeValue)>,
}

impl<'a> PutIf<'a> {
    /// Writes `item` to `table` where `condition` holds (it names no placeholders; set
    /// `names` and `values` over this for one that does).
    pub(crate) fn new(table: &'a str, item: Item, condition: &'a str) -> Self {
        Self { table, item, condition, names: &[], values: Vec::new() }
    }

    /// Writes the item: `true` when the condition held, `false` when it did not (an item
    /// already there, a newer record: the caller says what that means).
    pub(crate) async fn run(self, client: &Client) -> StoreResult<bool> {
        let mut req = client
            .put_item()
            .table_name(self.table)
            .set_item(Some(self.item))
            .condition_expression(self.condition);
        for (placeholder, name) in self.names {
            req = req.expression_attribute_names(*placeholder, *name);
        }
        for (placeholder, value) in self.values {
            req = req.expression_attribute_values(placeholder, value);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e, PutItemError::is_conditional_check_failed_exception) => {
                Ok(false)
            }
            Err(e) => Err(StoreError::aws("PutItem", e)),
        }
    }
}

/// Sends a transaction; a failed condition on any item is `Conflict`.
pub(crate) async fn transact(req: TransactWriteItemsFluentBuilder) -> StoreResult<()> {
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            // Typed: a cancelled transaction lists one reason per item, in order.
            if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
                e.as_service_error()
            {
                let reasons: Vec<&str> =
                    tc.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                if reasons.contains(&"ConditionalCheckFailed") {
                    return Err(StoreError::Conflict(format!(
                        "transaction cancelled: {}",
                        reasons.join(",")
                    )));
                }
            }
            Err(StoreError::aws("TransactWriteItems", e))
        }
    }
}

/// Whether a conditional write failed its condition, asked through the operation's typed
/// error (e.g. `PutItemError::is_conditional_check_failed_exception`), not its code string.
pub(crate) fn condition_failed<E, R>(err: &SdkError<E, R>, check: fn(&E) -> bool) -> bool {
    err.as_service_error().is_some_and(check)
}

/// Times as RFC 3339 text with a `+00:00` offset (`DateTime::to_rfc3339`), the form rt-relay
/// has always stored; chrono's own serde form (`Z`) would change what existing items hold.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as RFC 3339.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&t.to_rfc3339())
    }

    /// Reads RFC 3339 text with any offset.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(de)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| serde::de::Error::custom("not RFC 3339"))
    }

    /// The same for an optional time (absent when `None`).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some(t)` as RFC 3339; skip `None` with `skip_serializing_if`.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            ser: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, ser),
                None => ser.serialize_none(),
            }
        }

        /// Reads an optional RFC 3339 time.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] DateTime<Utc>);
            Ok(Option::<Wrapped>::deserialize(de)?.map(|Wrapped(t)| t))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: u64,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
        #[serde(default, with = "rfc3339::option", skip_serializing_if = "Option::is_none")]
        until: Option<DateTime<Utc>>,
    }

    #[test]
    fn items_map_numbers_strings_and_times_as_before() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let sample = Sample { id: 7, at, until: None };
        let item = to_item(&sample).unwrap();
        assert_eq!(item.get("id"), Some(&n(7)));
        assert_eq!(item.get("at"), Some(&s("2023-11-14T22:13:20+00:00")));
        assert!(!item.contains_key("until"), "None is absent, not NULL");
        assert_eq!(from_item::<Sample>(item, "sample").unwrap(), sample);

        let later = Sample { until: Some(at), ..sample };
        assert_eq!(from_item::<Sample>(to_item(&later).unwrap(), "sample").unwrap(), later);
    }

    #[test]
    fn malformed_items_are_corrupt() {
        let item = Item::from([("id".into(), s("seven")), ("at".into(), s("yesterday"))]);
        let err = from_item::<Sample>(item, "sample").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(ref m) if m.starts_with("sample")), "{err:?}");
    }
}
