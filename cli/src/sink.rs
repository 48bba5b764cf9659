//! Where a command's data goes: stdout, or a file written as `FILE.part`
//! and moved into place only once everything was written and checked.
//!
//! A [`Sink`] dropped without [`Sink::commit`] (an error, a hash mismatch,
//! Ctrl-C) removes its partial file, so `FILE` is either whole or absent.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

/// Output buffer size.
const BUF: usize = 256 * 1024;

/// Stdout or a `.part` file.
pub enum Sink {
    /// Standard output.
    Stdout(BufWriter<std::io::Stdout>),
    /// `part`, renamed to `dest` on commit.
    File {
        /// The open `.part` file.
        w: BufWriter<File>,
        /// Its path.
        part: PathBuf,
        /// Where it goes on commit.
        dest: PathBuf,
        /// Whether it was committed (and so must not be removed).
        done: bool,
    },
}

impl Sink {
    /// Opens `dest`'s `.part` file, or stdout for `None` or `-`.
    pub fn open(dest: Option<&Path>) -> anyhow::Result<Self> {
        match dest {
            None => Ok(Self::stdout()),
            Some(p) if p.as_os_str() == "-" => Ok(Self::stdout()),
            Some(dest) => {
                let mut name = dest
                    .file_name()
                    .ok_or_else(|| anyhow!("-o {}: not a file name", dest.display()))?
                    .to_os_string();
                name.push(".part");
                let part = dest.with_file_name(name);
                let f = File::create(&part)
                    .with_context(|| format!("cannot create {}", part.display()))?;
                Ok(Self::File {
                    w: BufWriter::with_capacity(BUF, f),
                    part,
                    dest: dest.to_owned(),
                    done: false,
                })
            }
        }
    }

    /// Like [`Sink::open`], for binary output (Parquet): refuses a terminal
    /// on stdout (see [`refuse_terminal`]).
    pub fn open_binary(dest: Option<&Path>, what: &str) -> anyhow::Result<Self> {
        refuse_terminal(dest, what)?;
        Self::open(dest)
    }

    fn stdout() -> Self {
        Self::Stdout(BufWriter::with_capacity(BUF, std::io::stdout()))
    }

    /// Whether this is a file (not stdout).
    pub fn is_file(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// Writes all of `bytes`, naming the destination on failure.
    pub fn write_bytes(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let r = self.write_all(bytes);
        r.with_context(|| self.describe())
    }

    fn describe(&self) -> String {
        match self {
            Self::Stdout(_) => "writing to stdout".to_owned(),
            Self::File { part, .. } => format!("writing {}", part.display()),
        }
    }

    /// Flushes and, for a file, syncs it and moves it into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let what = self.describe();
        match &mut self {
            Self::Stdout(w) => w.flush().context(what),
            Self::File {
                w,
                part,
                dest,
                done,
            } => {
                w.flush()
                    .and_then(|()| w.get_ref().sync_all())
                    .context(what)?;
                std::fs::rename(&*part, &*dest).with_context(|| {
                    format!("renaming {} to {}", part.display(), dest.display())
                })?;
                *done = true;
                Ok(())
            }
        }
    }
}

/// Fails when binary output (`what`) would go to stdout and stdout is a
/// terminal, where the bytes would only garble the screen. Commands call it
/// before any request, so the mistake costs nothing.
pub fn refuse_terminal(dest: Option<&Path>, what: &str) -> anyhow::Result<()> {
    let to_stdout = dest.is_none_or(|p| p.as_os_str() == "-");
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("{what} is binary and stdout is a terminal: pass -o FILE (or redirect stdout)");
    }
    Ok(())
}

/// Plain `Write`, so a Parquet writer can own the sink; errors are bare
/// `io::Error`s (their callers add the context).
impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Stdout(w) => w.write(buf),
            Self::File { w, .. } => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Stdout(w) => w.flush(),
            Self::File { w, .. } => w.flush(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Self::File {
            part, done: false, ..
        } = self
        {
            let _ = std::fs::remove_file(part);
        }
    }
}
