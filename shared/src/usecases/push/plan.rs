//! The PLAN step of the push: for one stream batch, which connections get which of its
//! notifications, in feed order. It reads the connections that may see the batch ONCE per
//! batch, never once per record: the `by-channel` index, page by page, once per distinct
//! queue in the batch plus once for the connections that may see every queue
//! ([`EVERY_QUEUE`]); a queue nobody watches costs one empty read and no posts. It does no
//! posting: [`super::deliver`] does that.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};

use crate::{
    feed::{Position, Subscription},
    model::Notification,
    store::{ConnectionStore, FeedMark, PageAfter, Recipient, StoreError, EVERY_QUEUE},
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

    /// Plans `notifications` (one batch, in feed order): reads the connections on the
    /// batch's channels, each once, and gives each the notifications its key may read and
    /// its filter wants (the index narrows the read; these checks decide); a resuming
    /// connection's are held for its resume or cut at its bound ([`resume::post_now`]).
    pub async fn plan(&self, notifications: Vec<Payload>) -> Result<Plan, StoreError> {
        let queues: Vec<Option<String>> =
            notifications.iter().map(|n| notification_queue(n)).collect();
        let parsed: Vec<Option<Notification>> =
            notifications.iter().map(|n| serde_json::from_slice(n).ok()).collect();
        let seqs: Vec<Option<String>> =
            parsed.iter().map(|n| n.as_ref().map(|n| Position::of(n).seq())).collect();
        let mut channels: BTreeSet<&str> = queues.iter().flatten().map(String::as_str).collect();
        if !notifications.is_empty() {
            channels.insert(EVERY_QUEUE);
        }
        let mut deliveries = Vec::new();
        // A connection is on one channel per queue it may see: plan it once.
        let mut planned: HashSet<String> = HashSet::new();
        for channel in channels {
            let mut page = PageAfter::first(self.page_size);
            loop {
                let (recipients, next) = self.connections.audience(channel, &page).await?;
                for r in recipients {
                    if !planned.insert(r.id.clone()) {
                        continue;
                    }
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
                    Some(c) => page.after = Some(c),
                    None => break,
                }
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
    use crate::store::{
        channels_of, memory::MemoryStore, Connection, ConnectionOwner, EVERY_QUEUE, MAX_CHANNELS,
    };

    fn payload(kind: &str, queue: &str, ticket: u64) -> Payload {
        let n = serde_json::json!({
            "id": format!("ticket-{ticket}-{kind}"), "type": kind,
            "created_at": "2026-01-01T00:00:00Z",
            "ticket": {"id": ticket, "title": "t", "status": "new", "queue": queue, "rt_url": "u"},
        });
        serde_json::to_vec(&n).unwrap_or_default().into()
    }

    /// The plan's deliveries as (connection, notification indices), sorted by connection.
    fn by_connection(plan: &Plan) -> Vec<(&str, &[u32])> {
        let mut got: Vec<(&str, &[u32])> = plan
            .deliveries
            .iter()
            .map(|d| (d.connection.as_str(), d.notifications.as_slice()))
            .collect();
        got.sort();
        got
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
        let got = by_connection(&plan);
        let want: Vec<(&str, &[u32])> = vec![
            ("all", &[0, 1, 2, 3]),
            ("queue-b", &[1, 3]),
            ("status", &[2, 3]),
            ("ticket-1-in-a", &[0, 2]),
        ];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_batch_reads_each_of_its_queues_once_and_an_unwatched_queue_costs_nothing() {
        let store = Arc::new(MemoryStore::new());
        let now = chrono::Utc::now();
        for (id, queues, filter) in [
            ("a", r#"["A"]"#, None),
            ("a-and-c", r#"["A","C"]"#, None),
            ("all-asks-a", r#"["*"]"#, Some(r#"{"queue":["A"]}"#)),
        ] {
            let c = Connection { id: id.into(), connected_at: now, expires_at: now };
            let owner = ConnectionOwner { key_id: "k".into(), queues: queues.into() };
            store.add_owned(&c, &owner).await.unwrap_or_default();
            assert!(store.subscribe(id, filter).await.unwrap_or_default());
        }
        let planner = Planner::new(store.clone(), 10);

        // GIVEN a batch whose only queue nobody may see or asked for
        let batch = vec![payload("ticket.created", "B", 1), payload("ticket.replied", "B", 1)];
        let plan = planner.plan(batch).await.unwrap_or_default();
        // THEN no connection is read and nothing is posted
        assert_eq!(plan.posts(), 0);
        let reads = store.take_audience_reads();
        assert_eq!(reads, [("*".to_owned(), 0), ("B".to_owned(), 0)], "one empty read each");

        // GIVEN a batch over three queues, one of them twice
        let batch = vec![
            payload("ticket.created", "A", 2),
            payload("ticket.created", "C", 3),
            payload("ticket.created", "B", 4),
            payload("ticket.replied", "A", 2),
        ];
        let plan = planner.plan(batch).await.unwrap_or_default();
        // THEN each queue (and the every-queue channel) is read once for the whole batch
        let mut channels: Vec<String> =
            store.take_audience_reads().into_iter().map(|(c, _)| c).collect();
        channels.sort();
        assert_eq!(channels, ["*", "A", "B", "C"]);
        // AND a connection on two of them is planned once, with both queues' notifications
        let got = by_connection(&plan);
        let want: Vec<(&str, &[u32])> =
            vec![("a", &[0, 3]), ("a-and-c", &[0, 1, 3]), ("all-asks-a", &[0, 3])];
        assert_eq!(got, want);
        assert_eq!(plan.posts(), 7);
    }

    fn set(channels: &[&str]) -> BTreeSet<String> {
        channels.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn a_connection_is_on_the_queues_it_may_see_or_on_every_queue() {
        let all = Some(r#"["*"]"#);
        let a_b = Some(r#"["A","B"]"#);
        assert_eq!(channels_of(None, None), set(&[EVERY_QUEUE]));
        assert_eq!(channels_of(all, None), set(&[EVERY_QUEUE]));
        assert_eq!(channels_of(all, Some(r#"{"type":["ticket.replied"]}"#)), set(&[EVERY_QUEUE]));
        assert_eq!(channels_of(all, Some(r#"{"queue":["C"]}"#)), set(&["C"]));
        assert_eq!(channels_of(a_b, None), set(&["A", "B"]));
        assert_eq!(channels_of(a_b, Some(r#"{"queue":["B","C"]}"#)), set(&["B"]));
        assert!(channels_of(a_b, Some(r#"{"queue":["C"]}"#)).is_empty(), "asks only for C");
        let many: Vec<String> = (0..=MAX_CHANNELS).map(|i| format!("Q{i}")).collect();
        let many = serde_json::to_string(&many).unwrap_or_default();
        assert_eq!(channels_of(Some(&many), None), set(&[EVERY_QUEUE]));
    }

    #[test]
    fn every_notification_a_connection_may_get_is_on_one_of_its_channels() {
        let rights = [None, Some(r#"["*"]"#), Some(r#"["A"]"#), Some(r#"["A","B"]"#)];
        let filters = [
            None,
            Some(r#"{"queue":["A"]}"#),
            Some(r#"{"queue":["B"],"type":["ticket.replied"]}"#),
            Some(r#"{"type":["ticket.created"],"ticket":[3]}"#),
            Some(r#"{"queue":["A","C"],"status":["new"]}"#),
        ];
        let batch = [
            payload("ticket.created", "A", 3),
            payload("ticket.replied", "B", 4),
            payload("ticket.created", "C", 3),
        ];
        let queues: Vec<Option<String>> = batch.iter().map(|n| notification_queue(n)).collect();
        let parsed: Vec<Option<Notification>> =
            batch.iter().map(|n| serde_json::from_slice(n).ok()).collect();
        let mut gets = 0;
        for queues_right in rights {
            for filter in filters {
                let channels = channels_of(queues_right, filter);
                let recipient = Recipient {
                    id: "c".into(),
                    queues: queues_right.map(str::to_owned),
                    mark: FeedMark::Live,
                    filter: filter.map(str::to_owned),
                };
                let got = delivery_for(recipient, &queues, &parsed).map(|d| d.notifications);
                for i in got.unwrap_or_default() {
                    gets += 1;
                    let queue = queues[i as usize].clone().unwrap_or_default();
                    assert!(
                        channels.contains(&queue) || channels.contains(EVERY_QUEUE),
                        "{queues_right:?} {filter:?} gets {queue}: {channels:?}"
                    );
                }
            }
        }
        assert!(gets > 10, "the cases cover notifications a connection gets: {gets}");
    }
}
