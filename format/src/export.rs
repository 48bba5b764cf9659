//! Streaming conversion of a result object to CSV or JSON Lines.
//!
//! [`BlockStream`] takes the object's compressed bytes in whatever pieces
//! they arrive and returns each block as soon as it is whole; [`Exporter`]
//! turns those blocks into text. Memory is bounded by one block (one point ×
//! one month), never the whole object.

use std::io::Write;

use flate2::write::MultiGzDecoder;
use serde::Deserialize;

use crate::codec::{expand_block, Block, CodecError, Decoded, Header, FORMAT_NAME, FORMAT_VERSION};
use crate::time::format_rfc3339;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `point,time,value` with a header row; RFC 4180 quoting.
    Csv,
    /// One JSON object per line: `{"point","time","ts","value"}`.
    JsonLines,
}

impl Format {
    /// The response content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
        }
    }

    /// From `?format=` or an `Accept` header.
    pub fn negotiate(query: Option<&str>, accept: Option<&str>) -> Option<Format> {
        match query {
            Some("csv") => return Some(Format::Csv),
            Some("jsonl" | "ndjson") => return Some(Format::JsonLines),
            _ => {}
        }
        let accept = accept.unwrap_or_default();
        if accept.contains("text/csv") {
            Some(Format::Csv)
        } else if accept.contains("application/x-ndjson") || accept.contains("application/jsonl") {
            Some(Format::JsonLines)
        } else {
            None
        }
    }
}

/// Whether a decode error only means "the value is not complete yet".
fn incomplete(e: &rmp_serde::decode::Error) -> bool {
    use rmp_serde::decode::Error as E;
    match e {
        E::InvalidMarkerRead(io) | E::InvalidDataRead(io) => {
            io.kind() == std::io::ErrorKind::UnexpectedEof
        }
        _ => false,
    }
}

/// One RFC 4180 CSV field: quoted (quotes doubled) when it holds a comma,
/// a quote or a line break, as is otherwise.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A text cell (a point name or a text value) as a CSV field, defused for
/// spreadsheets: one that begins with `=`, `+`, `-`, `@`, a tab or a
/// carriage return would be read as a formula, so it gets a leading `'`
/// (OWASP's advice). Numbers never come here, so `-3.5` stays a number.
pub fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{s}"))
    } else {
        csv_field(s)
    }
}

/// A value of the object: the header first, then blocks.
enum Item {
    Header(Header),
    Block(Block),
}

/// Incremental object-to-blocks decoder: the streaming half of
/// [`Exporter`], for callers that want the decoded blocks themselves (the
/// CLI writes them as Parquet).
///
/// Feed it the object's compressed bytes in any pieces; each push returns
/// the blocks those bytes completed. It holds at most one partial block.
pub struct BlockStream {
    gz: MultiGzDecoder<Vec<u8>>,
    /// Decompressed bytes already consumed from the front of the buffer.
    consumed: usize,
    /// Buffered bytes when the last parse found the value incomplete: the
    /// next try waits until the buffer is half as large again, so a block
    /// arriving in many small pieces is parsed a logarithmic number of
    /// times, not once per piece.
    incomplete_at: usize,
    header: Option<Header>,
}

impl Default for BlockStream {
    fn default() -> Self {
        Self::new()
    }
}

impl BlockStream {
    /// A decoder at the start of an object.
    pub fn new() -> Self {
        Self {
            gz: MultiGzDecoder::new(Vec::new()),
            consumed: 0,
            incomplete_at: 0,
            header: None,
        }
    }

    /// The object's header, once its bytes have been pushed.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The name of the point a block belongs to.
    pub fn point_of(&self, b: &Block) -> Result<&str, CodecError> {
        self.header
            .as_ref()
            .ok_or_else(|| CodecError::Invalid("block before header".to_owned()))?
            .points
            .get(b.p as usize)
            .map(String::as_str)
            .ok_or_else(|| CodecError::Invalid(format!("point index {} out of range", b.p)))
    }

    /// Feeds compressed bytes; returns every block they completed.
    pub fn push(&mut self, compressed: &[u8]) -> Result<Vec<Block>, CodecError> {
        self.gz.write_all(compressed)?;
        self.gz.flush()?;
        let buffered = self.gz.get_ref().len() - self.consumed;
        if buffered < self.incomplete_at + self.incomplete_at / 2 {
            return Ok(Vec::new());
        }
        self.drain()
    }

    /// Signals the end of the object: returns the last blocks, or fails if
    /// the object ended inside a value or had no header.
    pub fn finish(&mut self) -> Result<Vec<Block>, CodecError> {
        self.gz.try_finish()?;
        self.incomplete_at = 0;
        let out = self.drain()?;
        if self.header.is_none() || self.consumed < self.gz.get_ref().len() {
            return Err(CodecError::Invalid("object ends inside a value".to_owned()));
        }
        Ok(out)
    }

    fn drain(&mut self) -> Result<Vec<Block>, CodecError> {
        let mut out = Vec::new();
        loop {
            let buf = &self.gz.get_ref()[self.consumed..];
            if buf.is_empty() {
                break;
            }
            let mut cursor = std::io::Cursor::new(buf);
            let mut de = rmp_serde::Deserializer::new(&mut cursor);
            let parsed = if self.header.is_none() {
                Header::deserialize(&mut de).map(Item::Header)
            } else {
                Block::deserialize(&mut de).map(Item::Block)
            };
            match parsed {
                Ok(Item::Header(h)) => {
                    if h.format != FORMAT_NAME || h.version != FORMAT_VERSION {
                        return Err(CodecError::Invalid(format!(
                            "format {} v{}",
                            h.format, h.version
                        )));
                    }
                    self.header = Some(h);
                }
                Ok(Item::Block(b)) => out.push(b),
                Err(e) if incomplete(&e) => {
                    self.incomplete_at = buf.len();
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            self.incomplete_at = 0;
            self.consumed += cursor.position() as usize;
        }
        // Drop what is consumed so the buffer holds at most one partial block.
        if self.consumed > 0 {
            self.gz.get_mut().drain(..self.consumed);
            self.consumed = 0;
        }
        Ok(out)
    }
}

/// Incremental object-to-text converter.
pub struct Exporter {
    format: Format,
    blocks: BlockStream,
}

impl Exporter {
    /// A converter to `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            blocks: BlockStream::new(),
        }
    }

    /// Feeds compressed bytes; returns the text of every block they completed.
    pub fn push(&mut self, compressed: &[u8]) -> Result<Vec<u8>, CodecError> {
        let had_header = self.blocks.header().is_some();
        let blocks = self.blocks.push(compressed)?;
        self.render(had_header, &blocks)
    }

    /// Signals the end of the object; fails if it ended inside a value.
    pub fn finish(mut self) -> Result<Vec<u8>, CodecError> {
        let had_header = self.blocks.header().is_some();
        let blocks = self.blocks.finish()?;
        self.render(had_header, &blocks)
    }

    /// The CSV header row when the header has just been read, then the text
    /// of each block.
    fn render(&self, had_header: bool, blocks: &[Block]) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        if !had_header && self.blocks.header().is_some() && self.format == Format::Csv {
            out.extend_from_slice(b"point,time,value\n");
        }
        for b in blocks {
            self.write_block(b, &mut out)?;
        }
        Ok(out)
    }

    fn write_block(&self, b: &Block, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let point = self.blocks.point_of(b)?;
        let csv_point = csv_text(point);
        let json_point = serde_json::to_string(point).unwrap_or_default();
        for (ts, v) in expand_block(b)? {
            let time = format_rfc3339(ts);
            match self.format {
                Format::Csv => {
                    let value = match v {
                        Decoded::Number(n) => n.to_string(),
                        Decoded::Text(t) => csv_text(&t),
                    };
                    writeln!(out, "{csv_point},{time},{value}")?;
                }
                Format::JsonLines => {
                    let value = match v {
                        Decoded::Number(n) => serde_json::Value::from(n),
                        Decoded::Text(t) => serde_json::Value::from(t),
                    };
                    writeln!(out, "{{\"point\":{json_point},\"time\":\"{time}\",\"ts\":{ts},\"value\":{value}}}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode_block, encode_header};
    use crate::sample::Samples;
    use crate::time::EpochMs;

    fn object() -> Vec<u8> {
        let header = Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            site: "s".into(),
            start_ms: EpochMs(0),
            end_ms: EpochMs(1),
            points: vec!["a,b".into(), "c".into()],
        };
        let raw = ["21.4", "on", "7"];
        let samples = Samples::from_raw(raw.iter().enumerate().map(|(i, v)| (i as i64 * 1000, v)));
        let first = Samples::from_raw([(0, raw[0])]);
        let mut obj = encode_header(&header).unwrap();
        obj.extend(encode_block(0, &samples).unwrap());
        obj.extend(encode_block(1, &first).unwrap());
        obj
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn text_cells_that_a_spreadsheet_would_run_are_defused() {
        for (cell, want) in [
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("a=b", "a=b"),
            ("active", "active"),
        ] {
            assert_eq!(csv_text(cell), want, "{cell:?}");
        }
    }

    #[test]
    fn csv_from_byte_sized_pieces_equals_csv_from_one_piece() {
        let obj = object();
        let mut whole = Exporter::new(Format::Csv);
        let mut a = whole.push(&obj).unwrap();
        a.extend(whole.finish().unwrap());
        let mut bytewise = Exporter::new(Format::Csv);
        let mut b = Vec::new();
        for byte in &obj {
            b.extend(bytewise.push(std::slice::from_ref(byte)).unwrap());
        }
        b.extend(bytewise.finish().unwrap());
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(
            text,
            "point,time,value\n\"a,b\",1970-01-01T00:00:00Z,21.4\n\"a,b\",1970-01-01T00:00:01Z,on\n\"a,b\",1970-01-01T00:00:02Z,7\nc,1970-01-01T00:00:00Z,21.4\n"
        );
    }

    #[test]
    fn block_stream_from_byte_sized_pieces_yields_the_objects_blocks() {
        let obj = object();
        let mut stream = BlockStream::new();
        let mut blocks = Vec::new();
        for byte in &obj {
            blocks.extend(stream.push(std::slice::from_ref(byte)).unwrap());
        }
        blocks.extend(stream.finish().unwrap());
        assert_eq!(stream.header().unwrap().points, ["a,b", "c"]);
        let mut reader = crate::codec::ObjectReader::new(&obj[..]).unwrap();
        let mut want = Vec::new();
        while let Some(b) = reader.next_block().unwrap() {
            want.push(b);
        }
        assert_eq!(blocks, want);
        assert_eq!(stream.point_of(&blocks[1]).unwrap(), "c");
    }

    #[test]
    fn json_lines_are_valid_json() {
        let mut e = Exporter::new(Format::JsonLines);
        let mut out = e.push(&object()).unwrap();
        out.extend(e.finish().unwrap());
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["value"], "on");
        assert_eq!(lines[2]["value"], 7.0);
        assert_eq!(lines[0]["point"], "a,b");
    }

    #[test]
    fn a_truncated_object_is_an_error() {
        let obj = object();
        let mut e = Exporter::new(Format::Csv);
        let _ = e.push(&obj[..obj.len() - 10]);
        assert!(e.finish().is_err());
    }

    #[test]
    fn negotiation() {
        assert_eq!(Format::negotiate(Some("csv"), None), Some(Format::Csv));
        assert_eq!(
            Format::negotiate(None, Some("application/x-ndjson")),
            Some(Format::JsonLines)
        );
        assert_eq!(Format::negotiate(None, Some("*/*")), None);
    }
}
