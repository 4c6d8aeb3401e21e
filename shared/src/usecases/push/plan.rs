//! The PLAN step of the push: for one stream batch, which connections get which of its
//! notifications, in feed order. It reads the connections ONCE per batch (page by page),
//! never once per record, and does no posting: [`super::deliver`] does that.

use std::sync::Arc;

use crate::{
    feed::{Position, Subscription},
    model::Notification,
    store::{ConnectionStore, FeedMark, Recipient, StoreError},
    tenant::{relay_default_queue, QueueRights},
    usecases::resume,
};

/// One notification's JSON as stored and posted, shared by every delivery of the batch.
pub type Payload = Arc<[u8]>;

/// What one connection is to be posted: indices into [`Plan::notifications`], ascending,
/// i.e. in feed order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    /// The connection id.
    #[serde(rename = "c")]
    pub connection: String,
    /// Which of the plan's notifications it gets, in feed order.
    #[serde(rename = "n")]
    pub notifications: Vec<u32>,
}

/// One batch's fan-out: the notifications (feed order) and who gets which.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The batch's notifications, in feed order.
    pub notifications: Vec<Payload>,
    /// One entry per connection that gets at least one of them.
    pub deliveries: Vec<Delivery>,
}

impl Plan {
    /// How many posts the plan makes (one per connection and notification).
    pub fn posts(&self) -> usize {
        self.deliveries.iter().map(|d| d.notifications.len()).sum()
    }
}

/// The plan step over the connection store.
#[derive(Debug, Clone)]
pub struct Planner {
    connections: Arc<dyn ConnectionStore>,
    page_size: u32,
}

impl Planner {
    /// Reads `page_size` connections per page.
    pub fn new(connections: Arc<dyn ConnectionStore>, page_size: u32) -> Self {
        Self { connections, page_size: page_size.max(1) }
    }

    /// Plans `notifications` (one batch, in feed order): reads every connection once and
    /// gives each the notifications its key may read; a resuming connection's are held for
    /// its resume or cut at its bound ([`resume::post_now`]).
    pub async fn plan(&self, notifications: Vec<Payload>) -> Result<Plan, StoreError> {
        let queues: Vec<Option<String>> =
            notifications.iter().map(|n| notification_queue(n)).collect();
        let parsed: Vec<Option<Notification>> =
            notifications.iter().map(|n| serde_json::from_slice(n).ok()).collect();
        let seqs: Vec<Option<String>> =
            parsed.iter().map(|n| n.as_ref().map(|n| Position::of(n).seq())).collect();
        let mut deliveries = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) =
                self.connections.recipients(cursor.as_deref(), self.page_size).await?;
            for r in page {
                let mark = r.mark.clone();
                let id = r.id.clone();
                let Some(mut delivery) = delivery_for(r, &queues, &parsed) else { continue };
                if mark != FeedMark::Live {
                    delivery.notifications = self.resuming(id, mark, &delivery, &seqs).await?;
                    if delivery.notifications.is_empty() {
                        continue;
                    }
                }
                deliveries.push(delivery);
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(Plan { notifications, deliveries })
    }
}

impl Planner {
    /// A resuming connection's share of `delivery` (notifications without a position, not
    /// written by rt-relay, go out as for a live one).
    async fn resuming(
        &self,
        id: String,
        mark: FeedMark,
        delivery: &Delivery,
        seqs: &[Option<String>],
    ) -> Result<Vec<u32>, StoreError> {
        let candidates: Vec<(u32, &str)> = delivery
            .notifications
            .iter()
            .filter_map(|&i| seqs[i as usize].as_deref().map(|s| (i, s)))
            .collect();
        let recipient = Recipient { id, queues: None, mark, filter: None };
        let mut now = resume::post_now(self.connections.as_ref(), &recipient, &candidates).await?;
        now.extend(delivery.notifications.iter().filter(|&&i| seqs[i as usize].is_none()));
        now.sort_unstable();
        Ok(now)
    }
}

/// The queue of the ticket a notification is about (`ticket.queue`).
fn notification_queue(data: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    value.get("ticket")?.get("queue")?.as_str().map(str::to_owned)
}

/// The notifications (by index) `recipient`'s key may read: a notification's ticket queue
/// must be in the key's queues (a notification without one goes only to keys that read
/// every queue). A connection recorded without an owner (in-process tests without an
/// authorizer) receives everything. Of those, a connection with a subscription gets the
/// ones it matches (a payload that is not a notification only goes to connections without
/// one). `None` when it gets nothing.
fn delivery_for(
    recipient: Recipient,
    queues: &[Option<String>],
    parsed: &[Option<Notification>],
) -> Option<Delivery> {
    let mut indices: Vec<u32> = match &recipient.queues {
        None => (0..queues.len() as u32).collect(),
        Some(rights) => {
            let list: Vec<String> = serde_json::from_str(rights).unwrap_or_default();
            let rights = QueueRights::from_list(&list, relay_default_queue());
            (0..queues.len() as u32)
                .filter(|&i| match &queues[i as usize] {
                    Some(q) => rights.allows(q),
                    None => rights == QueueRights::All,
                })
                .collect()
        }
    };
    let subscription = Subscription::from_stored(recipient.filter.as_deref());
    if !subscription.is_everything() {
        indices.retain(|&i| parsed[i as usize].as_ref().is_some_and(|n| subscription.matches(n)));
    }
    (!indices.is_empty()).then_some(Delivery { connection: recipient.id, notifications: indices })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{memory::MemoryStore, Connection, ConnectionOwner};

    fn payload(kind: &str, queue: &str, ticket: u64) -> Payload {
        let n = serde_json::json!({
            "id": format!("ticket-{ticket}-{kind}"), "type": kind,
            "created_at": "2026-01-01T00:00:00Z",
            "ticket": {"id": ticket, "title": "t", "status": "new", "queue": queue, "rt_url": "u"},
        });
        serde_json::to_vec(&n).unwrap_or_default().into()
    }

    #[tokio::test]
    async fn the_plan_intersects_each_subscription_with_the_key_s_queues() {
        let store = Arc::new(MemoryStore::new());
        let now = chrono::Utc::now();
        let owner = |queues: &str| ConnectionOwner { key_id: "k".into(), queues: queues.into() };
        for (id, queues, filter) in [
            ("all", r#"["*"]"#, None),
            ("queue-b", r#"["*"]"#, Some(r#"{"queue":["B"]}"#)),
            ("status", r#"["*"]"#, Some(r#"{"type":["ticket.status_changed"]}"#)),
            // Asks for B, may read only A: gets nothing.
            ("b-but-only-a", r#"["A"]"#, Some(r#"{"queue":["B"]}"#)),
            ("ticket-1-in-a", r#"["A"]"#, Some(r#"{"ticket":[1],"queue":["A"]}"#)),
        ] {
            let c = Connection { id: id.into(), connected_at: now, expires_at: now };
            store.add_owned(&c, &owner(queues)).await.unwrap_or_default();
            assert!(store.subscribe(id, filter).await.unwrap_or_default());
        }
        let batch = vec![
            payload("ticket.created", "A", 1),
            payload("ticket.created", "B", 2),
            payload("ticket.status_changed", "A", 1),
            payload("ticket.status_changed", "B", 2),
        ];
        let plan = Planner::new(store, 2).plan(batch).await.unwrap_or_default();
        let mut got: Vec<(&str, &[u32])> = plan
            .deliveries
            .iter()
            .map(|d| (d.connection.as_str(), d.notifications.as_slice()))
            .collect();
        got.sort();
        let want: Vec<(&str, &[u32])> = vec![
            ("all", &[0, 1, 2, 3]),
            ("queue-b", &[1, 3]),
            ("status", &[2, 3]),
            ("ticket-1-in-a", &[0, 2]),
        ];
        assert_eq!(got, want);
    }
}
