//! Output files written the way a careful Unix tool writes them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::read::file_type_name;
use crate::Error;

/// Refuses an output path that names one of the inputs: `output` is the
/// output's flag and path, `inputs` the inputs' (a flag, or a description
/// such as `the model's config.json`, and a path). Files are compared by
/// device and inode (on Unix; elsewhere by canonical path), so `./data`,
/// `dir/../data`, a hard link and a symbolic link to the data all count as
/// the data. Called before anything is read or written, so that a run
/// never replaces its own input. An output that does not exist yet, or an
/// input that cannot be found (reading it will say why), is no conflict.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let data = dir.path().join("data.txt");
/// std::fs::write(&data, "1\tgood\n")?;
/// let same = dir.path().join(".").join("data.txt");
/// let refused = lrp_io::refuse_output_over_input(("--plot", &same), &[("--data", &data)]);
/// assert!(refused.unwrap_err().to_string().contains("--data"));
/// let other = dir.path().join("plot.svg");
/// assert!(lrp_io::refuse_output_over_input(("--plot", &other), &[("--data", &data)]).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn refuse_output_over_input(output: (&str, &Path), inputs: &[(&str, &Path)]) -> Result<(), Error> {
    let (flag, path) = output;
    let Some(written) = file_identity(path) else {
        return Ok(());
    };
    for &(input, input_path) in inputs {
        if file_identity(input_path).as_ref() == Some(&written) {
            return Err(Error::OutputIsInput {
                path: path.to_path_buf(),
                flag: flag.to_string(),
                input: input.to_string(),
            });
        }
    }
    Ok(())
}

/// What tells one existing file from another: its device and inode (on
/// Unix), else its canonical path; `None` when it does not exist.
#[cfg(unix)]
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}

/// Writes `bytes` to `path` atomically: into a new temporary file beside
/// it, flushed to disk, then renamed over `path`. A failure at any point
/// leaves no half-written file (and an existing file untouched). The
/// details are those of [`AtomicFile`], which writes piece by piece.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    file.commit()
}

/// An output file written the careful way, piece by piece: the bytes go
/// to a new temporary file beside `path`, and only [`AtomicFile::commit`]
/// puts it in place (flushed to disk, then renamed over `path`). Dropped
/// without a commit (an error, a panic), the temporary file is removed and
/// an existing file at `path` stays as it was.
///
/// - The temporary file has an unpredictable name (`.lrp-XXXXXX.tmp`, so
///   any legal target name works) and is created exclusively (`O_EXCL`),
///   so a link planted in the directory is never followed.
/// - Only a regular file (or nothing) at `path` is replaced: a symbolic
///   link, directory, device or FIFO there is an
///   [`Error::NotRegularOutput`], found when the file is created, before
///   anything is written. A replaced file keeps its permissions.
/// - While it is being written, the temporary file is listed for
///   [`remove_pending_temporary_files`], which a program's SIGINT or SIGTERM
///   handler calls so that an interrupted run leaves nothing behind (the
///   `lrp` binary does; a library does not install signal handlers behind
///   its caller's back).
///
/// Writes go straight to the file: wrap it in a `BufWriter` for many small
/// ones (and flush that before the commit).
///
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.jsonl");
/// let mut file = lrp_io::AtomicFile::create(&path)?;
/// for k in 0..3 {
///     writeln!(file, "{{\"k\": {k}}}")?;
/// }
/// assert!(!path.exists(), "nothing is in place before the commit");
/// file.commit()?;
/// assert_eq!(std::fs::read_to_string(&path)?.lines().count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    /// The file being written, in the target's directory (taken by the
    /// commit).
    temporary: Option<tempfile::NamedTempFile>,
    /// The target.
    path: PathBuf,
    /// Its directory.
    dir: PathBuf,
    /// The permissions of the file it replaces, if any.
    existing: Option<std::fs::Permissions>,
}

impl AtomicFile {
    /// Creates the temporary file for an output to `path`, after checking
    /// that `path` is a regular file or nothing.
    pub fn create(path: &Path) -> Result<Self, Error> {
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
        Ok(Self {
            temporary: Some(temporary),
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            existing,
        })
    }

    /// Puts the file in place: its data and permissions flushed to disk,
    /// then renamed over the target. On an error the temporary file is
    /// removed and the target left as it was.
    pub fn commit(mut self) -> Result<(), Error> {
        let fail = |source: std::io::Error| Error::Write {
            path: self.path.clone(),
            source,
        };
        let temporary = self.temporary.take().ok_or_else(|| fail(already_committed()))?;
        let temporary_path = temporary.path().to_path_buf();
        let finished = (|| {
            if let Some(permissions) = &self.existing {
                temporary.as_file().set_permissions(permissions.clone())?;
            }
            temporary.as_file().sync_all()
        })();
        let renamed = {
            let mut pending = lock_pending();
            // On an error the temporary file is dropped, which removes it.
            let renamed = finished.and_then(|()| temporary.persist(&self.path).map(|_| ()).map_err(|e| e.error));
            pending.retain(|p| p != &temporary_path);
            renamed
        };
        renamed.map_err(fail)?;
        // Make the rename itself durable (best effort: not every system lets a
        // directory be opened or synced).
        if let Ok(directory) = std::fs::File::open(&self.dir) {
            let _ = directory.sync_all();
        }
        Ok(())
    }

    /// The temporary file, while it is being written.
    fn file_mut(&mut self) -> std::io::Result<&mut tempfile::NamedTempFile> {
        self.temporary.as_mut().ok_or_else(already_committed)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.file_mut()?.write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file_mut()?.write_all(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file_mut()?.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed: the temporary file goes (NamedTempFile removes it
        // when dropped, right after this), and off the list.
        if let Some(temporary) = &self.temporary {
            lock_pending().retain(|p| p != temporary.path());
        }
    }
}

fn already_committed() -> std::io::Error {
    std::io::Error::other("the output file was already committed")
}

/// Temporary files being written, removed by the signal handler.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock_pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the lock was held leaves a list that is still valid.
    PENDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every temporary file an [`AtomicFile`] is still writing;
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

    /// The pending list is one per process: a test that empties it must not
    /// run while another test's write is listed there.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[test]
    fn pending_files_are_removed() {
        let _alone = one_at_a_time();
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
        let _alone = one_at_a_time();
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
