//! Files the ETL writes outside the tables directory (generated history, tallies, scored
//! campaign lists): written in full to a temporary file beside the target, then renamed into
//! place, so a reader sees the old file or the new one and never half of one.

use std::fs::File;
use std::io;
use std::path::Path;

use tempfile::NamedTempFile;
use voucher_shared::publish::fsync_dir;

/// The directory a file at `path` goes in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes `path` atomically: `write` fills a temporary file in the same directory, which is
/// then made readable by others (0644, as a file created the usual way; temporary files are
/// 0600), fsynced, renamed over `path`, and the directory fsynced.
pub fn write_atomically<E>(
    path: &Path,
    io_err: impl Fn(io::Error) -> E,
    write: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    let dir = parent_dir(path);
    let prefix = format!(
        ".{}.",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("output")
    );
    let mut temp = NamedTempFile::with_prefix_in(prefix, dir).map_err(&io_err)?;
    write(temp.as_file_mut())?;
    readable(temp.as_file()).map_err(&io_err)?;
    temp.as_file().sync_all().map_err(&io_err)?;
    temp.persist(path).map_err(|e| io_err(e.error))?;
    fsync_dir(dir).map_err(io_err)
}

#[cfg(unix)]
fn readable(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
}

#[cfg(not(unix))]
fn readable(_: &File) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_appears_whole_and_readable_or_not_at_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.json");
        write_atomically(&path, |e| e, |f| io::Write::write_all(f, b"{}")).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"{}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        let failed: Result<(), io::Error> = write_atomically(
            &path,
            |e| e,
            |f| {
                io::Write::write_all(f, b"half")?;
                Err(io::Error::other("stopped"))
            },
        );
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"{}", "old file kept");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }
}
