//! The one way lrp reads an untrusted file: regular files only, at most a
//! limit's worth of bytes.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, LimitKind};

/// Reads the file at `path` whole, refusing anything larger than `limit`
/// bytes (an [`Error::Limit`] of `kind`) and anything but a regular file
/// (an [`Error::NotRegularFile`]: devices like `/dev/zero` never end, and
/// opening a FIFO blocks until a writer comes). A symbolic link to a
/// regular file is read.
///
/// The file's type is checked before it is opened, and again on the open
/// file (opened without blocking), so a path swapped in between cannot
/// hang the read; at most `limit + 1` bytes are read even if the file
/// grows meanwhile.
pub fn read_file_capped(path: &Path, limit: u64, kind: LimitKind) -> Result<Vec<u8>, Error> {
    let (file, length) = open_file_capped(path, limit, kind)?;
    read_all_capped(path, file, length, limit, kind)
}

/// Opens the regular file at `path` for reading, with the checks of
/// [`read_file_capped`] (a regular file, before and after opening; its
/// length at most `limit`); returns it and its length. For readers that
/// go through a file piece by piece: they count what they read against
/// their own limits, since the file may grow.
pub(crate) fn open_file_capped(path: &Path, limit: u64, kind: LimitKind) -> Result<(File, u64), Error> {
    let fail = |source: std::io::Error| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(fail)?;
    regular(path, &metadata)?;
    if metadata.len() > limit {
        return Err(too_large(path, kind, limit));
    }
    let file = open_without_blocking(path).map_err(fail)?;
    regular(path, &file.metadata().map_err(fail)?)?;
    Ok((file, metadata.len()))
}

/// Reads standard input whole, refusing more than `limit` bytes (messages
/// name it `-`).
pub fn read_stdin_capped(limit: u64, kind: LimitKind) -> Result<Vec<u8>, Error> {
    read_all_capped(Path::new("-"), std::io::stdin().lock(), 0, limit, kind)
}

/// All of `reader` (named `path` in messages; `expected` bytes reserved),
/// or an error if it holds more than `limit` bytes.
fn read_all_capped(
    path: &Path,
    reader: impl Read,
    expected: u64,
    limit: u64,
    kind: LimitKind,
) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(expected.min(limit) as usize);
    read_capped(reader, limit, &mut bytes).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, kind, limit));
    }
    Ok(bytes)
}

/// At most `limit + 1` bytes of `reader` (one more than allowed tells
/// that there was more).
fn read_capped(reader: impl Read, limit: u64, into: &mut Vec<u8>) -> std::io::Result<()> {
    reader.take(limit.saturating_add(1)).read_to_end(into).map(|_| ())
}

pub(crate) fn too_large(path: &Path, kind: LimitKind, limit: u64) -> Error {
    Error::Limit {
        path: path.to_path_buf(),
        line: None,
        kind,
        limit,
    }
}

fn regular(path: &Path, metadata: &Metadata) -> Result<(), Error> {
    if metadata.is_file() {
        Ok(())
    } else {
        Err(Error::NotRegularFile {
            path: PathBuf::from(path),
            found: file_type_name(metadata.file_type()),
        })
    }
}

/// What a file type is, in words.
pub(crate) fn file_type_name(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "FIFO";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_char_device() {
            return "character device";
        }
        if file_type.is_block_device() {
            return "block device";
        }
    }
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else if file_type.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

/// Opens for reading; on Unix with `O_NONBLOCK`, so that opening a FIFO
/// returns at once (a regular file reads the same either way).
fn open_without_blocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_refuses_special_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_file_capped(&file, 5, LimitKind::TextBytes).unwrap(), b"12345");
        let err = read_file_capped(&file, 4, LimitKind::TextBytes).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    limit: 4,
                    kind: LimitKind::TextBytes,
                    ..
                }
            ),
            "{err}"
        );
        let err = read_file_capped(dir.path(), 100, LimitKind::TextBytes).unwrap_err();
        assert!(matches!(err, Error::NotRegularFile { found: "directory", .. }), "{err}");
        #[cfg(unix)]
        {
            let err = read_file_capped(Path::new("/dev/zero"), 100, LimitKind::TextBytes).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::NotRegularFile {
                        found: "character device",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }
}
