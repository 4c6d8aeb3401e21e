//! The local event source mapping: polls the notifications table's DynamoDB stream (moto's
//! Streams API, through `aws-sdk-dynamodbstreams`) and invokes `PushNotifications::handle`
//! in-process with the same `{"Records": [...]}` event Lambda would deliver.
//!
//! It follows the template's mapping: batches of up to `batch_size` records, INSERT-only
//! filter, `ReportBatchItemFailures` (a failed batch is retried from its LOWEST failed
//! sequence number, re-read with `AT_SEQUENCE_NUMBER`), bounded retries with backoff after
//! which the records are reported as sent to the on-failure destination and skipped, and a
//! maximum record age.
//!
//! Position: the last fully processed sequence number of each shard is saved to a
//! checkpoint file after every batch, and a restart resumes `AFTER_SEQUENCE_NUMBER` it.
//! With no checkpoint (or one for another stream) it starts at `TRIM_HORIZON`, unlike the
//! template's `LATEST`: locally the poller starts after the tables exist, so `LATEST` could
//! silently skip a notification written in between, while replay is bounded by the maximum
//! record age. Delivery is at-least-once, as on AWS: a crash between a push and the
//! checkpoint write, or a retried batch, pushes some records again, and clients dedupe by
//! notification id.

use std::{
    cmp::Ordering,
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::{
    config::{timeout::TimeoutConfig, BehaviorVersion, Credentials, Region},
    types::{Record, ShardIteratorType},
    Client,
};
use chrono::{DateTime, Utc};
use rt_relay_shared::handlers::push::PushNotifications;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::config::StreamSettings;

/// How often the shard list is re-read (new shards appear when DynamoDB splits one).
const DESCRIBE_EVERY: Duration = Duration::from_secs(10);
/// Pause after a failed Streams call.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Longest retry backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest a single Streams call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed DynamoDB Streams call.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The call failed: no answer, or the service answered with an error.
    #[error("DynamoDB Streams {op} failed: {source}")]
    Call {
        /// The operation.
        op: &'static str,
        /// What the SDK reported (its Display is terse; the chain has the detail).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The answer lacked something the poller needs.
    #[error("DynamoDB Streams {op} answer is malformed: {message}")]
    Malformed {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl StreamError {
    fn call(op: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StreamError::Call { op, source: Box::new(source) }
    }
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// At this sequence number (a retry).
    At(String),
    /// Just after this sequence number (resuming from a checkpoint).
    After(String),
}

/// One shard of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Shard id.
    pub id: String,
    /// The shard it split from, if any; records of a parent come first.
    pub parent: Option<String>,
}

/// One `GetRecords` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsPage {
    /// Stream records in Lambda's event-record shape (without `eventSourceARN`).
    pub records: Vec<EventRecord>,
    /// Iterator for the next call; `None` once a closed shard is exhausted.
    pub next: Option<String>,
}

/// The DynamoDB Streams client of the local event source mapping (`aws-sdk-dynamodbstreams`
/// against `settings.endpoint`). The poller owns retries, so the SDK's are off; moto checks
/// no signature, so the static credentials only name the access key it expects.
#[derive(Debug, Clone)]
pub struct StreamsClient {
    client: Client,
}

impl StreamsClient {
    /// A client for `settings.endpoint`.
    pub fn new(settings: &StreamSettings) -> Self {
        let conf = aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(settings.endpoint.as_str())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(Credentials::new(
                &settings.access_key_id,
                "local",
                None,
                None,
                "rt-relay-gateway",
            ))
            .retry_config(aws_sdk_dynamodbstreams::config::retry::RetryConfig::disabled())
            .timeout_config(TimeoutConfig::builder().operation_timeout(CALL_TIMEOUT).build())
            .http_client(rt_relay_shared::aws::http_client())
            .build();
        Self { client: Client::from_conf(conf) }
    }

    /// All shards of the stream (following `LastEvaluatedShardId`).
    pub async fn describe_stream(&self, stream_arn: &str) -> Result<Vec<Shard>, StreamError> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| StreamError::call("DescribeStream", e))?;
            let desc = out.stream_description.ok_or(StreamError::Malformed {
                op: "DescribeStream",
                message: "no StreamDescription".into(),
            })?;
            for s in desc.shards.unwrap_or_default() {
                let Some(id) = s.shard_id else { continue };
                shards.push(Shard { id, parent: s.parent_shard_id });
            }
            match desc.last_evaluated_shard_id {
                Some(last) if start.as_deref() != Some(last.as_str()) => start = Some(last),
                _ => return Ok(shards),
            }
        }
    }

    /// An iterator into `shard_id` at `position`.
    pub async fn shard_iterator(
        &self,
        stream_arn: &str,
        shard_id: &str,
        position: &Position,
    ) -> Result<String, StreamError> {
        let (kind, sequence) = match position {
            Position::TrimHorizon => (ShardIteratorType::TrimHorizon, None),
            Position::At(seq) => (ShardIteratorType::AtSequenceNumber, Some(seq.clone())),
            Position::After(seq) => (ShardIteratorType::AfterSequenceNumber, Some(seq.clone())),
        };
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(kind)
            .set_sequence_number(sequence)
            .send()
            .await
            .map_err(|e| StreamError::call("GetShardIterator", e))?;
        out.shard_iterator.ok_or(StreamError::Malformed {
            op: "GetShardIterator",
            message: "no ShardIterator".into(),
        })
    }

    /// Up to `limit` records from `iterator`.
    pub async fn records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, StreamError> {
        let out = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| StreamError::call("GetRecords", e))?;
        let records = out.records.unwrap_or_default().into_iter().map(event_record).collect();
        Ok(RecordsPage { records, next: out.next_shard_iterator })
    }
}

/// A Streams record in the shape Lambda delivers it (`aws_lambda_events`), images mapped by
/// `serde_dynamo`. An absent creation time stays at the epoch (see [`record_age_known`]).
pub fn event_record(record: Record) -> EventRecord {
    let mut out = EventRecord::default();
    out.event_id = record.event_id.unwrap_or_default();
    out.event_name = record.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default();
    out.event_source = record.event_source;
    out.event_version = record.event_version;
    out.aws_region = record.aws_region.unwrap_or_default();
    if let Some(change) = record.dynamodb {
        let c = &mut out.change;
        if let Some(t) = change.approximate_creation_date_time {
            c.approximate_creation_date_time =
                DateTime::from_timestamp(t.secs(), t.subsec_nanos()).unwrap_or_default();
        }
        c.keys = change.keys.unwrap_or_default().into();
        c.new_image = change.new_image.unwrap_or_default().into();
        c.old_image = change.old_image.unwrap_or_default().into();
        c.sequence_number = change.sequence_number;
        c.size_bytes = change.size_bytes.unwrap_or_default();
        c.stream_view_type =
            change.stream_view_type.and_then(|v| serde_json::from_value(v.as_str().into()).ok());
    }
    out
}

/// Whether the record carries its creation time (Streams always sends one; a record
/// without it is never dropped as too old).
fn record_age_known(record: &EventRecord) -> bool {
    record.change.approximate_creation_date_time != DateTime::<Utc>::default()
}

/// Orders DynamoDB sequence numbers (decimal strings of up to 40 digits).
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn sequence_of(record: &EventRecord) -> Option<&str> {
    record.change.sequence_number.as_deref()
}

/// The persisted position: per shard, the last sequence number fully processed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The stream these positions belong to (a re-created table has a new stream).
    pub stream_arn: String,
    /// Shard id → last processed sequence number.
    pub shards: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Reads the checkpoint for `stream_arn` from `path`. A missing file, one for another
    /// stream, or an unreadable one (logged) gives an empty checkpoint: start at the horizon.
    pub fn load(path: &Path, stream_arn: &str) -> Self {
        let empty = Self { stream_arn: stream_arn.to_owned(), shards: BTreeMap::new() };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty,
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read stream checkpoint; starting at TRIM_HORIZON");
                return empty;
            }
        };
        match serde_json::from_str::<Checkpoint>(&text) {
            Ok(c) if c.stream_arn == stream_arn => c,
            Ok(c) => {
                info!(path = %path.display(), old = %c.stream_arn, new = %stream_arn, "checkpoint is for another stream; starting at TRIM_HORIZON");
                empty
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "stream checkpoint is corrupt; starting at TRIM_HORIZON");
                empty
            }
        }
    }

    /// Writes the checkpoint atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

/// What one delivery attempt of a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// Every record was handled (or filtered out).
    Done,
    /// Records from this sequence number on must be retried.
    RetryFrom(String),
}

/// Reads the function's `batchItemFailures` as Lambda does: the lowest failed sequence
/// number; an identifier that is empty or not in the batch fails the whole batch.
pub fn lowest_failure(batch: &[&str], failures: &[Option<String>]) -> Option<String> {
    if failures.is_empty() {
        return None;
    }
    let first = batch.first().map(|s| (*s).to_owned());
    let mut lowest: Option<String> = None;
    for f in failures {
        match f.as_deref() {
            Some(id) if batch.contains(&id) => {
                if lowest.as_deref().is_none_or(|l| compare_sequence(id, l) == Ordering::Less) {
                    lowest = Some(id.to_owned());
                }
            }
            _ => return first,
        }
    }
    lowest
}

#[derive(Debug)]
struct ShardState {
    shard: Shard,
    iterator: Option<String>,
    /// A closed shard whose records are all processed.
    finished: bool,
    /// Failed deliveries of the current batch.
    attempts: u32,
}

/// Polls the stream and drives the push function until told to stop.
#[derive(Debug)]
pub struct StreamPoller {
    client: StreamsClient,
    stream_arn: String,
    push: PushNotifications,
    settings: StreamSettings,
    checkpoint: Checkpoint,
    shards: Vec<ShardState>,
    described_at: Option<Instant>,
}

impl StreamPoller {
    /// A poller for `stream_arn`, resuming from the checkpoint file if it is for this stream.
    pub fn new(stream_arn: String, push: PushNotifications, settings: StreamSettings) -> Self {
        let checkpoint = Checkpoint::load(&settings.checkpoint_path, &stream_arn);
        if !checkpoint.shards.is_empty() {
            info!(path = %settings.checkpoint_path.display(), shards = checkpoint.shards.len(), "resuming the stream after the checkpoint");
        }
        Self {
            client: StreamsClient::new(&settings),
            stream_arn,
            push,
            settings,
            checkpoint,
            shards: Vec::new(),
            described_at: None,
        }
    }

    /// The in-memory checkpoint (what was last saved).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// Runs until `stop` turns true. A batch being delivered is finished first, so its
    /// checkpoint is saved before this returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        info!(stream = %self.stream_arn, "stream poller started");
        while !*stop.borrow() {
            let pause = match self.poll_once(&mut stop).await {
                Ok(true) => Duration::ZERO,
                Ok(false) => self.settings.poll_interval,
                Err(e) => {
                    warn!(error = %rt_relay_shared::http::error_chain(&e), "stream poll failed; will retry");
                    for s in &mut self.shards {
                        s.iterator = None;
                    }
                    self.described_at = None;
                    ERROR_PAUSE
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = crate::stopped(&mut stop) => {}
                }
            }
        }
        info!("stream poller stopped");
    }

    /// One round over the shards; `true` when any records were read.
    async fn poll_once(&mut self, stop: &mut watch::Receiver<bool>) -> Result<bool, StreamError> {
        if self.described_at.is_none_or(|t| t.elapsed() >= DESCRIBE_EVERY) {
            let shards = self.client.describe_stream(&self.stream_arn).await?;
            for shard in shards {
                if !self.shards.iter().any(|s| s.shard.id == shard.id) {
                    debug!(shard = %shard.id, "tracking stream shard");
                    self.shards.push(ShardState {
                        shard,
                        iterator: None,
                        finished: false,
                        attempts: 0,
                    });
                }
            }
            self.described_at = Some(Instant::now());
        }
        let mut busy = false;
        for i in 0..self.shards.len() {
            if *stop.borrow() {
                break;
            }
            let blocked =
                self.shards[i].finished
                    || self.shards[i].shard.parent.as_ref().is_some_and(|p| {
                        self.shards.iter().any(|s| &s.shard.id == p && !s.finished)
                    });
            if !blocked {
                busy |= self.poll_shard(i, stop).await?;
            }
        }
        Ok(busy)
    }

    async fn poll_shard(
        &mut self,
        i: usize,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, StreamError> {
        let shard_id = self.shards[i].shard.id.clone();
        let iterator = match self.shards[i].iterator.clone() {
            Some(it) => it,
            None => {
                let position = match self.checkpoint.shards.get(&shard_id) {
                    Some(seq) => Position::After(seq.clone()),
                    None => Position::TrimHorizon,
                };
                self.client.shard_iterator(&self.stream_arn, &shard_id, &position).await?
            }
        };
        let page = self.client.records(&iterator, self.settings.batch_size).await?;
        if page.records.is_empty() {
            self.shards[i].finished = page.next.is_none();
            self.shards[i].iterator = page.next;
            return Ok(false);
        }
        let sequences: Vec<String> =
            page.records.iter().filter_map(sequence_of).map(str::to_owned).collect();
        let Some(last) = sequences.last().cloned() else {
            return Err(StreamError::Malformed {
                op: "GetRecords",
                message: "records without SequenceNumber".into(),
            });
        };
        match self.deliver(&page.records).await {
            BatchResult::Done => {
                self.shards[i].attempts = 0;
                self.commit(&shard_id, &last);
                self.shards[i].finished = page.next.is_none();
                self.shards[i].iterator = page.next;
            }
            BatchResult::RetryFrom(from) => {
                // Everything before the lowest failure is done.
                if let Some(before) = sequences.iter().take_while(|s| **s != from).last() {
                    self.commit(&shard_id, &before.clone());
                }
                self.shards[i].attempts += 1;
                let attempts = self.shards[i].attempts;
                if attempts > self.settings.max_retries {
                    error!(
                        shard = %shard_id, first_sequence = %from, last_sequence = %last, attempts,
                        "batch failed after all retries; records sent to the on-failure destination and skipped \
                         (clients catch up through GET /notifications)"
                    );
                    self.shards[i].attempts = 0;
                    self.commit(&shard_id, &last);
                    self.shards[i].finished = page.next.is_none();
                    self.shards[i].iterator = page.next;
                } else {
                    let backoff = self
                        .settings
                        .retry_backoff
                        .saturating_mul(1u32 << (attempts - 1).min(16))
                        .min(MAX_BACKOFF);
                    warn!(shard = %shard_id, from_sequence = %from, attempt = attempts, backoff_ms = backoff.as_millis() as u64, "batch item failures; retrying from the lowest failed record");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = crate::stopped(stop) => {
                            // Resume from the checkpoint (just before `from`) on the next start.
                            self.shards[i].iterator = None;
                            return Ok(true);
                        }
                    }
                    self.shards[i].iterator = Some(
                        self.client
                            .shard_iterator(&self.stream_arn, &shard_id, &Position::At(from))
                            .await?,
                    );
                }
            }
        }
        Ok(true)
    }

    /// Filters a batch as the mapping does and invokes the push function with the rest.
    async fn deliver(&self, records: &[EventRecord]) -> BatchResult {
        let now = Utc::now();
        let max_age = chrono::Duration::from_std(self.settings.max_record_age)
            .unwrap_or(chrono::Duration::MAX);
        let mut selected = Vec::new();
        for record in records {
            // The template's FilterCriteria: only INSERTs reach the function.
            if record.event_name != "INSERT" {
                continue;
            }
            if record_age_known(record)
                && now - record.change.approximate_creation_date_time > max_age
            {
                warn!(sequence = ?sequence_of(record), "stream record is older than the maximum record age; sent to the on-failure destination");
                continue;
            }
            let mut record = record.clone();
            record.event_source_arn = Some(self.stream_arn.clone());
            selected.push(record);
        }
        if selected.is_empty() {
            return BatchResult::Done;
        }
        let batch: Vec<String> =
            selected.iter().filter_map(sequence_of).map(str::to_owned).collect();
        let mut event = Event::default();
        event.records = selected;
        let count = batch.len();
        let started = Instant::now();
        let response = self.push.handle(event).await;
        let failures: Vec<Option<String>> =
            response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        debug!(
            records = count,
            failures = failures.len(),
            ms = started.elapsed().as_millis() as u64,
            "push function invoked"
        );
        match lowest_failure(&refs, &failures) {
            None => BatchResult::Done,
            Some(from) => BatchResult::RetryFrom(from),
        }
    }

    fn commit(&mut self, shard_id: &str, sequence: &str) {
        if self.checkpoint.shards.get(shard_id).map(String::as_str) == Some(sequence) {
            return;
        }
        self.checkpoint.shards.insert(shard_id.to_owned(), sequence.to_owned());
        if let Err(e) = self.checkpoint.save(&self.settings.checkpoint_path) {
            error!(path = %self.settings.checkpoint_path.display(), error = %e, "cannot save the stream checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_numerically() {
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence("1100000000017454423010", "1100000000017454423009"),
            Ordering::Greater
        );
        assert_eq!(compare_sequence("007", "7"), Ordering::Equal);
    }

    #[test]
    fn the_lowest_failure_wins_and_unknown_ids_fail_the_batch() {
        let batch = ["10", "11", "12", "9"];
        assert_eq!(lowest_failure(&batch, &[]), None);
        assert_eq!(
            lowest_failure(&batch, &[Some("12".into()), Some("11".into())]),
            Some("11".into())
        );
        assert_eq!(
            lowest_failure(&batch, &[Some("12".into()), Some("9".into())]),
            Some("9".into())
        );
        assert_eq!(lowest_failure(&batch, &[Some("99".into())]), Some("10".into()));
        assert_eq!(lowest_failure(&batch, &[None]), Some("10".into()));
        assert_eq!(lowest_failure(&batch, &[Some(String::new())]), Some("10".into()));
    }

    #[test]
    fn checkpoint_round_trips_and_ignores_other_streams() {
        let dir = std::env::temp_dir().join(format!("rt-relay-gw-{}", crate::ids::connection_id()));
        let path = dir.join("sub").join("cp.json");
        assert_eq!(
            Checkpoint::load(&path, "arn:a"),
            Checkpoint { stream_arn: "arn:a".into(), shards: BTreeMap::new() }
        );
        let mut c = Checkpoint::load(&path, "arn:a");
        c.shards.insert("shard-1".into(), "42".into());
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path, "arn:a"), c);
        assert!(Checkpoint::load(&path, "arn:b").shards.is_empty());
        std::fs::write(&path, "{not json").unwrap();
        assert!(Checkpoint::load(&path, "arn:a").shards.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
