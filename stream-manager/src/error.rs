//! Errors returned by the stream manager. Every variant is something a caller can act on;
//! nothing here is a panic in disguise.

use std::path::PathBuf;

/// Result alias for the stream manager.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid stream definition: {0}")]
    InvalidDefinition(String),

    #[error("stream {0:?} does not exist")]
    StreamNotFound(String),

    #[error("stream {0:?} already exists")]
    StreamExists(String),

    #[error("stream {0:?} was deleted")]
    StreamDeleted(String),

    #[error("stream {stream:?} has no export {export:?}")]
    ExportNotFound { stream: String, export: String },

    #[error("stream {name:?} is full ({bytes} of {max_size_bytes} bytes used) and its strategy is reject_new_data")]
    StreamFull {
        name: String,
        bytes: u64,
        max_size_bytes: u64,
    },

    #[error("record of {size} bytes is larger than {limit} bytes ({what})")]
    RecordTooLarge {
        size: u64,
        limit: u64,
        what: &'static str,
    },

    #[error("sequence number {requested} of stream {name:?} was removed by retention; the oldest available is {oldest}")]
    SequenceTrimmed {
        name: String,
        requested: u64,
        oldest: u64,
    },

    #[error("invalid record: {0}")]
    InvalidRecord(String),

    #[error("invalid read request: {0}")]
    InvalidRead(String),

    #[error("stream {name:?} cannot accept writes until it is reopened: {reason}")]
    StorageFailed { name: String, reason: String },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("catalog error: {0}")]
    Catalog(#[from] rusqlite::Error),

    #[error("catalog holds an unreadable definition for stream {name:?}: {reason}")]
    CatalogCorrupt { name: String, reason: String },

    #[error("data directory {} is already in use by another process{}", path.display(), holder.map_or(String::new(), |pid| format!(" (pid {pid}, per its LOCK file)")))]
    DataDirLocked { path: PathBuf, holder: Option<u32> },

    /// A failure inside Ferry (a worker task panicked or was cancelled), not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error came from the disk being full (ENOSPC / EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }

    /// A short, stable code for APIs and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidDefinition(_) => "invalid_definition",
            Error::StreamNotFound(_) => "stream_not_found",
            Error::StreamExists(_) => "stream_exists",
            Error::StreamDeleted(_) => "stream_deleted",
            Error::ExportNotFound { .. } => "export_not_found",
            Error::StreamFull { .. } => "stream_full",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::SequenceTrimmed { .. } => "sequence_trimmed",
            Error::InvalidRead(_) => "invalid_read",
            Error::InvalidRecord(_) => "invalid_record",
            Error::StorageFailed { .. } => "storage_failed",
            Error::Io { .. } => {
                if self.is_disk_full() {
                    "disk_full"
                } else {
                    "io_error"
                }
            }
            Error::Catalog(_) | Error::CatalogCorrupt { .. } => "catalog_error",
            Error::DataDirLocked { .. } => "data_dir_locked",
            Error::Internal(_) => "internal",
        }
    }
}
