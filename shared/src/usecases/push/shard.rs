//! Sharding a plan into SQS tasks. Past `PUSH_SHARD_OVER` connections the push does not
//! post itself: it cuts the plan into tasks, each a slice of at most `task_connections`
//! connections carrying the notifications they get, and enqueues them on the FIFO fan-out
//! queue, where worker invocations post them ([`super::worker`]).
//!
//! A connection always lands in the same shard (a stable hash of its id), and a shard is
//! one FIFO message GROUP: SQS hands a group's tasks out one at a time, in order, so each
//! connection still gets its notifications in feed order across batches, and the number of
//! shards is the number of workers that can post at once.
//!
//! Size: an SQS message is at most 256 KiB. A task holds at most `task_bytes` (default
//! 160,000) of notification JSON and at most `task_connections` connection ids; when a
//! slice's notifications are larger they are split into consecutive tasks of the same
//! group (still in order). A delivery that gets every notification of its task lists no
//! indices, which keeps a typical task a few dozen bytes per connection.

use serde::{Deserialize, Serialize};

use super::plan::{Delivery, Payload, Plan};

/// The task format's version (a worker refuses others).
pub const TASK_VERSION: u32 = 1;

/// How the push shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sharding {
    /// Deliver inline up to this many connections in a batch's plan; shard past it.
    pub over: usize,
    /// Shards (FIFO message groups), at least 1.
    pub shards: u32,
    /// Connection ids per task, at least 1.
    pub task_connections: usize,
    /// Notification bytes per task (JSON-escaped), at least 1.
    pub task_bytes: usize,
}

/// Default `PUSH_SHARD_OVER`.
pub const DEFAULT_SHARD_OVER: usize = 2_000;
/// Default `PUSH_SHARDS`.
pub const DEFAULT_SHARDS: u32 = 4;
/// Default `PUSH_TASK_CONNECTIONS`.
pub const DEFAULT_TASK_CONNECTIONS: usize = 500;
/// Default notification bytes per task: with 500 ids of ~20 bytes and their indices it
/// stays well under SQS's 256 KiB.
pub const DEFAULT_TASK_BYTES: usize = 160_000;

impl Default for Sharding {
    fn default() -> Self {
        Self {
            over: DEFAULT_SHARD_OVER,
            shards: DEFAULT_SHARDS,
            task_connections: DEFAULT_TASK_CONNECTIONS,
            task_bytes: DEFAULT_TASK_BYTES,
        }
    }
}

/// One SQS message: a slice of one shard's connections and what to post them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// [`TASK_VERSION`].
    pub v: u32,
    /// The shard (its FIFO message group).
    pub shard: u32,
    /// Failed attempts so far (0 for a task the push enqueued; see [`super::worker`]).
    pub attempt: u32,
    /// The notifications' JSON, in feed order.
    pub notifications: Vec<String>,
    /// Who gets what.
    pub deliveries: Vec<TaskDelivery>,
}

/// A connection in a task; `n` absent means every notification of the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDelivery {
    /// The connection id.
    pub c: String,
    /// Indices into the task's notifications, ascending; absent: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<Vec<u32>>,
}

impl Task {
    /// The FIFO message group of this task's shard.
    pub fn group(&self) -> String {
        group_of(self.shard)
    }

    /// The notifications as payloads and the deliveries with explicit indices, for the
    /// deliver step.
    pub fn unpack(&self) -> (Vec<Payload>, Vec<Delivery>) {
        let all: Vec<u32> = (0..self.notifications.len() as u32).collect();
        let payloads = self.notifications.iter().map(|n| Payload::from(n.as_bytes())).collect();
        let deliveries = self
            .deliveries
            .iter()
            .map(|d| Delivery {
                connection: d.c.clone(),
                notifications: d.n.clone().unwrap_or_else(|| all.clone()),
            })
            .collect();
        (payloads, deliveries)
    }

    /// The task for what is left of this one (`unfinished`, indices into this task's
    /// notifications), one attempt later; only the notifications still needed are kept.
    pub fn remainder(&self, unfinished: &[Delivery]) -> Task {
        let notifications: Vec<Payload> =
            self.notifications.iter().map(|n| Payload::from(n.as_bytes())).collect();
        let mut tasks = pack(self.shard, &notifications, unfinished, usize::MAX);
        let mut task = tasks.pop().unwrap_or_else(|| Task::empty(self.shard));
        task.attempt = self.attempt + 1;
        task
    }

    fn empty(shard: u32) -> Task {
        Task {
            v: TASK_VERSION,
            shard,
            attempt: 0,
            notifications: Vec::new(),
            deliveries: Vec::new(),
        }
    }
}

/// A resume as one SQS message (docs/ARCHITECTURE.md, "Resume"): `$connect` enqueues it
/// for a connection that came with `since`, and a worker runs the resume use case for it.
/// `after` is absent on the first run; a continuation (the replay was cut short at the
/// worker's deadline) carries the position (`seq`) of the last notification it replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeTask {
    /// [`TASK_VERSION`].
    pub v: u32,
    /// The connection to resume.
    pub resume: String,
    /// Replay after this position instead of the connection's `replay_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Continuations so far that made no progress.
    #[serde(default)]
    pub attempt: u32,
}

impl ResumeTask {
    /// The first run for `connection`.
    pub fn new(connection: &str) -> Self {
        Self { v: TASK_VERSION, resume: connection.to_owned(), after: None, attempt: 0 }
    }

    /// Its FIFO message group: one per connection, so resumes run in parallel and a
    /// continuation runs after the run that enqueued it.
    pub fn group(&self) -> String {
        format!("resume-{}", self.resume)
    }
}

/// A message of the fan-out queue: a delivery task or a resume. Told apart by shape (a
/// resume names `resume`), so delivery tasks keep the format they always had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueueMessage {
    /// A connection's resume.
    Resume(ResumeTask),
    /// A slice of a shard's connections and what to post them.
    Deliver(Task),
}

impl QueueMessage {
    /// Its FIFO message group.
    pub fn group(&self) -> String {
        match self {
            QueueMessage::Resume(r) => r.group(),
            QueueMessage::Deliver(t) => t.group(),
        }
    }

    /// Its format version.
    pub fn version(&self) -> u32 {
        match self {
            QueueMessage::Resume(r) => r.v,
            QueueMessage::Deliver(t) => t.v,
        }
    }
}

/// The FIFO message group of `shard`.
pub fn group_of(shard: u32) -> String {
    format!("shard-{shard}")
}

/// The shard of a connection: FNV-1a of its id, so it is the same in every batch.
pub fn shard_of(connection: &str, shards: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in connection.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(shards.max(1))) as u32
}

/// Cuts `plan` into tasks: per shard, in the plan's order, slices of at most
/// `task_connections` connections, each split further so no task carries more than
/// `task_bytes` of notifications. Tasks of one shard come out in the order they must run.
pub fn tasks(plan: &Plan, sharding: &Sharding) -> Vec<Task> {
    let shards = sharding.shards.max(1);
    let mut by_shard: Vec<Vec<Delivery>> = vec![Vec::new(); shards as usize];
    for d in &plan.deliveries {
        by_shard[shard_of(&d.connection, shards) as usize].push(d.clone());
    }
    let mut out = Vec::new();
    for (shard, deliveries) in by_shard.iter().enumerate() {
        for slice in deliveries.chunks(sharding.task_connections.max(1)) {
            out.extend(pack(shard as u32, &plan.notifications, slice, sharding.task_bytes.max(1)));
        }
    }
    out
}

/// Tasks for one slice: the notifications it needs (feed order) in consecutive runs of at
/// most `max_bytes` (at least one notification per run), each with the slice's deliveries
/// restricted to that run.
fn pack(shard: u32, notifications: &[Payload], slice: &[Delivery], max_bytes: usize) -> Vec<Task> {
    let mut needed: Vec<u32> = slice.iter().flat_map(|d| d.notifications.iter().copied()).collect();
    needed.sort_unstable();
    needed.dedup();
    let mut runs: Vec<Vec<u32>> = Vec::new();
    let mut bytes = 0;
    for i in needed {
        let size = notifications.get(i as usize).map_or(0, |n| escaped_len(n));
        match runs.last_mut() {
            Some(run) if bytes + size <= max_bytes => {
                run.push(i);
                bytes += size;
            }
            _ => {
                runs.push(vec![i]);
                bytes = size;
            }
        }
    }
    runs.into_iter()
        .map(|run| {
            let deliveries = slice
                .iter()
                .filter_map(|d| {
                    let n: Vec<u32> = d
                        .notifications
                        .iter()
                        .filter_map(|i| run.binary_search(i).ok().map(|k| k as u32))
                        .collect();
                    if n.is_empty() {
                        return None;
                    }
                    let n = (n.len() < run.len()).then_some(n);
                    Some(TaskDelivery { c: d.connection.clone(), n })
                })
                .collect();
            let notifications = run
                .iter()
                .filter_map(|&i| notifications.get(i as usize))
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            Task { v: TASK_VERSION, shard, attempt: 0, notifications, deliveries }
        })
        .collect()
}

/// The length of `payload` as a JSON string in a task (quotes and escapes included).
fn escaped_len(payload: &[u8]) -> usize {
    serde_json::to_string(&String::from_utf8_lossy(payload)).map_or(payload.len(), |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(connections: usize, notifications: &[&str]) -> Plan {
        Plan {
            notifications: notifications.iter().map(|n| Payload::from(n.as_bytes())).collect(),
            deliveries: (0..connections)
                .map(|i| Delivery {
                    connection: format!("c{i}"),
                    notifications: (0..notifications.len() as u32).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn every_connection_lands_in_exactly_one_task_of_its_own_shard() {
        let p = plan(1000, &["{\"id\":\"a\"}", "{\"id\":\"b\"}"]);
        let s = Sharding { shards: 4, task_connections: 100, ..Sharding::default() };
        let tasks = tasks(&p, &s);
        let mut seen = std::collections::HashMap::new();
        for t in &tasks {
            assert!(t.deliveries.len() <= 100);
            assert_eq!(t.notifications.len(), 2);
            for d in &t.deliveries {
                assert_eq!(shard_of(&d.c, 4), t.shard, "a connection's shard is its task's");
                assert_eq!(d.n, None, "every notification: no indices listed");
                *seen.entry(d.c.clone()).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), 1000);
        assert!(seen.values().all(|&n| n == 1));
        let shards: std::collections::BTreeSet<u32> = tasks.iter().map(|t| t.shard).collect();
        assert_eq!(shards.len(), 4, "1000 ids spread over all four shards");
    }

    #[test]
    fn a_slice_whose_notifications_are_too_big_is_split_in_feed_order() {
        let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100));
        let p = plan(3, &[&big, &big, &big]);
        let s = Sharding { shards: 1, task_bytes: 250, ..Sharding::default() };
        let tasks = tasks(&p, &s);
        // 2 notifications fit 250 bytes, the third goes to a second task of the same shard
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].notifications.len(), 2);
        assert_eq!(tasks[1].notifications.len(), 1);
        assert!(tasks.iter().all(|t| t.shard == 0 && t.deliveries.len() == 3));
        let body = serde_json::to_string(&tasks[0]).unwrap();
        assert!(body.len() < SQS_LIMIT_FOR_TEST);
    }

    const SQS_LIMIT_FOR_TEST: usize = 262_144;

    #[test]
    fn a_resume_and_a_delivery_task_are_told_apart_and_read_back_as_written() {
        let resume = ResumeTask::new("L0SM9cOFvHcCIhw=");
        let body = serde_json::to_string(&QueueMessage::Resume(resume.clone())).unwrap();
        assert_eq!(body, r#"{"v":1,"resume":"L0SM9cOFvHcCIhw=","attempt":0}"#);
        let read: QueueMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(read, QueueMessage::Resume(resume.clone()));
        assert_eq!(read.group(), "resume-L0SM9cOFvHcCIhw=");
        let later =
            ResumeTask { after: Some("0001700000000000#ticket-7-created".into()), ..resume };
        let body = serde_json::to_string(&later).unwrap();
        assert_eq!(
            serde_json::from_str::<QueueMessage>(&body).unwrap(),
            QueueMessage::Resume(later)
        );
        // A delivery task's body (the format the push has always enqueued) is a delivery.
        let task = tasks(&plan(2, &["{\"id\":\"a\"}"]), &Sharding::default()).remove(0);
        let body = serde_json::to_string(&task).unwrap();
        let read: QueueMessage = serde_json::from_str(&body).unwrap();
        assert_eq!(read.group(), task.group());
        assert_eq!(read, QueueMessage::Deliver(task));
        assert!(serde_json::from_str::<QueueMessage>(r#"{"v":1}"#).is_err(), "neither");
    }

    #[test]
    fn partial_deliveries_list_their_indices_and_unpack_to_the_plan() {
        let mut p = plan(2, &["{\"id\":\"a\"}", "{\"id\":\"b\"}", "{\"id\":\"c\"}"]);
        p.deliveries[1].notifications = vec![0, 2];
        let s = Sharding { shards: 1, ..Sharding::default() };
        let tasks = tasks(&p, &s);
        assert_eq!(tasks.len(), 1);
        let (payloads, deliveries) = tasks[0].unpack();
        assert_eq!(payloads, p.notifications);
        assert_eq!(deliveries, p.deliveries);
        assert_eq!(tasks[0].deliveries[1].n, Some(vec![0, 2]));
    }

    #[test]
    fn a_remainder_keeps_only_what_is_left_one_attempt_later() {
        let p = plan(3, &["{\"id\":\"a\"}", "{\"id\":\"b\"}", "{\"id\":\"c\"}"]);
        let task = tasks(&p, &Sharding { shards: 1, ..Sharding::default() }).remove(0);
        let left = [Delivery { connection: "c1".into(), notifications: vec![1, 2] }];
        let rest = task.remainder(&left);
        assert_eq!((rest.shard, rest.attempt), (task.shard, 1));
        assert_eq!(rest.notifications, ["{\"id\":\"b\"}", "{\"id\":\"c\"}"]);
        assert_eq!(rest.deliveries, [TaskDelivery { c: "c1".into(), n: None }]);
    }
}
