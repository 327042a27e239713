//! Component output: every line of a child's stdout and stderr goes to tracing (with
//! `component` and `stream` fields) and to a size-rotated file per component.
//!
//! Lines are capped, so a child that writes megabytes without a newline cannot make kubesup's
//! memory grow; the rest of such a line is dropped and the cut is marked.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncBufReadExt;
use tracing::{info, warn};

/// Longest line kept, in bytes.
const MAX_LINE: usize = 16 * 1024;

/// An append-only log file that rotates to `.1`, `.2`, ... at `max_bytes`.
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    keep: u32,
}

impl RotatingFile {
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file: Some(file),
            size,
            max_bytes,
            keep,
        })
    }

    pub fn write_line(&mut self, stream: &str, line: &[u8]) -> io::Result<()> {
        let len = (line.len() + stream.len() + 2) as u64;
        if self.size + len > self.max_bytes {
            self.rotate()?;
        }
        if let Some(f) = self.file.as_mut() {
            // One write(2) per line, so the two streams never interleave mid-line.
            let mut buf = Vec::with_capacity(len as usize);
            buf.extend_from_slice(stream.as_bytes());
            buf.push(b' ');
            buf.extend_from_slice(line);
            buf.push(b'\n');
            f.write_all(&buf)?;
            self.size += len;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: u32| {
            let mut s = self.path.clone().into_os_string();
            s.push(format!(".{n}"));
            PathBuf::from(s)
        };
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?,
        );
        self.size = 0;
        Ok(())
    }
}

pub type SharedLog = Arc<Mutex<RotatingFile>>;

/// Forwards one stream of a child until it closes (the child and every process holding the
/// pipe have exited).
pub async fn forward(
    fd: OwnedFd,
    component: Arc<str>,
    stream: &'static str,
    file: Option<SharedLog>,
) {
    let rx = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(rx) => rx,
        Err(e) => {
            warn!(component = %component, stream, error = %crate::errors::chain(&e), "cannot read component output");
            return;
        }
    };
    let mut reader = tokio::io::BufReader::with_capacity(4096, rx);
    let mut line = Vec::with_capacity(256);
    let mut truncated = false;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) => {
                warn!(component = %component, stream, error = %crate::errors::chain(&e), "component output read failed");
                break;
            }
        };
        let (piece, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if piece.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        let used = newline.unwrap_or(chunk.len());
        reader.consume(used);
        if newline.is_some() {
            emit(&component, stream, &line, truncated, file.as_ref());
            line.clear();
            truncated = false;
        }
    }
    if !line.is_empty() {
        emit(&component, stream, &line, truncated, file.as_ref());
    }
}

fn emit(
    component: &str,
    stream: &'static str,
    line: &[u8],
    truncated: bool,
    file: Option<&SharedLog>,
) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if truncated {
        info!(target: "component", component, stream, truncated, "{text}");
    } else {
        info!(target: "component", component, stream, "{text}");
    }
    if let Some(file) = file {
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = f.write_line(stream, text.as_bytes()) {
            warn!(component, error = %crate::errors::chain(&e), "cannot write component log file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut f = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..50 {
            f.write_line("stdout", format!("line {i:03}").as_bytes())
                .unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 100);
        assert!(dir.path().join("c.log.1").exists());
        assert!(dir.path().join("c.log.2").exists());
        assert!(!dir.path().join("c.log.3").exists());
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.ends_with("stdout line 049\n"), "{last}");
    }
}
