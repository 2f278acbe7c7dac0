//! Output files written the way a careful Unix tool writes them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::read::file_type_name;
use crate::Error;

/// Writes `bytes` to `path` atomically: into a new temporary file beside
/// it, flushed to disk, then renamed over `path`. A failure at any point
/// leaves no half-written file (and an existing file untouched).
///
/// - The temporary file has an unpredictable name (`.lrp-XXXXXX.tmp`, so
///   any legal target name works) and is created exclusively (`O_EXCL`),
///   so a link planted in the directory is never followed.
/// - Only a regular file (or nothing) at `path` is replaced: a symbolic
///   link, directory, device or FIFO there is an
///   [`Error::NotRegularOutput`]. A replaced file keeps its permissions.
/// - While it is being written, the temporary file is listed for
///   [`remove_pending_temporary_files`], which a program's SIGINT or SIGTERM
///   handler calls so that an interrupted run leaves nothing behind (the
///   `lrp` binary does; a library does not install signal handlers behind
///   its caller's back).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let fail = |source: std::io::Error| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let existing = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => Some(metadata.permissions()),
        Ok(metadata) => {
            return Err(Error::NotRegularOutput {
                path: path.to_path_buf(),
                found: file_type_name(metadata.file_type()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(fail(e)),
    };
    if path.file_name().is_none() {
        return Err(fail(std::io::Error::other("not a file name")));
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = {
        let mut pending = lock_pending();
        let mut builder = tempfile::Builder::new();
        builder.prefix(".lrp-").suffix(".tmp");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // New files get the usual 0666 less the umask.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temporary = builder.tempfile_in(dir).map_err(fail)?;
        pending.push(temporary.path().to_path_buf());
        temporary
    };
    let written = (|| {
        temporary.write_all(bytes)?;
        if let Some(permissions) = existing {
            temporary.as_file().set_permissions(permissions)?;
        }
        temporary.as_file().sync_all()
    })();
    let temporary_path = temporary.path().to_path_buf();
    let result = match written {
        Ok(()) => {
            let _pending = lock_pending();
            temporary.persist(path).map(|_| ()).map_err(|e| e.error)
        }
        // Dropping the temporary file removes it.
        Err(e) => Err(e),
    };
    lock_pending().retain(|p| p != &temporary_path);
    result.map_err(fail)?;
    // Make the rename itself durable (best effort: not every system lets a
    // directory be opened or synced).
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// Temporary files being written, removed by the signal handler.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the lock was held leaves a list that is still valid.
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file [`write_atomically`] is still writing;
/// returns how many were removed. Meant for a signal handler just before
/// the process exits: it holds the list's lock to the end, so a file is
/// either still listed (and removed here) or already renamed into place,
/// and a write that has not started yet waits for the lock.
pub fn remove_pending_temporary_files() -> usize {
    let mut pending = lock_pending();
    let removed = pending.iter().filter(|p| std::fs::remove_file(p).is_ok()).count();
    pending.clear();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".lrp-pending.tmp");
        std::fs::write(&file, b"half").unwrap();
        lock_pending().push(file.clone());
        assert_eq!(remove_pending_temporary_files(), 1);
        assert!(!file.exists());
        assert!(lock_pending().is_empty());
    }

    #[test]
    fn replaces_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a".repeat(255));
        write_atomically(&target, b"one").unwrap();
        write_atomically(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let err = write_atomically(dir.path(), b"x").unwrap_err();
        assert!(
            matches!(err, Error::NotRegularOutput { found: "directory", .. }),
            "{err}"
        );
        #[cfg(unix)]
        {
            let victim = dir.path().join("victim");
            std::fs::write(&victim, b"keep").unwrap();
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&victim, &link).unwrap();
            let err = write_atomically(&link, b"x").unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::NotRegularOutput {
                        found: "symbolic link",
                        ..
                    }
                ),
                "{err}"
            );
            assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
            "{names:?}"
        );
    }
}
