//! `--pid-file`: a file that always names the process serving the port.
//!
//! The serving process writes it once it is ready; a hot upgrade's successor
//! replaces it when it takes over; a process that handed over to nobody
//! removes it at exit if it still names that process. (One that handed over
//! never touches it again: between its read and its unlink, the successor
//! may rename its own pid into place.) Writes go to a temporary file in the same directory that is
//! then renamed over the old one, so a reader (`kill -USR2 $(cat …)`) never
//! sees a half-written or empty file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Fails, with one line, when no file can be created in the pid file's
/// directory. Checked at start, before anything binds, like a port in use.
pub(crate) fn check(path: &Path) -> Result<(), String> {
    // Not create_new: a temporary file left by a crash (same pid: always 1
    // in a container) must not block every later start.
    let tmp = temp_path(path, std::process::id());
    let created = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(format!("cannot write the pid file {}: {}", path.display(), describe(&e))),
    }
}

/// Atomically makes `path` contain `pid`.
pub(crate) fn write(path: &Path, pid: u32) -> io::Result<()> {
    let tmp = temp_path(path, pid);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        writeln!(f, "{pid}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The pid the file names, if it exists and holds one.
pub(crate) fn read(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes `path` if it still names `pid`; true if removed.
pub(crate) fn remove_if_ours(path: &Path, pid: u32) -> bool {
    read(path) == Some(pid) && std::fs::remove_file(path).is_ok()
}

fn temp_path(path: &Path, pid: u32) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{pid}.tmp"))
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "its directory does not exist".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_atomically_and_removed_only_by_its_owner() {
        let dir = std::env::temp_dir().join(format!("pounce-pidfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pounce.pid");
        check(&path).unwrap();
        write(&path, 41).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "41\n");
        write(&path, 42).unwrap();
        assert_eq!(read(&path), Some(42));
        assert!(!remove_if_ours(&path, 41), "names 42: 41 must leave it");
        assert!(path.exists());
        assert!(remove_if_ours(&path, 42));
        assert!(!path.exists());
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
        let e = check(&dir.join("pounce.pid")).unwrap_err();
        assert!(e.ends_with("its directory does not exist"), "{e}");
    }
}
