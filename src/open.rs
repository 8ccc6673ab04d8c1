//! `OpenOptions`: which queue files an `open` trusts.
//!
//! A queue file is a channel between processes, and whoever can write it can
//! read every message, inject messages, choose the configuration and, by
//! truncating it, kill every process that maps it with SIGBUS. In a
//! directory that other users can write (`/dev/shm`, `/tmp`), another user
//! can create the file first, with a mode of their choosing, and wait for
//! the service to open it. So by default `open` (and the open half of
//! `open_or_create`) refuses a file that another user owns or that every
//! user may write; a deployment that shares a queue between users says so
//! explicitly (design.md §8).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::queue::{Config, Queue};

/// How to open a queue file: which owners and modes to trust.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("orders.q");
/// # shmq::Queue::create(&path, &shmq::Config::default())?;
/// use shmq::OpenOptions;
/// // The queue is shared with a service running as another user (their
/// // group may write it, mode 0660): trust the file's owner explicitly.
/// let q = OpenOptions::new().allow_other_owner(true).open(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    allow_other_owner: bool,
    allow_world_writable: bool,
}

impl OpenOptions {
    /// The default: trust only files owned by this process's effective user
    /// (or by root) that other users cannot write.
    pub fn new() -> OpenOptions {
        OpenOptions::default()
    }

    /// Trust a file owned by another user: that user can read and forge
    /// every message, so they must be trusted (a service sharing the queue
    /// through a common group, say).
    pub fn allow_other_owner(mut self, allow: bool) -> OpenOptions {
        self.allow_other_owner = allow;
        self
    }

    /// Trust a file every user on the host may write (mode `o+w`): any local
    /// user can then read, forge or destroy the queue's messages.
    pub fn allow_world_writable(mut self, allow: bool) -> OpenOptions {
        self.allow_world_writable = allow;
        self
    }

    /// Open the queue at `path` (see [`Queue::open`]).
    ///
    /// # Errors
    ///
    /// As [`Queue::open`], and [`Error::Untrusted`] for a file these options
    /// do not trust.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Queue> {
        Queue::open_with(path.as_ref(), self)
    }

    /// Open the queue at `path`, creating it with `config` if there is none
    /// (see [`Queue::open_or_create`]). A queue this call creates is this
    /// user's, with `config.mode`.
    ///
    /// # Errors
    ///
    /// As [`Queue::open_or_create`], and [`Error::Untrusted`] for an
    /// existing file these options do not trust.
    pub fn open_or_create(&self, path: impl AsRef<Path>, config: &Config) -> Result<Queue> {
        Queue::open_or_create_with(path.as_ref(), config, self)
    }

    /// Refuse `file` (opened at `path`) unless these options trust it.
    pub(crate) fn check_trust(&self, path: &Path, file: &File) -> Result<()> {
        let m = file.metadata().map_err(|source| Error::Io {
            op: "stat",
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: geteuid has no arguments and cannot fail.
        let me = unsafe { libc::geteuid() };
        let untrusted = |why: String| {
            Err(Error::Untrusted {
                path: path.to_path_buf(),
                why,
            })
        };
        if !self.allow_other_owner && m.uid() != me && m.uid() != 0 {
            return untrusted(format!(
                "it is owned by uid {}, not by this user (uid {me}); that user can read and forge its messages",
                m.uid()
            ));
        }
        if !self.allow_world_writable && m.mode() & 0o002 != 0 {
            return untrusted(format!(
                "every user may write it (mode {:o}); any local user can read, forge or destroy its messages",
                m.mode() & 0o7777
            ));
        }
        Ok(())
    }
}
