//! `convert(ptr, len)`: a result object in linear memory → Parquet bytes
//! (counted, not kept), through core's BlockStream and the CLI's writer.
#[allow(dead_code)]
#[path = "writer.rs"]
mod parquet;

use std::io::Write;

use tsp_format::codec::expand_block;
use tsp_format::export::BlockStream;

struct Count(usize);
impl Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[no_mangle]
pub extern "C" fn alloc(n: usize) -> *mut u8 {
    let mut v = Vec::<u8>::with_capacity(n);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

fn run(input: &[u8]) -> anyhow::Result<(usize, u64)> {
    let mut s = BlockStream::new();
    let mut w = parquet::SampleWriter::new(Count(0), parquet::Limits::default())?;
    let mut feed = |blocks: Vec<tsp_format::codec::Block>, s: &BlockStream| -> anyhow::Result<()> {
        for b in &blocks {
            w.push(s.point_of(b)?, expand_block(b)?)?;
        }
        Ok(())
    };
    for piece in input.chunks(64 * 1024) {
        let blocks = s.push(piece)?;
        feed(blocks, &s)?;
    }
    let blocks = s.finish()?;
    feed(blocks, &s)?;
    drop(feed);
    let (c, rows) = w.finish()?;
    Ok((c.0, rows))
}

static mut ROWS: u64 = 0;

/// Parquet bytes written (0 on error); `rows()` then gives the row count.
#[no_mangle]
pub extern "C" fn convert(ptr: *const u8, len: usize) -> usize {
    let input = unsafe { std::slice::from_raw_parts(ptr, len) };
    match run(input) {
        Ok((n, rows)) => {
            unsafe { ROWS = rows };
            n
        }
        Err(_) => 0,
    }
}

#[no_mangle]
pub extern "C" fn rows() -> u64 {
    unsafe { ROWS }
}
