//! Baseline for pq-wasm: the same decode (core's BlockStream and
//! expand_block), no Parquet writer, so the size difference is the writer's.
use tsp_format::codec::expand_block;
use tsp_format::export::BlockStream;

#[no_mangle]
pub extern "C" fn alloc(n: usize) -> *mut u8 {
    let mut v = Vec::<u8>::with_capacity(n);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

static mut ROWS: u64 = 0;

fn run(input: &[u8]) -> Result<u64, tsp_format::codec::CodecError> {
    let mut s = BlockStream::new();
    let mut rows = 0u64;
    for piece in input.chunks(64 * 1024) {
        for b in s.push(piece)? {
            rows += expand_block(&b)?.len() as u64;
        }
    }
    for b in s.finish()? {
        rows += expand_block(&b)?.len() as u64;
    }
    Ok(rows)
}

#[no_mangle]
pub extern "C" fn convert(ptr: *const u8, len: usize) -> usize {
    let input = unsafe { std::slice::from_raw_parts(ptr, len) };
    let rows = run(input).unwrap_or(0);
    unsafe { ROWS = rows };
    rows as usize
}

#[no_mangle]
pub extern "C" fn rows() -> u64 {
    unsafe { ROWS }
}
