//! RT's transaction log over REST 2.0: `GET /transactions` with TransactionSQL, in id
//! order, restricted to ticket transactions. Owner and queue values (RT's numeric ids) are
//! resolved to names, cached like queue names.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tracing::instrument;

use super::{
    json::{message_part, AttachmentItem, AttachmentJson, Collection, Link, Number},
    Rest2Client,
};
use crate::rt::{
    transactions::{RtTransaction, RtTransactions, TxnPage, TxnPosition},
    RtError, MAX_PER_PAGE,
};

/// The transaction fields read.
const FIELDS: &str = "Type,ObjectType,ObjectId,Field,OldValue,NewValue,Created,Creator";

#[derive(Debug, Deserialize)]
struct TransactionJson {
    id: Number,
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "ObjectType", default)]
    object_type: Option<String>,
    #[serde(rename = "ObjectId", default)]
    object_id: Option<Number>,
    #[serde(rename = "Field", default)]
    field: Option<String>,
    #[serde(rename = "OldValue", default)]
    old_value: Option<String>,
    #[serde(rename = "NewValue", default)]
    new_value: Option<String>,
    #[serde(rename = "Created", default)]
    created: Option<String>,
    #[serde(rename = "Creator", default)]
    creator: Option<Link>,
}

#[derive(Debug, Deserialize)]
struct UserJson {
    #[serde(rename = "Name")]
    name: String,
}

impl TransactionJson {
    /// The transaction, `None` when it is not a ticket's.
    fn into_transaction(self) -> Result<Option<RtTransaction>, RtError> {
        if self.object_type.as_deref() != Some("RT::Ticket") {
            return Ok(None);
        }
        let id = self.id.as_id().ok_or_else(|| RtError::Malformed("transaction id".into()))?;
        let ticket_id = self
            .object_id
            .as_ref()
            .and_then(Number::as_id)
            .ok_or_else(|| RtError::Malformed(format!("transaction {id} without ObjectId")))?;
        let created = self
            .created
            .as_deref()
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .ok_or_else(|| RtError::Malformed(format!("transaction {id}: Created")))?
            .with_timezone(&Utc);
        Ok(Some(RtTransaction {
            id,
            ticket_id,
            kind: self.kind.unwrap_or_default(),
            field: self.field.unwrap_or_default(),
            old_value: self.old_value.unwrap_or_default(),
            new_value: self.new_value.unwrap_or_default(),
            creator: self.creator.map(|c| c.name()).unwrap_or_default(),
            created,
        }))
    }
}

impl Rest2Client {
    /// Ticket transactions matching `sql` (ticket transactions only), ascending or not.
    async fn transactions(
        &self,
        sql: &str,
        ascending: bool,
        per_page: u32,
    ) -> Result<(Vec<RtTransaction>, u64), RtError> {
        let query = format!("{sql} AND ObjectType = 'RT::Ticket'");
        let per_page = per_page.clamp(1, MAX_PER_PAGE).to_string();
        let found: Collection<TransactionJson> = self
            .get_json(
                "transactions",
                &[
                    ("query", query.as_str()),
                    ("orderby", "id"),
                    ("order", if ascending { "ASC" } else { "DESC" }),
                    ("per_page", per_page.as_str()),
                    ("page", "1"),
                    ("fields", FIELDS),
                ],
            )
            .await?;
        let total = found.total.unwrap_or(found.items.len() as u64);
        let mut out = Vec::with_capacity(found.items.len());
        for item in found.items {
            if let Some(mut txn) = item.into_transaction()? {
                self.resolve_names(&mut txn).await?;
                out.push(txn);
            }
        }
        Ok((out, total))
    }

    /// RT records owner and queue changes as ids; clients read names.
    async fn resolve_names(&self, txn: &mut RtTransaction) -> Result<(), RtError> {
        match txn.field.as_str() {
            "Owner" => {
                txn.old_value = self.user_name(&txn.old_value).await?;
                txn.new_value = self.user_name(&txn.new_value).await?;
            }
            "Queue" => {
                for value in [&mut txn.old_value, &mut txn.new_value] {
                    if let Ok(id) = value.parse::<u64>() {
                        *value = self.queue_name(id).await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The user's name for an id RT wrote in a transaction (kept as is if not an id).
    async fn user_name(&self, raw: &str) -> Result<String, RtError> {
        let Ok(id) = raw.parse::<u64>() else { return Ok(raw.to_owned()) };
        if let Some(name) = self.user_names.get(id) {
            return Ok(name);
        }
        let user: UserJson = self.get_json(&format!("user/{id}"), &[]).await?;
        self.user_names.put(id, &user.name);
        Ok(user.name)
    }

    /// The text of a transaction's message: its first text/plain part, if any.
    pub(super) async fn transaction_text(
        &self,
        transaction: u64,
    ) -> Result<Option<String>, RtError> {
        let attachments: Collection<AttachmentItem> = self
            .get_json(
                &format!("transaction/{transaction}/attachments"),
                &[("fields", "ContentType,Filename"), ("per_page", "100")],
            )
            .await?;
        let Some(aid) = message_part(&attachments.items) else { return Ok(None) };
        let attachment: AttachmentJson = self.get_json(&format!("attachment/{aid}"), &[]).await?;
        attachment.text(aid).map(Some)
    }
}

#[async_trait::async_trait]
impl RtTransactions for Rest2Client {
    #[instrument(level = "debug", skip(self), fields(rt.api = "rest2"))]
    async fn transactions_after(&self, after: TxnPosition, limit: u32) -> Result<TxnPage, RtError> {
        let (transactions, total) =
            self.transactions(&format!("id > {}", after.id), true, limit).await?;
        let remaining = total.saturating_sub(transactions.len() as u64);
        Ok(TxnPage { transactions, remaining })
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest2"))]
    async fn transaction(&self, ticket_id: u64, id: u64) -> Result<Option<RtTransaction>, RtError> {
        // `GET /transaction/:id` answers 500 for an id that does not exist; a search
        // answers an empty page.
        let sql = format!("id = {id} AND ObjectId = {ticket_id}");
        let (mut found, _) = self.transactions(&sql, true, 1).await?;
        Ok(found.pop())
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest2"))]
    async fn latest_transaction(&self) -> Result<Option<TxnPosition>, RtError> {
        let (found, _) = self.transactions("id > 0", false, 1).await?;
        Ok(found.first().map(|t| TxnPosition { id: t.id, created: t.created }))
    }

    #[instrument(level = "debug", skip_all, fields(rt.api = "rest2", txn = txn.id))]
    async fn message_text(&self, txn: &RtTransaction) -> Result<Option<String>, RtError> {
        self.transaction_text(txn.id).await
    }
}
