//! RT's transaction log over REST 1.0, which has no transaction search: the tickets
//! updated since the cursor's time (`search/ticket`, `LastUpdated >=` a second before it:
//! RT keeps whole seconds) are listed, each one's history is read in full
//! (`ticket/<id>/history?format=l`, which carries every field and the message text), and
//! the transactions after the cursor are merged in id order. Limits (documented in
//! docs/ARCHITECTURE.md): one request per ticket updated since the cursor, so a busy RT costs
//! many requests per run, and at most [`MAX_TICKETS`] tickets are looked at per page.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use tracing::instrument;

use super::{parse::ParsedForm, ticket::SQL_DATE, Rest1Client};
use crate::rt::{
    transactions::{RtTransaction, RtTransactions, TxnPage, TxnPosition},
    RtError, MAX_PER_PAGE,
};

/// Tickets updated since the cursor that one page looks at, at most.
pub const MAX_TICKETS: u32 = 1000;
/// What RT prints as the content of a transaction without a message.
const NO_CONTENT: &str = "This transaction appears to have no content";

fn transaction_from_form(form: &ParsedForm) -> Option<(RtTransaction, Option<String>)> {
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let id = field("id").parse().ok()?;
    let ticket_id = field("Ticket").parse().ok()?;
    // REST 1.0 prints the raw (UTC) time of a transaction.
    let created = NaiveDateTime::parse_from_str(&field("Created"), SQL_DATE).ok()?;
    let content = form.get("Content").map(str::to_owned).filter(|c| c.trim() != NO_CONTENT);
    Some((
        RtTransaction {
            id,
            ticket_id,
            kind: field("Type"),
            field: field("Field"),
            old_value: field("OldValue"),
            new_value: field("NewValue"),
            creator: field("Creator"),
            created: Utc.from_utc_datetime(&created),
        },
        content,
    ))
}

impl Rest1Client {
    /// A ticket's whole history, with each transaction's text; empty for a ticket RT does
    /// not show.
    async fn history(&self, ticket: u64) -> Result<Vec<(RtTransaction, Option<String>)>, RtError> {
        let forms = match self.forms(&format!("ticket/{ticket}/history"), &[("format", "l")]).await
        {
            Ok(forms) => forms,
            Err(RtError::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<_> = forms.iter().filter_map(transaction_from_form).collect();
        for (txn, _) in &mut out {
            self.resolve_names(txn).await?;
        }
        Ok(out)
    }

    /// RT records owner and queue changes as ids; clients read names.
    async fn resolve_names(&self, txn: &mut RtTransaction) -> Result<(), RtError> {
        let kind = match txn.field.as_str() {
            "Owner" => "user",
            "Queue" => "queue",
            _ => return Ok(()),
        };
        for value in [&mut txn.old_value, &mut txn.new_value] {
            if let Ok(id) = value.parse::<u64>() {
                *value = self.name_of(kind, id).await?;
            }
        }
        Ok(())
    }

    /// The `Name` of `user/<id>` or `queue/<id>`, cached for the client's life.
    async fn name_of(&self, kind: &str, id: u64) -> Result<String, RtError> {
        let key = format!("{kind}/{id}");
        if let Some(name) =
            self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key)
        {
            return Ok(name.clone());
        }
        let name = self
            .forms(&format!("{kind}/{id}"), &[])
            .await?
            .iter()
            .find_map(|f| f.get("Name").map(|n| n.trim().to_owned()))
            .ok_or_else(|| RtError::Malformed(format!("{key} without a Name")))?;
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if names.len() > 4096 {
            names.clear();
        }
        names.insert(key, name.clone());
        Ok(name)
    }

    /// Every ticket transaction after `after` (ticket histories of the tickets updated
    /// since its time), in id order, with their texts.
    async fn after(
        &self,
        after: TxnPosition,
    ) -> Result<Vec<(RtTransaction, Option<String>)>, RtError> {
        let since = (after.created - Duration::seconds(1)).format(SQL_DATE).to_string();
        let (_, tickets) =
            self.ticket_ids(&format!("LastUpdated >= '{since}'"), 0, MAX_TICKETS).await?;
        let mut all = Vec::new();
        for ticket in tickets {
            all.extend(self.history(ticket).await?.into_iter().filter(|(t, _)| t.id > after.id));
        }
        all.sort_by_key(|(t, _)| t.id);
        all.dedup_by_key(|(t, _)| t.id);
        Ok(all)
    }
}

/// The user/queue name cache's type, for the client's field.
pub(super) type Names = std::sync::Mutex<HashMap<String, String>>;

#[async_trait::async_trait]
impl RtTransactions for Rest1Client {
    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn transactions_after(&self, after: TxnPosition, limit: u32) -> Result<TxnPage, RtError> {
        let all = self.after(after).await?;
        let take = (limit.clamp(1, MAX_PER_PAGE) as usize).min(all.len());
        let remaining = (all.len() - take) as u64;
        let transactions = all.into_iter().take(take).map(|(t, _)| t).collect();
        Ok(TxnPage { transactions, remaining })
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn transaction(&self, ticket_id: u64, id: u64) -> Result<Option<RtTransaction>, RtError> {
        Ok(self.history(ticket_id).await?.into_iter().map(|(t, _)| t).find(|t| t.id == id))
    }

    #[instrument(level = "debug", skip(self), fields(rt.api = "rest1"))]
    async fn latest_transaction(&self) -> Result<Option<TxnPosition>, RtError> {
        // The newest transaction is on a recently updated ticket; look back a day first.
        let day_ago = TxnPosition { id: 0, created: Utc::now() - Duration::days(1) };
        let mut recent = self.after(day_ago).await?;
        if recent.is_empty() {
            recent =
                self.after(TxnPosition { id: 0, created: DateTime::<Utc>::UNIX_EPOCH }).await?;
        }
        Ok(recent.last().map(|(t, _)| TxnPosition { id: t.id, created: t.created }))
    }

    #[instrument(level = "debug", skip_all, fields(rt.api = "rest1", txn = txn.id))]
    async fn message_text(&self, txn: &RtTransaction) -> Result<Option<String>, RtError> {
        Ok(self
            .history(txn.ticket_id)
            .await?
            .into_iter()
            .find(|(t, _)| t.id == txn.id)
            .and_then(|(_, content)| content))
    }
}
