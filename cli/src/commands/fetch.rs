//! `tsp fetch ID`: the result object, decoded client-side as it streams in.
//!
//! The body of `GET /v1/jobs/{id}/result` (gzip members of MessagePack) is
//! read chunk by chunk; every chunk is hashed and fed, in 1-8 KiB slices, to
//! [`tsp_format::export::Exporter`] (CSV, JSON Lines: the text of each
//! completed block is written out at once) or to
//! [`tsp_format::export::BlockStream`] and the [`SampleWriter`] (Parquet: rows
//! go out in batches, into bounded row groups). Memory is about one block (a
//! point × a month) plus the buffers (for Parquet, plus the row group being
//! encoded), whatever the result's size. At the end the SHA-256 of the
//! downloaded bytes must equal the `X-Content-SHA256` header.
//!
//! With `-o FILE`, output goes to `FILE.part`, renamed to `FILE` only once
//! the object decoded completely and its hash matched; on any failure the
//! partial file is removed. On stdout the output is already written when
//! the hash is checked, so a mismatch there is reported by the exit code
//! (1). Parquet goes to stdout only when it is not a terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tsp_format::codec::expand_block;
use tsp_format::export::{BlockStream, Exporter, Format};

use crate::api::{network_error, Client};
use crate::output::download_bar;
use crate::parquet::{Limits, SampleWriter};
use crate::sink::{refuse_terminal, Sink};

/// Compressed bytes fed to the decoder at a time: from `MIN_SLICE`, doubled
/// while no block completes, up to `MAX_SLICE`, back to `MIN_SLICE` after
/// a block came out.
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
    /// Parquet (zstd): `point` (dictionary string), `time` (timestamp[ms,
    /// UTC]), `value` (float64, null for text samples), `text` (string,
    /// null for numbers). Needs -o FILE or a redirected stdout.
    Parquet,
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

/// A failure while feeding the converter: the object does not decode (the
/// rest is still hashed, see [`download`]), or the output failed.
enum FeedError {
    Decode(anyhow::Error),
    Output(anyhow::Error),
}

impl FeedError {
    fn into_error(self) -> anyhow::Error {
        match self {
            Self::Decode(e) | Self::Output(e) => e,
        }
    }
}

/// What the downloaded bytes become.
enum Converter {
    Raw(Sink),
    Text(Exporter, Sink),
    /// Boxed: the writer is large, and there is one per download.
    Parquet(BlockStream, Box<SampleWriter<Sink>>),
}

impl Converter {
    fn new(format: OutFormat, sink: Sink) -> anyhow::Result<Self> {
        Ok(match format {
            OutFormat::Csv => Self::Text(Exporter::new(Format::Csv), sink),
            OutFormat::Jsonl => Self::Text(Exporter::new(Format::JsonLines), sink),
            OutFormat::Parquet => Self::Parquet(
                BlockStream::new(),
                Box::new(SampleWriter::new(sink, Limits::default())?),
            ),
            OutFormat::Raw => Self::Raw(sink),
        })
    }

    /// Feeds one network chunk, in slices (see [`MIN_SLICE`]).
    fn feed(&mut self, chunk: &[u8], slice: &mut usize) -> Result<(), FeedError> {
        if let Self::Raw(sink) = self {
            return sink.write_bytes(chunk).map_err(FeedError::Output);
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at((*slice).min(rest.len()));
            rest = tail;
            if self.push(piece)? {
                *slice = MIN_SLICE;
            } else {
                *slice = (*slice * 2).min(MAX_SLICE);
            }
        }
        Ok(())
    }

    /// Feeds one slice; whether it completed a block.
    fn push(&mut self, piece: &[u8]) -> Result<bool, FeedError> {
        let undecodable = |e| FeedError::Decode(anyhow!("the result does not decode: {e}"));
        match self {
            Self::Raw(sink) => sink
                .write_bytes(piece)
                .map(|()| true)
                .map_err(FeedError::Output),
            Self::Text(x, sink) => {
                let text = x.push(piece).map_err(undecodable)?;
                sink.write_bytes(&text).map_err(FeedError::Output)?;
                Ok(!text.is_empty())
            }
            Self::Parquet(stream, w) => {
                let blocks = stream.push(piece).map_err(undecodable)?;
                write_blocks(stream, w, &blocks)?;
                Ok(!blocks.is_empty())
            }
        }
    }

    /// Decodes what is left and writes the end (a Parquet footer); returns
    /// the sink, ready to commit.
    fn finish(self) -> anyhow::Result<Sink> {
        let undecodable = |e| anyhow!("the result does not decode: {e}");
        match self {
            Self::Raw(sink) => Ok(sink),
            Self::Text(x, mut sink) => {
                sink.write_bytes(&x.finish().map_err(undecodable)?)?;
                Ok(sink)
            }
            Self::Parquet(mut stream, mut w) => {
                let blocks = stream.finish().map_err(undecodable)?;
                write_blocks(&stream, &mut w, &blocks).map_err(FeedError::into_error)?;
                Ok((*w).finish()?.0)
            }
        }
    }
}

/// Expands blocks and hands their samples to the Parquet writer.
fn write_blocks(
    stream: &BlockStream,
    w: &mut SampleWriter<Sink>,
    blocks: &[tsp_format::codec::Block],
) -> Result<(), FeedError> {
    let undecodable = |e| FeedError::Decode(anyhow!("the result does not decode: {e}"));
    for b in blocks {
        let point = stream.point_of(b).map_err(undecodable)?;
        let samples = expand_block(b).map_err(undecodable)?;
        w.push(point, samples).map_err(FeedError::Output)?;
    }
    Ok(())
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

/// Checks the bytes received against the server's `X-Content-SHA256`.
fn verify(expected: Option<&str>, got: &str, received: u64) -> anyhow::Result<()> {
    match expected {
        Some(want) if want != got => bail!(
            "SHA-256 mismatch: X-Content-SHA256 is {want}, the {received} bytes received hash to {got}"
        ),
        Some(_) => {}
        None => eprintln!("warning: no X-Content-SHA256 header; the download is not verified"),
    }
    Ok(())
}

async fn download(api: &Client, args: &Args) -> anyhow::Result<ExitCode> {
    if args.format == OutFormat::Parquet {
        refuse_terminal(args.output.as_deref(), "Parquet")?;
    }
    let resp = api.result(&args.id).await?;
    let expected = resp
        .headers()
        .get("x-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase());
    let sink = match args.format {
        OutFormat::Parquet => Sink::open_binary(args.output.as_deref(), "Parquet")?,
        _ => Sink::open(args.output.as_deref())?,
    };
    let bar = if sink.is_file() {
        download_bar(resp.content_length())
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut conv = Converter::new(args.format, sink)?;
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
        match conv.feed(&chunk, &mut slice) {
            Ok(()) => {}
            Err(FeedError::Decode(e)) => decode_error = Some(e),
            Err(FeedError::Output(e)) => return Err(e),
        }
    }
    bar.finish_and_clear();
    let got = hex::encode(hasher.finalize());
    verify(expected.as_deref(), &got, received)?;
    if let Some(e) = decode_error {
        return Err(e);
    }
    conv.finish()?.commit()?;
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
