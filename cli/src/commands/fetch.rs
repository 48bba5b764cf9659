//! `tsp fetch ID`: the result object, decoded client-side as it streams in.
//!
//! The body of `GET /v1/jobs/{id}/result` (gzip members of MessagePack) is
//! read chunk by chunk; every chunk is hashed and fed to
//! [`tsp_core::export::Exporter`] in 1-8 KiB slices, and the text of each
//! completed block is written out at once. Memory is about one block (a
//! point × a month) plus the buffers, whatever the result's size. At the end the SHA-256 of the
//! downloaded bytes must equal the `X-Content-SHA256` header.
//!
//! With `-o FILE`, output goes to `FILE.part`, renamed to `FILE` only once
//! the object decoded completely and its hash matched; on any failure the
//! partial file is removed. On stdout the text is already written when the
//! hash is checked, so a mismatch there is reported by the exit code (1).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tsp_core::export::{Exporter, Format};

use crate::api::{network_error, Client};
use crate::output::download_bar;

/// Output buffer size.
const BUF: usize = 256 * 1024;
/// Compressed bytes fed to the decoder at a time: from `MIN_SLICE`, doubled
/// while no block completes, up to `MAX_SLICE`, back to `MIN_SLICE` after
/// text came out.
///
/// Why: blocks compress to well under a byte per sample while their text
/// takes 30-80 bytes, so a whole network chunk (often hundreds of KiB) can
/// hold tens of MiB of text; small slices, each one's text written at once,
/// keep the output buffer to about a block. But the decoder re-reads an
/// incomplete block on every push, so for large blocks (30-s data: 86,400
/// samples, ~150 KiB compressed) the slices must grow or the cost becomes
/// quadratic.
const MIN_SLICE: usize = 1024;
const MAX_SLICE: usize = 8 * 1024;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// `point,time,value` rows with a header row (RFC 4180 quoting).
    Csv,
    /// One JSON object per sample: `{"point","time","ts","value"}`.
    Jsonl,
    /// The object's bytes as stored (gzip of MessagePack).
    Raw,
}

/// Arguments of `fetch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Job id (a completed job).
    pub id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
    pub format: OutFormat,
    /// Write to FILE instead of stdout (`-` for stdout).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where the output goes.
enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File {
        w: BufWriter<File>,
        part: PathBuf,
        dest: PathBuf,
        done: bool,
    },
}

impl Sink {
    fn open(dest: Option<&Path>) -> anyhow::Result<Self> {
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

    fn stdout() -> Self {
        Self::Stdout(BufWriter::with_capacity(BUF, std::io::stdout()))
    }

    fn is_file(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self {
            Self::Stdout(w) => w.write_all(bytes).context("writing to stdout"),
            Self::File { w, part, .. } => w
                .write_all(bytes)
                .with_context(|| format!("writing {}", part.display())),
        }
    }

    /// Flushes and, for a file, moves it into place.
    fn commit(mut self) -> anyhow::Result<()> {
        match &mut self {
            Self::Stdout(w) => w.flush().context("writing to stdout"),
            Self::File {
                w,
                part,
                dest,
                done,
            } => {
                w.flush()
                    .and_then(|()| w.get_ref().sync_all())
                    .with_context(|| format!("writing {}", part.display()))?;
                std::fs::rename(&*part, &*dest).with_context(|| {
                    format!("renaming {} to {}", part.display(), dest.display())
                })?;
                *done = true;
                Ok(())
            }
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

/// Downloads, decodes and verifies; exit 0, or an error (exit 1). Ctrl-C
/// stops the download and removes the partial file (exit 130).
pub async fn run(api: &Client, args: Args) -> anyhow::Result<ExitCode> {
    tokio::select! {
        r = download(api, &args) => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted");
            Ok(ExitCode::from(130))
        }
    }
}

async fn download(api: &Client, args: &Args) -> anyhow::Result<ExitCode> {
    let resp = api.result(&args.id).await?;
    let expected = resp
        .headers()
        .get("x-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let mut sink = Sink::open(args.output.as_deref())?;
    let bar = if sink.is_file() {
        download_bar(resp.content_length())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut exporter = match args.format {
        OutFormat::Csv => Some(Exporter::new(Format::Csv)),
        OutFormat::Jsonl => Some(Exporter::new(Format::JsonLines)),
        OutFormat::Raw => None,
    };
    let mut hasher = Sha256::new();
    // After a decode error the rest is still read and hashed, so a corrupt
    // download is reported as a hash mismatch rather than a decode error.
    let mut decode_error: Option<anyhow::Error> = None;
    let mut received = 0u64;
    let mut slice = MIN_SLICE;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| network_error(api.base(), &e))?;
        hasher.update(&chunk);
        received += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
        if decode_error.is_some() {
            continue;
        }
        match &mut exporter {
            None => sink.write(&chunk)?,
            Some(x) => {
                let mut rest: &[u8] = &chunk;
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at(slice.min(rest.len()));
                    rest = tail;
                    match x.push(piece) {
                        Ok(text) if text.is_empty() => slice = (slice * 2).min(MAX_SLICE),
                        Ok(text) => {
                            sink.write(&text)?;
                            slice = MIN_SLICE;
                        }
                        Err(e) => {
                            decode_error = Some(anyhow!("the result does not decode: {e}"));
                            break;
                        }
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    let got = hex::encode(hasher.finalize());
    match &expected {
        Some(want) if *want != got => bail!(
            "SHA-256 mismatch: X-Content-SHA256 is {want}, the {received} bytes received hash to {got}"
        ),
        Some(_) => {}
        None => eprintln!("warning: no X-Content-SHA256 header; the download is not verified"),
    }
    if let Some(e) = decode_error {
        return Err(e);
    }
    if let Some(x) = exporter {
        let tail = x
            .finish()
            .map_err(|e| anyhow!("the result does not decode: {e}"))?;
        sink.write(&tail)?;
    }
    sink.commit()?;
    if let Some(dest) = &args.output {
        if dest.as_os_str() != "-" {
            eprintln!(
                "wrote {} ({received} bytes downloaded, sha256 {got})",
                dest.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
