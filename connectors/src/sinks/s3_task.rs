//! S3 export task sink (`kind = "s3_task"`, Greengrass' `s3TaskExecutor`): every record of the
//! stream is a task naming a local file, a bucket and a key (task.rs); the sink uploads that
//! file (upload.rs; the key's `!{timestamp:…}` placeholders resolved at upload time by
//! key_template.rs) and appends the task's progress to the status stream (status.rs).
//!
//! One task per batch, in the stream's order: the exporter's checkpoint moves past a task once
//! it succeeded, or failed for good. Per task:
//!
//! ```text
//! not a valid task, file missing or outside input_dirs   Failure status; SinkError::Permanent
//! (first attempt)                                        InProgress status
//! upload done                                            Success status; Ok
//! upload failed, retrying may help (network, 5xx)        Warning status (once per task); Retryable
//! upload refused (no such bucket, access denied)         Failure status (+ Warning if the
//!                                                        multipart abort failed); Permanent
//! ```
//! A failed task is a permanent error to the exporter: with `on_permanent_error = "skip"` (what
//! exports defined through the Greengrass port get) the next task runs, as in Greengrass, and
//! the app may append the task again. Uploads are not counted against the export bandwidth
//! cap (only the task messages are).

mod key_template;
mod status;
mod task;
mod upload;

use std::path::PathBuf;
use std::sync::Mutex;

use ferry_stream_manager::definition::S3TaskSettings;
use ferry_stream_manager::export::{Batch, SendFuture, Sink, SinkError, SinkLimits};
use ferry_stream_manager::time::{lock, now_ms};
use ferry_stream_manager::Record;

use super::aws::{AwsClient, SinkEnv};
use super::SinkConfigError;
use status::{Event, StatusWriter, TaskStatus};
use task::TaskDefinition;
use upload::{Sizes, Target};

/// A task message is small JSON; anything larger is refused by the exporter as it is.
const MAX_TASK_BYTES: u64 = 1024 * 1024;

pub struct S3TaskSink {
    client: AwsClient,
    settings: S3TaskSettings,
    status: StatusWriter,
    /// The task last reported InProgress, and whether a Warning followed: a task retried for
    /// an hour reports each once.
    announced: Mutex<Option<(u64, bool)>>,
}

impl S3TaskSink {
    pub fn new(
        settings: &S3TaskSettings,
        stream: &str,
        export: &str,
        env: &SinkEnv,
    ) -> Result<S3TaskSink, SinkConfigError> {
        settings.validate().map_err(|e| e.within("settings"))?;
        Ok(S3TaskSink {
            client: AwsClient::new(&settings.aws, "s3", env)?,
            status: StatusWriter {
                streams: env.local_streams.clone(),
                status_stream: settings.status_stream.clone(),
                level: settings.status_level,
                export: export.to_owned(),
                stream: stream.to_owned(),
            },
            settings: settings.clone(),
            announced: Mutex::new(None),
        })
    }

    async fn report(
        &self,
        status: TaskStatus,
        task: Option<&TaskDefinition>,
        seq: u64,
        message: &str,
    ) {
        self.status
            .write(Event {
                status,
                task,
                sequence_number: seq,
                message,
                timestamp_ms: now_ms(),
            })
            .await;
    }

    /// True the first time it is asked for `seq` (and `warning`).
    fn first_time(&self, seq: u64, warning: bool) -> bool {
        let mut announced = lock(&self.announced);
        let first = match *announced {
            Some((s, warned)) if s == seq => warning && !warned,
            _ => true,
        };
        if first {
            let warned = warning || matches!(*announced, Some((s, true)) if s == seq);
            *announced = Some((seq, warned));
        }
        first
    }

    async fn run(&self, record: &Record) -> Result<(), SinkError> {
        let seq = record.sequence_number;
        let task = match task::parse(&record.payload) {
            Ok(t) => t,
            Err(reason) => return self.fail(None, seq, reason, None).await,
        };
        if self.first_time(seq, false) {
            let msg = format!(
                "uploading {} to s3://{}/{}",
                task.input_url, task.bucket, task.key
            );
            self.report(TaskStatus::InProgress, Some(&task), seq, &msg)
                .await;
        }
        // Resolving links and reading the size touch the disk: off the runtime's threads.
        let (url, dirs, key) = (
            task.input_url.clone(),
            self.settings.input_dirs.clone(),
            task.key.clone(),
        );
        let prepared = tokio::task::spawn_blocking(move || prepare(&url, &dirs, &key))
            .await
            .unwrap_or_else(|e| Err(format!("preparing the task failed: {e}")));
        let (path, size, key) = match prepared {
            Ok(p) => p,
            Err(reason) => return self.fail(Some(&task), seq, reason, None).await,
        };
        let target = Target {
            bucket: &task.bucket,
            key: &key,
            metadata: task
                .user_metadata
                .iter()
                .flatten()
                .map(|(k, v)| (format!("x-amz-meta-{}", k.to_ascii_lowercase()), v.clone()))
                .collect(),
        };
        let sizes = Sizes {
            multipart_threshold_bytes: self.settings.multipart_threshold_bytes,
            part_size_bytes: self.settings.part_size_bytes,
        };
        match upload::upload(&self.client, &target, &path, size, sizes).await {
            Ok(()) => {
                let msg = format!(
                    "uploaded {} ({size} bytes) to s3://{}/{key}",
                    path.display(),
                    task.bucket
                );
                self.report(TaskStatus::Success, Some(&task), seq, &msg)
                    .await;
                Ok(())
            }
            Err(f) => match f.error {
                SinkError::Permanent { reason } => {
                    self.fail(Some(&task), seq, reason, f.cleanup).await
                }
                retryable => {
                    if self.first_time(seq, true) {
                        let msg = format!("upload failed, retrying: {retryable}");
                        self.report(TaskStatus::Warning, Some(&task), seq, &msg)
                            .await;
                    }
                    Err(retryable)
                }
            },
        }
    }

    async fn fail(
        &self,
        task: Option<&TaskDefinition>,
        seq: u64,
        reason: String,
        cleanup: Option<String>,
    ) -> Result<(), SinkError> {
        if let Some(c) = cleanup {
            self.report(TaskStatus::Warning, task, seq, &c).await;
        }
        self.report(TaskStatus::Failure, task, seq, &reason).await;
        Err(SinkError::Permanent {
            reason: format!("S3 task {seq}: {reason}"),
        })
    }
}

/// The input file's path and size, and the key with its placeholders resolved now.
fn prepare(url: &str, input_dirs: &[PathBuf], key: &str) -> Result<(PathBuf, u64, String), String> {
    let path = task::input_path(url, input_dirs)?;
    let size = std::fs::metadata(&path)
        .map_err(|e| format!("input file {}: {e}", path.display()))?
        .len();
    Ok((path, size, key_template::render(key, now_ms())?))
}

impl Sink for S3TaskSink {
    fn limits(&self) -> SinkLimits {
        SinkLimits {
            max_records: 1,
            max_bytes: MAX_TASK_BYTES,
            max_record_bytes: MAX_TASK_BYTES,
        }
    }

    fn send<'a>(&'a self, batch: &'a Batch) -> SendFuture<'a> {
        Box::pin(async move {
            // One record per batch (the limits say so); more would run in order.
            for record in &batch.records {
                self.run(record).await?;
            }
            Ok(())
        })
    }
}
