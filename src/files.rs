//! Small state files (saved queries, tail positions) replaced whole or not at all: a crash
//! or a full disk mid-write leaves the previous file, never half of the new one.

use std::io::Write;
use std::path::Path;

/// Replaces the file at `path` with `bytes`: written beside it, synced, then renamed over it.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
